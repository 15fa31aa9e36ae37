//! The dialect-neutral table model.
//!
//! A [`Table`] is what the parser reads out of `SHOW CREATE TABLE` and what the renderer writes
//! back. Expressions (defaults, generated columns, checks, partition functions and bounds) are
//! kept as the server printed them: the source and its shadow live on the same server, which
//! prints both canonically, so textual comparison is exact there.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One table, as its canonical DDL describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    pub name: String,
    /// Columns in their physical order (order is structure).
    pub columns: Vec<Column>,
    /// Primary key, if any (kept apart from the other indexes: it has no name of its own).
    pub primary_key: Option<Index>,
    /// Secondary indexes, in listing order (the order is *not* structure).
    pub indexes: Vec<Index>,
    pub foreign_keys: Vec<ForeignKey>,
    pub checks: Vec<CheckConstraint>,
    pub options: TableOptions,
    pub partitioning: Option<Partitioning>,
}

/// A column definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub data_type: DataType,
    pub charset: Option<String>,
    pub collation: Option<String>,
    pub nullable: bool,
    pub default: Option<DefaultValue>,
    pub auto_increment: bool,
    /// `ON UPDATE current_timestamp(fsp)`: the fractional-seconds precision, if any.
    pub on_update: Option<OnUpdate>,
    pub generated: Option<Generated>,
    /// Empty when the column has no comment.
    pub comment: String,
    pub invisible: bool,
    /// A column-level `CHECK (...)` (MariaDB prints these inline).
    pub check: Option<String>,
    /// Attributes kept verbatim that the engine neither interprets nor drops (`SRID 4326`,
    /// `COLUMN_FORMAT FIXED`, `REF_SYSTEM_ID=4326`...), in printed order.
    pub extra: Vec<String>,
}

/// A column type with its parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataType {
    /// Lower-case type name (`int`, `varchar`, `enum`, `json`...).
    pub name: String,
    /// Numeric parameters: length, display width, precision/scale or fractional seconds.
    pub params: Vec<u32>,
    /// `ENUM`/`SET` members, decoded.
    pub values: Vec<String>,
    pub unsigned: bool,
    pub zerofill: bool,
}

/// A column default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DefaultValue {
    Null,
    /// A literal, decoded: `'0'`, `0` and `00` are different literals, `'0'` and `0` are not.
    Literal(String),
    /// A literal whose spelling carries its type (`b'101'`, `0x1F`, `x'1F'`), verbatim.
    TypedLiteral(String),
    /// `CURRENT_TIMESTAMP` with its fractional-seconds precision (`None` = 0).
    CurrentTimestamp(Option<u32>),
    /// Any other expression, verbatim as printed (MariaDB prints some unparenthesised).
    Expression(String),
}

/// `ON UPDATE CURRENT_TIMESTAMP[(fsp)]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnUpdate {
    pub fsp: Option<u32>,
}

/// A generated column's expression and storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generated {
    pub expression: String,
    pub storage: GeneratedStorage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GeneratedStorage {
    Virtual,
    /// `STORED` (MariaDB also spells it `PERSISTENT`).
    Stored,
}

/// An index, including the primary key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    /// `PRIMARY` for the primary key.
    pub name: String,
    pub kind: IndexKind,
    pub parts: Vec<IndexPart>,
    /// `USING BTREE|HASH|RTREE` when printed.
    pub algorithm: Option<String>,
    pub comment: String,
    /// False for MySQL `INVISIBLE` and MariaDB `IGNORED` indexes.
    pub visible: bool,
    /// Other index options verbatim (`KEY_BLOCK_SIZE=8`, `WITH PARSER ngram`...).
    pub extra: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IndexKind {
    Primary,
    Unique,
    Normal,
    Fulltext,
    Spatial,
}

/// One key part: a column (with optional prefix length) or an expression (MySQL 8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexPart {
    pub target: IndexTarget,
    pub prefix_length: Option<u32>,
    pub descending: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum IndexTarget {
    Column(String),
    Expression(String),
}

/// A foreign key. Its name is not structure (names are unique per schema, so shadows carry
/// renamed ones); everything else is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ForeignKey {
    pub name: String,
    pub columns: Vec<String>,
    /// Set when the parent lives in another database.
    pub referenced_schema: Option<String>,
    pub referenced_table: String,
    pub referenced_columns: Vec<String>,
    /// `RESTRICT`, `CASCADE`, `SET NULL`, `NO ACTION`, `SET DEFAULT`; `None` when not printed.
    pub on_delete: Option<String>,
    pub on_update: Option<String>,
}

/// A table-level `CHECK` constraint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckConstraint {
    pub name: String,
    pub expression: String,
}

/// Table options. The `AUTO_INCREMENT` counter is read but never compared, rendered or copied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableOptions {
    pub engine: Option<String>,
    pub charset: Option<String>,
    pub collation: Option<String>,
    pub row_format: Option<String>,
    /// Empty when the table has no comment.
    pub comment: String,
    /// Data, not structure: excluded from comparison and rendering.
    pub auto_increment: Option<u64>,
    /// Every other option, upper-case key to the value as printed (`PAGE_CHECKSUM` → `1`,
    /// `KEY_BLOCK_SIZE` → `8`, `` `encrypted` `` → `yes`...). Unknown options are kept, not refused.
    pub other: BTreeMap<String, String>,
}

/// `PARTITION BY ...`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partitioning {
    pub method: PartitionMethod,
    pub linear: bool,
    /// The partitioning expression (`RANGE`, `LIST`, `HASH`) or column list (`COLUMNS`, `KEY`),
    /// verbatim as printed inside the parentheses.
    pub expression: String,
    /// `ALGORITHM=n` of `KEY` partitioning.
    pub key_algorithm: Option<u32>,
    /// `PARTITIONS n` when the partitions are not listed one by one.
    pub count: Option<u32>,
    pub subpartitioning: Option<SubPartitioning>,
    pub partitions: Vec<Partition>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PartitionMethod {
    Range,
    RangeColumns,
    List,
    ListColumns,
    Hash,
    Key,
    /// MariaDB system-versioned tables (`PARTITION BY SYSTEM_TIME`).
    SystemTime,
}

/// `SUBPARTITION BY [LINEAR] HASH|KEY (...) [SUBPARTITIONS n]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubPartitioning {
    pub method: PartitionMethod,
    pub linear: bool,
    pub expression: String,
    pub key_algorithm: Option<u32>,
    pub count: Option<u32>,
}

/// One partition and its bounds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    pub name: String,
    pub bound: PartitionBound,
    /// `ENGINE = x` of this partition when it is not the table's engine.
    pub engine: Option<String>,
    pub comment: String,
    /// Other options verbatim (`DATA DIRECTORY = '...'`, `MAX_ROWS = 10`...).
    pub extra: Vec<String>,
    pub subpartitions: Vec<SubPartition>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PartitionBound {
    None,
    /// `VALUES LESS THAN (...)`: the text inside the parentheses.
    LessThan(String),
    /// `VALUES LESS THAN MAXVALUE`.
    MaxValue,
    /// `VALUES IN (...)`: the text inside the parentheses.
    In(String),
    /// `DEFAULT` partition of a MariaDB `LIST` partitioning.
    Default,
    /// Anything else (e.g. `HISTORY`/`CURRENT` of `SYSTEM_TIME`), verbatim.
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubPartition {
    pub name: String,
    pub engine: Option<String>,
    pub comment: String,
    pub extra: Vec<String>,
}

impl DataType {
    /// A type without parameters or modifiers.
    pub fn simple(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            params: Vec::new(),
            values: Vec::new(),
            unsigned: false,
            zerofill: false,
        }
    }

    /// Character types carry a charset and collation; everything else does not.
    pub fn is_textual(&self) -> bool {
        matches!(
            self.name.as_str(),
            "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "enum" | "set"
        )
    }

    /// Integer types, whose first parameter is a display width.
    pub fn is_integer(&self) -> bool {
        matches!(
            self.name.as_str(),
            "tinyint" | "smallint" | "mediumint" | "int" | "bigint"
        )
    }
}

impl Table {
    /// Looks a column up by name; column names are case-insensitive on every MySQL flavour.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns
            .iter()
            .find(|column| column.name.eq_ignore_ascii_case(name))
    }
}

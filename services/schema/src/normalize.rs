//! Normalization: removes the differences that are spelling, not structure.
//!
//! After [`normalize`], two tables with the same structure have equal models whichever server
//! printed them and however they were written: MariaDB's quoted literal defaults and
//! `current_timestamp()`, MySQL 8's missing integer display widths, charsets and collations
//! inherited from the table and database, MariaDB's `JSON` alias (a `longtext` with a
//! `json_valid` check), and on MariaDB an explicit `RESTRICT` (printed like the default). An
//! explicit `NO ACTION` stays: the server prints it, so it is what a shadow must read back. The
//! normalized model is also what the renderer writes, so every column carries its effective
//! charset and collation explicitly.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{Column, DataType, DefaultValue, Table};
use crate::render::Flavor;

/// What normalization needs to know about the server and the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerContext {
    pub flavor: Flavor,
    /// `SELECT VERSION()`.
    pub version: String,
    /// `@@lower_case_table_names`: 0 means table names are case-sensitive.
    pub lower_case_table_names: u32,
    pub database_charset: String,
    pub database_collation: String,
    /// Charset → its default collation on this server.
    pub default_collations: BTreeMap<String, String>,
    /// Collation → its charset on this server.
    pub collation_charsets: BTreeMap<String, String>,
}

impl ServerContext {
    /// A MariaDB 10.11 context with utf8mb4 defaults, for tests and offline parsing.
    pub fn mariadb_default() -> Self {
        let pairs = [
            ("utf8mb4", "utf8mb4_general_ci"),
            ("utf8mb3", "utf8mb3_general_ci"),
            ("latin1", "latin1_swedish_ci"),
            ("ascii", "ascii_general_ci"),
            ("binary", "binary"),
        ];
        Self {
            flavor: Flavor::MariaDb,
            version: "10.11.0-MariaDB".into(),
            lower_case_table_names: 0,
            database_charset: "utf8mb4".into(),
            database_collation: "utf8mb4_general_ci".into(),
            default_collations: pairs
                .iter()
                .map(|(cs, co)| ((*cs).to_owned(), (*co).to_owned()))
                .collect(),
            collation_charsets: BTreeMap::new(),
        }
    }

    /// A MySQL 8.0 context with utf8mb4 defaults.
    pub fn mysql8_default() -> Self {
        let mut context = Self::mariadb_default();
        context.flavor = Flavor::MySql;
        context.version = "8.0.36".into();
        context.database_collation = "utf8mb4_0900_ai_ci".into();
        context
            .default_collations
            .insert("utf8mb4".into(), "utf8mb4_0900_ai_ci".into());
        context
    }

    fn charset_of(&self, collation: &str) -> String {
        self.collation_charsets
            .get(collation)
            .cloned()
            .or_else(|| collation.split('_').next().map(str::to_owned))
            .unwrap_or_default()
    }

    fn default_collation(&self, charset: &str) -> Option<String> {
        self.default_collations.get(charset).cloned()
    }

    /// The key under which a table name is compared on this server.
    pub fn table_key(&self, name: &str) -> String {
        if self.lower_case_table_names == 0 {
            name.to_owned()
        } else {
            name.to_lowercase()
        }
    }
}

/// Returns the normalized form of `table` (see the module documentation).
pub fn normalize(table: &Table, context: &ServerContext) -> Table {
    let mut table = table.clone();
    let options = &mut table.options;
    options.auto_increment = None;
    let charset = options
        .charset
        .clone()
        .or_else(|| options.collation.as_deref().map(|c| context.charset_of(c)))
        .unwrap_or_else(|| context.database_charset.clone());
    let collation = options
        .collation
        .clone()
        .or_else(|| context.default_collation(&charset))
        .or_else(|| {
            (charset == context.database_charset).then(|| context.database_collation.clone())
        });
    options.charset = Some(charset.clone());
    options.collation = collation.clone();
    if let Some(row_format) = &mut options.row_format {
        *row_format = row_format.to_ascii_uppercase();
    }
    let engine = options.engine.clone();

    for column in &mut table.columns {
        normalize_column(column, &charset, collation.as_deref(), context);
    }
    for foreign_key in &mut table.foreign_keys {
        for action in [&mut foreign_key.on_delete, &mut foreign_key.on_update] {
            // InnoDB enforces NO ACTION and RESTRICT alike, but the server keeps what was
            // written: MariaDB prints an explicit `NO ACTION` and prints nothing for both the
            // default and `RESTRICT`; MySQL 8 prints both explicit rules. The rule is compared
            // as the server shows it, so a shadow reads back exactly like its source.
            if let Some(rule) = action.as_mut() {
                *rule = rule.to_ascii_uppercase();
            }
            if context.flavor == Flavor::MariaDb && action.as_deref() == Some("RESTRICT") {
                *action = None;
            }
        }
        if foreign_key
            .referenced_schema
            .as_deref()
            .is_some_and(|schema| schema.is_empty())
        {
            foreign_key.referenced_schema = None;
        }
    }
    if let Some(partitioning) = &mut table.partitioning {
        let same_engine = |e: &Option<String>| match (e, &engine) {
            (Some(e), Some(t)) => e.eq_ignore_ascii_case(t),
            _ => false,
        };
        for partition in &mut partitioning.partitions {
            if same_engine(&partition.engine) {
                partition.engine = None;
            }
            for sub in &mut partition.subpartitions {
                if same_engine(&sub.engine) {
                    sub.engine = None;
                }
            }
        }
    }
    table
}

fn normalize_column(
    column: &mut Column,
    table_charset: &str,
    table_collation: Option<&str>,
    context: &ServerContext,
) {
    normalize_type(&mut column.data_type);
    let json_check = format!(
        "json_valid({})",
        crate::render::quote_identifier(&column.name)
    );
    if column.data_type.name == "longtext"
        && column.collation.as_deref() == Some("utf8mb4_bin")
        && column.check.as_deref() == Some(json_check.as_str())
    {
        // MariaDB's JSON is an alias: `json` is written back and reads as this again.
        column.data_type = DataType::simple("json");
        column.charset = None;
        column.collation = None;
        column.check = None;
    }
    if column.data_type.is_textual() {
        if column.extra.iter().any(|e| e == "BINARY") {
            column.extra.retain(|e| e != "BINARY");
            let charset = column
                .charset
                .clone()
                .unwrap_or_else(|| table_charset.to_owned());
            column.collation = Some(format!("{charset}_bin"));
        }
        let (charset, collation) = match (&column.charset, &column.collation) {
            (Some(charset), Some(collation)) => (charset.clone(), Some(collation.clone())),
            (Some(charset), None) => (charset.clone(), context.default_collation(charset)),
            (None, Some(collation)) => (context.charset_of(collation), Some(collation.clone())),
            (None, None) => (table_charset.to_owned(), table_collation.map(str::to_owned)),
        };
        column.charset = Some(charset);
        column.collation = collation;
    } else if column.data_type.name != "json" {
        column.charset = None;
        column.collation = None;
    }
    if column.nullable
        && column.default.is_none()
        && column.generated.is_none()
        && !column.auto_increment
    {
        column.default = Some(DefaultValue::Null);
    }
    if let Some(DefaultValue::TypedLiteral(literal)) = &mut column.default {
        if let Some(rest) = literal.strip_prefix('B') {
            *literal = format!("b{rest}");
        } else if let Some(rest) = literal.strip_prefix('X') {
            *literal = format!("x{rest}");
        }
    }
    if let Some(DefaultValue::CurrentTimestamp(Some(0))) = column.default {
        column.default = Some(DefaultValue::CurrentTimestamp(None));
    }
    if let Some(on_update) = &mut column.on_update
        && on_update.fsp == Some(0)
    {
        on_update.fsp = None;
    }
}

fn normalize_type(data_type: &mut DataType) {
    let canonical = match data_type.name.as_str() {
        "integer" => Some("int"),
        "int4" => Some("int"),
        "int8" => Some("bigint"),
        "dec" | "numeric" | "fixed" => Some("decimal"),
        "real" | "double precision" => Some("double"),
        "character" => Some("char"),
        "long varchar" => Some("mediumtext"),
        "long varbinary" => Some("mediumblob"),
        _ => None,
    };
    if let Some(canonical) = canonical {
        data_type.name = canonical.to_owned();
    }
    if matches!(data_type.name.as_str(), "bool" | "boolean") {
        *data_type = DataType::simple("tinyint");
        data_type.params = vec![1];
    }
    if data_type.zerofill {
        data_type.unsigned = true;
    }
    if data_type.is_integer()
        && let Some(&width) = data_type.params.first()
    {
        // MySQL 8 stopped printing display widths; MariaDB prints the default one. Only a
        // non-default width (which matters with ZEROFILL) is structure.
        if Some(width) == default_display_width(&data_type.name, data_type.unsigned) {
            data_type.params.clear();
        }
    }
    if data_type.name == "decimal" && data_type.params.is_empty() {
        data_type.params = vec![10, 0];
    } else if data_type.name == "decimal" && data_type.params.len() == 1 {
        data_type.params.push(0);
    }
}

fn default_display_width(name: &str, unsigned: bool) -> Option<u32> {
    let (signed, unsigned_width) = match name {
        "tinyint" => (4, 3),
        "smallint" => (6, 5),
        "mediumint" => (9, 8),
        "int" => (11, 10),
        "bigint" => (20, 20),
        _ => return None,
    };
    Some(if unsigned { unsigned_width } else { signed })
}

//! Renders model parts back to MySQL-family DDL.
//!
//! Every identifier goes through [`quote_identifier`] and every string through [`quote_string`]:
//! no statement is ever built by pasting an unquoted name.

use std::fmt::Write as _;

use crate::model::{
    CheckConstraint, Column, DefaultValue, ForeignKey, GeneratedStorage, Index, IndexKind,
    IndexTarget, Partition, PartitionBound, PartitionMethod, Partitioning, SubPartitioning, Table,
    TableOptions,
};

/// The SQL flavour to write: they differ in a few spellings (`IGNORED` vs `INVISIBLE` indexes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Flavor {
    MariaDb,
    MySql,
    OceanBase,
}

/// `` `name` `` with embedded backticks doubled.
pub fn quote_identifier(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A single-quoted string literal that reads back as `value` under the default `sql_mode`, which
/// is what every session on a target runs under ([`crate::SESSION_SQL_MODE`]: backslash escapes
/// on).
pub fn quote_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for ch in value.chars() {
        match ch {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{1a}' => out.push_str("\\Z"),
            _ => out.push(ch),
        }
    }
    out.push('\'');
    out
}

/// A full column definition (without position).
pub fn column(column: &Column) -> String {
    let mut out = quote_identifier(&column.name);
    let data_type = &column.data_type;
    out.push(' ');
    out.push_str(&data_type.name);
    if !data_type.values.is_empty() {
        let values: Vec<String> = data_type.values.iter().map(|v| quote_string(v)).collect();
        let _ = write!(out, "({})", values.join(","));
    } else if !data_type.params.is_empty() {
        let params: Vec<String> = data_type.params.iter().map(u32::to_string).collect();
        let _ = write!(out, "({})", params.join(","));
    }
    if data_type.unsigned {
        out.push_str(" unsigned");
    }
    if data_type.zerofill {
        out.push_str(" zerofill");
    }
    if let Some(charset) = &column.charset {
        let _ = write!(out, " CHARACTER SET {charset}");
    }
    if let Some(collation) = &column.collation {
        let _ = write!(out, " COLLATE {collation}");
    }
    for extra in &column.extra {
        let _ = write!(out, " {extra}");
    }
    if let Some(generated) = &column.generated {
        let storage = match generated.storage {
            GeneratedStorage::Virtual => "VIRTUAL",
            GeneratedStorage::Stored => "STORED",
        };
        let _ = write!(
            out,
            " GENERATED ALWAYS AS ({}) {storage}",
            generated.expression
        );
    }
    if !column.nullable {
        out.push_str(" NOT NULL");
    } else if column.generated.is_none() {
        out.push_str(" NULL");
    }
    if let Some(default) = &column.default {
        let _ = write!(out, " DEFAULT {}", default_value(default));
    }
    if let Some(on_update) = &column.on_update {
        let _ = write!(
            out,
            " ON UPDATE {}",
            default_value(&DefaultValue::CurrentTimestamp(on_update.fsp))
        );
    }
    if column.auto_increment {
        out.push_str(" AUTO_INCREMENT");
    }
    if column.invisible {
        out.push_str(" INVISIBLE");
    }
    if !column.comment.is_empty() {
        let _ = write!(out, " COMMENT {}", quote_string(&column.comment));
    }
    if let Some(check) = &column.check {
        let _ = write!(out, " CHECK ({check})");
    }
    out
}

fn default_value(default: &DefaultValue) -> String {
    match default {
        DefaultValue::Null => "NULL".into(),
        DefaultValue::Literal(value) => quote_string(value),
        DefaultValue::TypedLiteral(value) => value.clone(),
        DefaultValue::CurrentTimestamp(None) => "current_timestamp()".into(),
        DefaultValue::CurrentTimestamp(Some(fsp)) => format!("current_timestamp({fsp})"),
        DefaultValue::Expression(expression) => format!("({expression})"),
    }
}

/// An index definition as it appears inside `CREATE TABLE` or after `ALTER TABLE ... ADD`.
pub fn index(index: &Index, flavor: Flavor) -> String {
    let mut out = match index.kind {
        IndexKind::Primary => "PRIMARY KEY".to_owned(),
        IndexKind::Unique => format!("UNIQUE KEY {}", quote_identifier(&index.name)),
        IndexKind::Normal => format!("KEY {}", quote_identifier(&index.name)),
        IndexKind::Fulltext => format!("FULLTEXT KEY {}", quote_identifier(&index.name)),
        IndexKind::Spatial => format!("SPATIAL KEY {}", quote_identifier(&index.name)),
    };
    let parts: Vec<String> = index
        .parts
        .iter()
        .map(|part| {
            let mut text = match &part.target {
                IndexTarget::Column(name) => quote_identifier(name),
                IndexTarget::Expression(expression) => format!("({expression})"),
            };
            if let Some(length) = part.prefix_length {
                let _ = write!(text, "({length})");
            }
            if part.descending {
                text.push_str(" DESC");
            }
            text
        })
        .collect();
    let _ = write!(out, " ({})", parts.join(","));
    if let Some(algorithm) = &index.algorithm {
        let _ = write!(out, " USING {algorithm}");
    }
    for extra in &index.extra {
        let _ = write!(out, " {extra}");
    }
    if !index.comment.is_empty() {
        let _ = write!(out, " COMMENT {}", quote_string(&index.comment));
    }
    if !index.visible {
        out.push_str(match flavor {
            Flavor::MariaDb => " IGNORED",
            Flavor::MySql | Flavor::OceanBase => " INVISIBLE",
        });
    }
    out
}

fn identifier_list(names: &[String]) -> String {
    names
        .iter()
        .map(|name| quote_identifier(name))
        .collect::<Vec<_>>()
        .join(",")
}

/// `CONSTRAINT name FOREIGN KEY (...) REFERENCES ...`.
pub fn foreign_key(foreign_key: &ForeignKey) -> String {
    let mut out = format!(
        "CONSTRAINT {} FOREIGN KEY ({}) REFERENCES ",
        quote_identifier(&foreign_key.name),
        identifier_list(&foreign_key.columns)
    );
    if let Some(schema) = &foreign_key.referenced_schema {
        let _ = write!(out, "{}.", quote_identifier(schema));
    }
    let _ = write!(
        out,
        "{} ({})",
        quote_identifier(&foreign_key.referenced_table),
        identifier_list(&foreign_key.referenced_columns)
    );
    if let Some(action) = &foreign_key.on_delete {
        let _ = write!(out, " ON DELETE {action}");
    }
    if let Some(action) = &foreign_key.on_update {
        let _ = write!(out, " ON UPDATE {action}");
    }
    out
}

/// `CONSTRAINT name CHECK (...)`.
pub fn check(check: &CheckConstraint) -> String {
    let (expression, suffix) = match check.expression.strip_suffix(" NOT ENFORCED") {
        Some(expression) => (expression, " NOT ENFORCED"),
        None => (check.expression.as_str(), ""),
    };
    format!(
        "CONSTRAINT {} CHECK ({expression}){suffix}",
        quote_identifier(&check.name)
    )
}

/// Table options, space-separated (`ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 ...`). The
/// `AUTO_INCREMENT` counter is never rendered: it is data, not structure.
pub fn table_options(options: &TableOptions) -> String {
    let mut parts = Vec::new();
    if let Some(engine) = &options.engine {
        parts.push(format!("ENGINE={engine}"));
    }
    if let Some(charset) = &options.charset {
        parts.push(format!("DEFAULT CHARSET={charset}"));
    }
    if let Some(collation) = &options.collation {
        parts.push(format!("COLLATE={collation}"));
    }
    if let Some(row_format) = &options.row_format {
        parts.push(format!("ROW_FORMAT={row_format}"));
    }
    for (key, value) in &options.other {
        if value.is_empty() {
            parts.push(key.clone());
        } else {
            parts.push(format!("{key}={value}"));
        }
    }
    if !options.comment.is_empty() {
        parts.push(format!("COMMENT={}", quote_string(&options.comment)));
    }
    parts.join(" ")
}

fn method(
    method: PartitionMethod,
    linear: bool,
    expression: &str,
    key_algorithm: Option<u32>,
) -> String {
    let linear = if linear { "LINEAR " } else { "" };
    match method {
        PartitionMethod::Range => format!("RANGE ({expression})"),
        PartitionMethod::RangeColumns => format!("RANGE COLUMNS({expression})"),
        PartitionMethod::List => format!("LIST ({expression})"),
        PartitionMethod::ListColumns => format!("LIST COLUMNS({expression})"),
        PartitionMethod::Hash => format!("{linear}HASH ({expression})"),
        PartitionMethod::Key => match key_algorithm {
            Some(algorithm) => format!("{linear}KEY ALGORITHM={algorithm} ({expression})"),
            None => format!("{linear}KEY ({expression})"),
        },
        PartitionMethod::SystemTime => format!("SYSTEM_TIME {expression}"),
    }
}

fn partition_options(engine: Option<&String>, comment: &str, extra: &[String]) -> String {
    let mut out = String::new();
    if !comment.is_empty() {
        let _ = write!(out, " COMMENT = {}", quote_string(comment));
    }
    for option in extra {
        let _ = write!(out, " {option}");
    }
    if let Some(engine) = engine {
        let _ = write!(out, " ENGINE = {engine}");
    }
    out
}

/// One `PARTITION name VALUES ... [options] [(SUBPARTITION ...)]` definition.
pub fn partition(partition: &Partition) -> String {
    let mut out = format!("PARTITION {}", quote_identifier(&partition.name));
    match &partition.bound {
        PartitionBound::None => {}
        PartitionBound::LessThan(bound) => {
            let _ = write!(out, " VALUES LESS THAN ({bound})");
        }
        PartitionBound::MaxValue => out.push_str(" VALUES LESS THAN MAXVALUE"),
        PartitionBound::In(values) => {
            let _ = write!(out, " VALUES IN ({values})");
        }
        PartitionBound::Default => out.push_str(" DEFAULT"),
        PartitionBound::Other(other) => {
            let _ = write!(out, " {other}");
        }
    }
    out.push_str(&partition_options(
        partition.engine.as_ref(),
        &partition.comment,
        &partition.extra,
    ));
    if !partition.subpartitions.is_empty() {
        let subpartitions: Vec<String> = partition
            .subpartitions
            .iter()
            .map(|sub| {
                format!(
                    "SUBPARTITION {}{}",
                    quote_identifier(&sub.name),
                    partition_options(sub.engine.as_ref(), &sub.comment, &sub.extra)
                )
            })
            .collect();
        let _ = write!(out, " ({})", subpartitions.join(", "));
    }
    out
}

/// The whole `PARTITION BY ...` clause.
pub fn partitioning(partitioning: &Partitioning) -> String {
    let mut out = format!(
        "PARTITION BY {}",
        method(
            partitioning.method,
            partitioning.linear,
            &partitioning.expression,
            partitioning.key_algorithm
        )
    );
    if let Some(count) = partitioning.count {
        let _ = write!(out, " PARTITIONS {count}");
    }
    if let Some(SubPartitioning {
        method: sub_method,
        linear,
        expression,
        key_algorithm,
        count,
    }) = &partitioning.subpartitioning
    {
        let _ = write!(
            out,
            " SUBPARTITION BY {}",
            method(*sub_method, *linear, expression, *key_algorithm)
        );
        if let Some(count) = count {
            let _ = write!(out, " SUBPARTITIONS {count}");
        }
    }
    if !partitioning.partitions.is_empty() {
        let partitions: Vec<String> = partitioning.partitions.iter().map(partition).collect();
        let _ = write!(out, "\n({})", partitions.join(",\n "));
    }
    out
}

/// `CREATE TABLE` for `table` under its own name. Never `CREATE TABLE ... LIKE`, never the
/// `AUTO_INCREMENT` counter.
pub fn create_table(table: &Table, flavor: Flavor) -> String {
    let mut lines: Vec<String> = table.columns.iter().map(column).collect();
    lines.extend(table.primary_key.iter().map(|pk| index(pk, flavor)));
    lines.extend(table.indexes.iter().map(|i| index(i, flavor)));
    lines.extend(table.foreign_keys.iter().map(foreign_key));
    lines.extend(table.checks.iter().map(check));
    let mut out = format!(
        "CREATE TABLE {} (\n  {}\n)",
        quote_identifier(&table.name),
        lines.join(",\n  ")
    );
    let options = table_options(&table.options);
    if !options.is_empty() {
        let _ = write!(out, " {options}");
    }
    if let Some(partitioning_clause) = &table.partitioning {
        let _ = write!(out, "\n{}", partitioning(partitioning_clause));
    }
    out
}

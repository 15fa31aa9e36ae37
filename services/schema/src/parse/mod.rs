//! Recursive-descent parser for `SHOW CREATE TABLE` output of MySQL 5.7/8.0, MariaDB 10.x/11.x
//! and OceanBase (MySQL mode).
//!
//! The grammar the servers print is small and regular: `CREATE TABLE name (` elements `)`
//! table options, then an optional partition clause (possibly inside a versioned comment). The
//! parser accepts exactly that and refuses what it does not understand, naming the position, so
//! a table is reported `UNSUPPORTED` rather than silently mis-modelled. Unknown *table options*
//! are the exception: they are kept verbatim as key/value pairs.

mod column;
mod cursor;
pub(crate) mod lexer;
mod partition;

use cursor::Cursor;
use lexer::TokenKind;

use crate::error::Result;
use crate::model::{
    CheckConstraint, ForeignKey, Index, IndexKind, IndexPart, IndexTarget, Table, TableOptions,
};

/// Parses one `CREATE TABLE` statement as printed by `SHOW CREATE TABLE`.
///
/// Fails with [`crate::SchemaError::Parse`] (naming the byte offset) on anything outside the
/// canonical grammar.
pub fn parse_create_table(ddl: &str) -> Result<Table> {
    let tokens = lexer::tokenize(ddl)?;
    let mut cursor = Cursor::new(ddl, tokens);
    cursor.expect_word("CREATE")?;
    cursor.eat_words(&["OR", "REPLACE"]);
    cursor.eat_word("TEMPORARY");
    cursor.expect_word("TABLE")?;
    cursor.eat_words(&["IF", "NOT", "EXISTS"]);
    let mut name = cursor.identifier()?;
    if cursor.eat_symbol('.') {
        name = cursor.identifier()?;
    }
    let mut table = Table {
        name,
        columns: Vec::new(),
        primary_key: None,
        indexes: Vec::new(),
        foreign_keys: Vec::new(),
        checks: Vec::new(),
        options: TableOptions::default(),
        partitioning: None,
    };
    cursor.expect_symbol('(')?;
    loop {
        element(&mut cursor, &mut table)?;
        if !cursor.eat_symbol(',') {
            break;
        }
    }
    cursor.expect_symbol(')')?;
    table_options(&mut cursor, &mut table.options)?;
    if cursor.is_word("PARTITION") {
        table.partitioning = Some(partition::partitioning(&mut cursor)?);
    }
    cursor.eat_symbol(';');
    if !cursor.at_end() {
        return Err(cursor.error("unexpected text after the table definition"));
    }
    Ok(table)
}

/// One element of the parenthesised list: a column, key or constraint.
fn element(cursor: &mut Cursor<'_>, table: &mut Table) -> Result<()> {
    if cursor.eat_words(&["PRIMARY", "KEY"]) {
        let mut index = index_body(cursor, IndexKind::Primary, false)?;
        index.name = "PRIMARY".into();
        table.primary_key = Some(index);
    } else if cursor.eat_word("UNIQUE") {
        let _ = cursor.eat_word("KEY") || cursor.eat_word("INDEX");
        table
            .indexes
            .push(index_body(cursor, IndexKind::Unique, true)?);
    } else if cursor.eat_word("KEY") || cursor.eat_word("INDEX") {
        table
            .indexes
            .push(index_body(cursor, IndexKind::Normal, true)?);
    } else if cursor.eat_word("FULLTEXT") {
        let _ = cursor.eat_word("KEY") || cursor.eat_word("INDEX");
        table
            .indexes
            .push(index_body(cursor, IndexKind::Fulltext, true)?);
    } else if cursor.eat_word("SPATIAL") {
        let _ = cursor.eat_word("KEY") || cursor.eat_word("INDEX");
        table
            .indexes
            .push(index_body(cursor, IndexKind::Spatial, true)?);
    } else if cursor.is_word("CONSTRAINT") || cursor.is_word("FOREIGN") || cursor.is_word("CHECK") {
        constraint(cursor, table)?;
    } else {
        table.columns.push(column::column(cursor)?);
    }
    Ok(())
}

fn constraint(cursor: &mut Cursor<'_>, table: &mut Table) -> Result<()> {
    let mut name = String::new();
    if cursor.eat_word("CONSTRAINT") && !cursor.is_word("FOREIGN") && !cursor.is_word("CHECK") {
        name = cursor.identifier()?;
    }
    if cursor.eat_words(&["FOREIGN", "KEY"]) {
        if !cursor.is_symbol('(') {
            // MySQL prints the index name after FOREIGN KEY in some versions.
            cursor.identifier()?;
        }
        let columns = cursor.identifier_list()?;
        cursor.expect_word("REFERENCES")?;
        let mut referenced_schema = None;
        let mut referenced_table = cursor.identifier()?;
        if cursor.eat_symbol('.') {
            referenced_schema = Some(referenced_table);
            referenced_table = cursor.identifier()?;
        }
        let referenced_columns = cursor.identifier_list()?;
        let mut foreign_key = ForeignKey {
            name,
            columns,
            referenced_schema,
            referenced_table,
            referenced_columns,
            on_delete: None,
            on_update: None,
        };
        loop {
            if cursor.eat_word("MATCH") {
                cursor.word()?;
            } else if cursor.eat_words(&["ON", "DELETE"]) {
                foreign_key.on_delete = Some(reference_option(cursor)?);
            } else if cursor.eat_words(&["ON", "UPDATE"]) {
                foreign_key.on_update = Some(reference_option(cursor)?);
            } else {
                break;
            }
        }
        table.foreign_keys.push(foreign_key);
    } else if cursor.eat_word("CHECK") {
        let expression = cursor.parenthesized_raw()?;
        // MySQL 8 may append `/*!80016 NOT ENFORCED */`; an unenforced check is still structure.
        let mut expression = expression;
        if cursor.eat_words(&["NOT", "ENFORCED"]) {
            expression.push_str(" NOT ENFORCED");
        } else {
            cursor.eat_word("ENFORCED");
        }
        table.checks.push(CheckConstraint { name, expression });
    } else if cursor.eat_words(&["PRIMARY", "KEY"]) {
        let mut index = index_body(cursor, IndexKind::Primary, false)?;
        index.name = "PRIMARY".into();
        table.primary_key = Some(index);
    } else if cursor.eat_word("UNIQUE") {
        let _ = cursor.eat_word("KEY") || cursor.eat_word("INDEX");
        let mut index = index_body(cursor, IndexKind::Unique, !cursor.is_symbol('('))?;
        if index.name.is_empty() {
            index.name = name;
        }
        table.indexes.push(index);
    } else {
        return Err(cursor.error("expected FOREIGN KEY, CHECK, PRIMARY KEY or UNIQUE"));
    }
    Ok(())
}

fn reference_option(cursor: &mut Cursor<'_>) -> Result<String> {
    for option in [
        &["RESTRICT"][..],
        &["CASCADE"],
        &["SET", "NULL"],
        &["SET", "DEFAULT"],
        &["NO", "ACTION"],
    ] {
        if cursor.eat_words(option) {
            return Ok(option.join(" "));
        }
    }
    Err(cursor.error("expected a referential action"))
}

/// `[name] [USING type] (parts) [options]` of any key.
fn index_body(cursor: &mut Cursor<'_>, kind: IndexKind, named: bool) -> Result<Index> {
    let mut index = Index {
        name: String::new(),
        kind,
        parts: Vec::new(),
        algorithm: None,
        comment: String::new(),
        visible: true,
        extra: Vec::new(),
    };
    if named && !cursor.is_symbol('(') && !cursor.is_word("USING") {
        index.name = cursor.identifier()?;
    }
    if cursor.eat_word("USING") {
        index.algorithm = Some(cursor.word()?.to_ascii_uppercase());
    }
    cursor.expect_symbol('(')?;
    loop {
        index.parts.push(index_part(cursor)?);
        if !cursor.eat_symbol(',') {
            break;
        }
    }
    cursor.expect_symbol(')')?;
    loop {
        if cursor.eat_word("USING") {
            index.algorithm = Some(cursor.word()?.to_ascii_uppercase());
        } else if cursor.eat_word("COMMENT") {
            index.comment = cursor.string()?;
        } else if cursor.eat_word("IGNORED") || cursor.eat_word("INVISIBLE") {
            index.visible = false;
        } else if cursor.eat_words(&["NOT", "IGNORED"]) || cursor.eat_word("VISIBLE") {
            index.visible = true;
        } else if cursor.eat_word("KEY_BLOCK_SIZE") {
            cursor.eat_symbol('=');
            index
                .extra
                .push(format!("KEY_BLOCK_SIZE={}", cursor.number()?));
        } else if cursor.eat_words(&["WITH", "PARSER"]) {
            index
                .extra
                .push(format!("WITH PARSER {}", cursor.identifier()?));
        } else if cursor.eat_word("CLUSTERING") {
            cursor.eat_symbol('=');
            index.extra.push(format!("CLUSTERING={}", cursor.word()?));
        } else if cursor.is_word("ENGINE_ATTRIBUTE") || cursor.is_word("SECONDARY_ENGINE_ATTRIBUTE")
        {
            let key = cursor.word()?.to_ascii_uppercase();
            cursor.eat_symbol('=');
            let value = cursor.string()?;
            index
                .extra
                .push(format!("{key}={}", crate::render::quote_string(&value)));
        } else if cursor.eat_word("BLOCK_SIZE") {
            // OceanBase prints `BLOCK_SIZE 16384` on every index.
            cursor.eat_symbol('=');
            index.extra.push(format!("BLOCK_SIZE {}", cursor.number()?));
        } else if cursor.is_word("GLOBAL") || cursor.is_word("LOCAL") {
            // OceanBase index locality: kept verbatim so it is compared and written back.
            index.extra.push(cursor.word()?.to_ascii_uppercase());
        } else {
            break;
        }
    }
    Ok(index)
}

fn index_part(cursor: &mut Cursor<'_>) -> Result<IndexPart> {
    let target = if cursor.is_symbol('(') {
        IndexTarget::Expression(cursor.parenthesized_raw()?)
    } else {
        IndexTarget::Column(cursor.identifier()?)
    };
    let mut prefix_length = None;
    if cursor.eat_symbol('(') {
        prefix_length = Some(cursor.number()?);
        cursor.expect_symbol(')')?;
    }
    let descending = if cursor.eat_word("DESC") {
        true
    } else {
        cursor.eat_word("ASC");
        false
    };
    Ok(IndexPart {
        target,
        prefix_length,
        descending,
    })
}

/// Table options, up to a partition clause or the end.
fn table_options(cursor: &mut Cursor<'_>, options: &mut TableOptions) -> Result<()> {
    while !cursor.at_end() && !cursor.is_word("PARTITION") && !cursor.is_symbol(';') {
        if cursor.eat_symbol(',') {
            continue;
        }
        cursor.eat_word("DEFAULT");
        let key = if cursor.eat_words(&["CHARACTER", "SET"]) {
            "CHARSET".to_owned()
        } else if cursor.eat_words(&["DATA", "DIRECTORY"]) {
            "DATA DIRECTORY".to_owned()
        } else if cursor.eat_words(&["INDEX", "DIRECTORY"]) {
            "INDEX DIRECTORY".to_owned()
        } else if cursor.eat_words(&["WITH", "SYSTEM", "VERSIONING"]) {
            options
                .other
                .insert("WITH SYSTEM VERSIONING".into(), String::new());
            continue;
        } else {
            match cursor.next() {
                Some(TokenKind::Word(word)) => word.to_ascii_uppercase(),
                // MariaDB quotes engine-defined options it does not know: `` `encrypted`=yes ``.
                Some(TokenKind::Quoted(word)) => format!("`{word}`"),
                _ => return Err(cursor.error("expected a table option")),
            }
        };
        cursor.eat_symbol('=');
        let (value, quoted) = option_value(cursor)?;
        match key.as_str() {
            "ENGINE" | "TYPE" => options.engine = Some(value),
            "CHARSET" => options.charset = Some(value.to_ascii_lowercase()),
            "COLLATE" => options.collation = Some(value.to_ascii_lowercase()),
            "ROW_FORMAT" => options.row_format = Some(value.to_ascii_uppercase()),
            "COMMENT" => options.comment = value,
            "AUTO_INCREMENT" => options.auto_increment = value.parse().ok(),
            // Other values are kept in their SQL spelling so they render back verbatim.
            _ if quoted => {
                options
                    .other
                    .insert(key, crate::render::quote_string(&value));
            }
            _ => {
                options.other.insert(key, value);
            }
        }
    }
    Ok(())
}

/// A table option's value: a string (decoded, flagged `true`), word, number, or parenthesised
/// list (verbatim).
fn option_value(cursor: &mut Cursor<'_>) -> Result<(String, bool)> {
    match cursor.peek().cloned() {
        Some(TokenKind::Str(value)) => {
            cursor.next();
            Ok((value, true))
        }
        Some(TokenKind::Word(value) | TokenKind::Number(value)) => {
            cursor.next();
            Ok((value, false))
        }
        Some(TokenKind::Quoted(value)) => {
            cursor.next();
            Ok((crate::render::quote_identifier(&value), false))
        }
        Some(TokenKind::Symbol('(')) => Ok((format!("({})", cursor.parenthesized_raw()?), false)),
        _ => Err(cursor.error("expected a table option value")),
    }
}

#[cfg(test)]
mod tests;

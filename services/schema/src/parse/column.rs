//! Column definitions: type, attributes, defaults, generated expressions.

use super::cursor::Cursor;
use super::lexer::TokenKind;
use crate::error::Result;
use crate::model::{Column, DataType, DefaultValue, Generated, GeneratedStorage, OnUpdate};

/// Parses `name type attribute...` up to the `,` or `)` that ends the definition.
pub fn column(cursor: &mut Cursor<'_>) -> Result<Column> {
    let name = cursor.identifier()?;
    let data_type = data_type(cursor)?;
    let mut column = Column {
        name,
        data_type,
        charset: None,
        collation: None,
        nullable: true,
        default: None,
        auto_increment: false,
        on_update: None,
        generated: None,
        comment: String::new(),
        invisible: false,
        check: None,
        extra: Vec::new(),
    };
    while !cursor.at_end() && !cursor.is_symbol(',') && !cursor.is_symbol(')') {
        attribute(cursor, &mut column)?;
    }
    Ok(column)
}

fn data_type(cursor: &mut Cursor<'_>) -> Result<DataType> {
    let mut name = cursor.word()?.to_ascii_lowercase();
    // The few two-word spellings a server may print.
    if name == "double" && cursor.eat_word("precision") {
        name = "double".into();
    } else if name == "long" && (cursor.is_word("varchar") || cursor.is_word("varbinary")) {
        name = format!("long {}", cursor.word()?.to_ascii_lowercase());
    }
    let mut data_type = DataType::simple(&name);
    if cursor.eat_symbol('(') {
        loop {
            match cursor.peek() {
                Some(TokenKind::Str(_)) => data_type.values.push(cursor.string()?),
                Some(TokenKind::Number(_)) => data_type.params.push(cursor.number()?),
                _ => return Err(cursor.error("expected a type parameter")),
            }
            if !cursor.eat_symbol(',') {
                break;
            }
        }
        cursor.expect_symbol(')')?;
    }
    loop {
        if cursor.eat_word("unsigned") {
            data_type.unsigned = true;
        } else if cursor.eat_word("zerofill") {
            data_type.zerofill = true;
        } else if cursor.eat_word("signed") {
            data_type.unsigned = false;
        } else {
            break;
        }
    }
    Ok(data_type)
}

fn attribute(cursor: &mut Cursor<'_>, column: &mut Column) -> Result<()> {
    if cursor.eat_words(&["NOT", "NULL"]) {
        column.nullable = false;
    } else if cursor.eat_word("NULL") {
        column.nullable = true;
    } else if cursor.eat_word("DEFAULT") {
        column.default = Some(default_value(cursor)?);
    } else if cursor.eat_word("AUTO_INCREMENT") {
        column.auto_increment = true;
    } else if cursor.eat_words(&["ON", "UPDATE"]) {
        let value = default_value(cursor)?;
        match value {
            DefaultValue::CurrentTimestamp(fsp) => column.on_update = Some(OnUpdate { fsp }),
            _ => return Err(cursor.error("expected CURRENT_TIMESTAMP after ON UPDATE")),
        }
    } else if cursor.eat_word("COMMENT") {
        column.comment = cursor.string()?;
    } else if cursor.eat_words(&["CHARACTER", "SET"]) || cursor.eat_word("CHARSET") {
        column.charset = Some(cursor.identifier()?.to_ascii_lowercase());
    } else if cursor.eat_word("COLLATE") {
        column.collation = Some(cursor.identifier()?.to_ascii_lowercase());
    } else if cursor.eat_word("BINARY") {
        // Old spelling of a binary collation; the server resolves it to `<charset>_bin`.
        column.extra.push("BINARY".into());
    } else if cursor.eat_words(&["GENERATED", "ALWAYS", "AS"]) || cursor.eat_word("AS") {
        let expression = cursor.parenthesized_raw()?;
        let storage = if cursor.eat_word("STORED") || cursor.eat_word("PERSISTENT") {
            GeneratedStorage::Stored
        } else {
            cursor.eat_word("VIRTUAL");
            GeneratedStorage::Virtual
        };
        column.generated = Some(Generated {
            expression,
            storage,
        });
    } else if cursor.eat_word("INVISIBLE") {
        column.invisible = true;
    } else if cursor.eat_word("VISIBLE") {
        column.invisible = false;
    } else if cursor.eat_word("CHECK") {
        column.check = Some(cursor.parenthesized_raw()?);
    } else if cursor.eat_word("SRID") {
        column.extra.push(format!("SRID {}", cursor.number()?));
    } else if cursor.is_word("COLUMN_FORMAT") || cursor.is_word("STORAGE") {
        let key = cursor.word()?.to_ascii_uppercase();
        let value = cursor.word()?.to_ascii_uppercase();
        column.extra.push(format!("{key} {value}"));
    } else if cursor.is_word("REF_SYSTEM_ID") {
        cursor.word()?;
        cursor.expect_symbol('=')?;
        column
            .extra
            .push(format!("REF_SYSTEM_ID={}", cursor.number()?));
    } else if cursor.eat_words(&["PRIMARY", "KEY"]) || cursor.eat_words(&["UNIQUE", "KEY"]) {
        // Not produced by SHOW CREATE TABLE (keys are listed separately); refusing is safer
        // than silently dropping a key.
        return Err(cursor.error("inline key definitions are not canonical DDL"));
    } else {
        return Err(cursor.error("unknown column attribute"));
    }
    Ok(())
}

/// Parses the value after `DEFAULT` or `ON UPDATE`.
fn default_value(cursor: &mut Cursor<'_>) -> Result<DefaultValue> {
    let start = cursor.position();
    match cursor.peek().cloned() {
        Some(TokenKind::Str(value)) => {
            cursor.next();
            Ok(DefaultValue::Literal(value))
        }
        Some(TokenKind::Number(value)) => {
            cursor.next();
            Ok(DefaultValue::Literal(value))
        }
        Some(TokenKind::Symbol(sign @ ('-' | '+'))) => {
            cursor.next();
            match cursor.next() {
                Some(TokenKind::Number(value)) => Ok(DefaultValue::Literal(if sign == '-' {
                    format!("-{value}")
                } else {
                    value
                })),
                _ => Err(cursor.error("expected a number after the sign")),
            }
        }
        Some(TokenKind::TypedLiteral(value)) => {
            cursor.next();
            Ok(DefaultValue::TypedLiteral(value))
        }
        Some(TokenKind::Symbol('(')) => {
            let expression = cursor.parenthesized_raw()?;
            Ok(classify_expression(&expression))
        }
        Some(TokenKind::Word(word)) => {
            cursor.next();
            if word.eq_ignore_ascii_case("NULL") {
                return Ok(DefaultValue::Null);
            }
            if cursor.is_symbol('(') {
                cursor.parenthesized_raw()?;
            }
            Ok(classify_expression(&cursor.raw_since(start)))
        }
        _ => Err(cursor.error("expected a default value")),
    }
}

/// Recognises `CURRENT_TIMESTAMP` in all its spellings; anything else stays an expression.
pub fn classify_expression(expression: &str) -> DefaultValue {
    let compact: String = expression
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    for function in ["current_timestamp", "now", "localtimestamp", "localtime"] {
        if let Some(rest) = compact.strip_prefix(function) {
            if rest.is_empty() || rest == "()" {
                return DefaultValue::CurrentTimestamp(None);
            }
            if let Some(fsp) = rest
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .and_then(|digits| digits.parse::<u32>().ok())
            {
                return DefaultValue::CurrentTimestamp((fsp > 0).then_some(fsp));
            }
        }
    }
    DefaultValue::Expression(expression.trim().to_owned())
}

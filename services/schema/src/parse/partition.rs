//! `PARTITION BY ...` clauses, with partitions, bounds and subpartitions.

use super::cursor::Cursor;
use super::lexer::TokenKind;
use crate::error::Result;
use crate::model::{
    Partition, PartitionBound, PartitionMethod, Partitioning, SubPartition, SubPartitioning,
};

/// Parses from `PARTITION BY` to the end of the partition list.
pub fn partitioning(cursor: &mut Cursor<'_>) -> Result<Partitioning> {
    cursor.expect_word("PARTITION")?;
    cursor.expect_word("BY")?;
    let (method, linear, expression, key_algorithm) = partition_method(cursor)?;
    let mut partitioning = Partitioning {
        method,
        linear,
        expression,
        key_algorithm,
        count: None,
        subpartitioning: None,
        partitions: Vec::new(),
    };
    if method == PartitionMethod::SystemTime && !cursor.is_word("PARTITIONS") {
        // `PARTITION BY SYSTEM_TIME INTERVAL 1 MONTH ...`: keep the rest of the clause verbatim.
        let start = cursor.position();
        while !cursor.at_end() && !cursor.is_symbol('(') && !cursor.is_word("PARTITIONS") {
            cursor.next();
        }
        partitioning.expression = cursor.raw_since(start);
    }
    if cursor.eat_word("PARTITIONS") {
        partitioning.count = Some(cursor.number()?);
    }
    if cursor.eat_word("SUBPARTITION") {
        cursor.expect_word("BY")?;
        let (method, linear, expression, key_algorithm) = partition_method(cursor)?;
        let mut count = None;
        if cursor.eat_word("SUBPARTITIONS") {
            count = Some(cursor.number()?);
        }
        partitioning.subpartitioning = Some(SubPartitioning {
            method,
            linear,
            expression,
            key_algorithm,
            count,
        });
    }
    if cursor.eat_symbol('(') {
        loop {
            partitioning.partitions.push(partition(cursor)?);
            if !cursor.eat_symbol(',') {
                break;
            }
        }
        cursor.expect_symbol(')')?;
    }
    Ok(partitioning)
}

type Method = (PartitionMethod, bool, String, Option<u32>);

fn partition_method(cursor: &mut Cursor<'_>) -> Result<Method> {
    let linear = cursor.eat_word("LINEAR");
    let (method, mut key_algorithm) = if cursor.eat_word("HASH") {
        (PartitionMethod::Hash, None)
    } else if cursor.eat_word("KEY") {
        let mut algorithm = None;
        if cursor.eat_word("ALGORITHM") {
            cursor.expect_symbol('=')?;
            algorithm = Some(cursor.number()?);
        }
        (PartitionMethod::Key, algorithm)
    } else if cursor.eat_word("RANGE") {
        if cursor.eat_word("COLUMNS") {
            (PartitionMethod::RangeColumns, None)
        } else {
            (PartitionMethod::Range, None)
        }
    } else if cursor.eat_word("LIST") {
        if cursor.eat_word("COLUMNS") {
            (PartitionMethod::ListColumns, None)
        } else {
            (PartitionMethod::List, None)
        }
    } else if cursor.eat_word("SYSTEM_TIME") {
        return Ok((PartitionMethod::SystemTime, false, String::new(), None));
    } else {
        return Err(cursor.error("expected a partitioning method"));
    };
    if method == PartitionMethod::Key && cursor.eat_word("ALGORITHM") {
        cursor.expect_symbol('=')?;
        key_algorithm = Some(cursor.number()?);
    }
    let expression = cursor.parenthesized_raw()?;
    Ok((method, linear, expression, key_algorithm))
}

fn partition(cursor: &mut Cursor<'_>) -> Result<Partition> {
    cursor.expect_word("PARTITION")?;
    let name = cursor.identifier()?;
    let bound = if cursor.eat_word("VALUES") {
        if cursor.eat_words(&["LESS", "THAN"]) {
            if cursor.eat_word("MAXVALUE") {
                PartitionBound::MaxValue
            } else {
                PartitionBound::LessThan(cursor.parenthesized_raw()?)
            }
        } else if cursor.eat_word("IN") {
            PartitionBound::In(cursor.parenthesized_raw()?)
        } else {
            return Err(cursor.error("expected LESS THAN or IN"));
        }
    } else if cursor.eat_word("DEFAULT") {
        PartitionBound::Default
    } else if cursor.is_word("HISTORY") || cursor.is_word("CURRENT") {
        PartitionBound::Other(cursor.word()?.to_ascii_uppercase())
    } else {
        PartitionBound::None
    };
    let (engine, comment, extra) = partition_options(cursor)?;
    let mut subpartitions = Vec::new();
    if cursor.eat_symbol('(') {
        loop {
            cursor.expect_word("SUBPARTITION")?;
            let name = cursor.identifier()?;
            let (engine, comment, extra) = partition_options(cursor)?;
            subpartitions.push(SubPartition {
                name,
                engine,
                comment,
                extra,
            });
            if !cursor.eat_symbol(',') {
                break;
            }
        }
        cursor.expect_symbol(')')?;
    }
    Ok(Partition {
        name,
        bound,
        engine,
        comment,
        extra,
        subpartitions,
    })
}

type PartitionOptions = (Option<String>, String, Vec<String>);

fn partition_options(cursor: &mut Cursor<'_>) -> Result<PartitionOptions> {
    let mut engine = None;
    let mut comment = String::new();
    let mut extra = Vec::new();
    loop {
        if cursor.eat_words(&["STORAGE", "ENGINE"]) || cursor.eat_word("ENGINE") {
            cursor.eat_symbol('=');
            engine = Some(cursor.identifier()?);
        } else if cursor.eat_word("COMMENT") {
            cursor.eat_symbol('=');
            comment = cursor.string()?;
        } else if let Some(TokenKind::Word(word)) = cursor.peek().cloned() {
            let key = word.to_ascii_uppercase();
            let known = [
                "DATA",
                "INDEX",
                "MAX_ROWS",
                "MIN_ROWS",
                "TABLESPACE",
                "NODEGROUP",
            ];
            if !known.contains(&key.as_str()) {
                break;
            }
            cursor.next();
            let key = if key == "DATA" || key == "INDEX" {
                cursor.expect_word("DIRECTORY")?;
                format!("{key} DIRECTORY")
            } else {
                key
            };
            cursor.eat_symbol('=');
            let value = match cursor.next() {
                Some(TokenKind::Str(value)) => crate::render::quote_string(&value),
                Some(TokenKind::Number(value) | TokenKind::Word(value)) => value,
                Some(TokenKind::Quoted(value)) => crate::render::quote_identifier(&value),
                _ => return Err(cursor.error("expected a partition option value")),
            };
            extra.push(format!("{key} = {value}"));
        } else {
            break;
        }
    }
    Ok((engine, comment, extra))
}

//! Tokenizer for canonical MySQL-family DDL.
//!
//! Versioned comments (`/*!50100 PARTITION BY ... */`, `/*!80023 INVISIBLE */`) are transparent:
//! their opening and closing markers are skipped and their content is tokenized as if it were
//! plain text, which is what a server of a recent enough version does. Other comments are skipped.

use crate::error::{Result, SchemaError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenKind {
    /// A bare word: keyword, unquoted identifier, type name.
    Word(String),
    /// A backtick-quoted identifier, with doubled backticks undone.
    Quoted(String),
    /// A string literal, decoded (escapes and doubled quotes undone).
    Str(String),
    /// A number, verbatim (`0`, `1.50`, `00003`, `1e10`).
    Number(String),
    /// `b'0101'`, `x'1F'`, `0x1F`, `_utf8mb4'...'` (charset introducers) — kept verbatim.
    TypedLiteral(String),
    /// Any single punctuation character.
    Symbol(char),
}

#[derive(Debug, Clone)]
pub struct Token {
    pub kind: TokenKind,
    /// Byte offsets into the source text, so callers can take expressions verbatim.
    pub start: usize,
    pub end: usize,
}

/// Splits `text` into tokens.
///
/// Fails on an unterminated string, identifier or comment.
pub fn tokenize(text: &str) -> Result<Vec<Token>> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut pos = 0;
    // Depth of open versioned comments whose closing `*/` must be skipped.
    let mut versioned_depth = 0usize;
    while pos < bytes.len() {
        let byte = bytes[pos];
        if byte.is_ascii_whitespace() {
            pos += 1;
            continue;
        }
        if text[pos..].starts_with("/*!") {
            pos += 3;
            while pos < bytes.len() && bytes[pos].is_ascii_digit() {
                pos += 1;
            }
            versioned_depth += 1;
            continue;
        }
        if text[pos..].starts_with("*/") && versioned_depth > 0 {
            versioned_depth -= 1;
            pos += 2;
            continue;
        }
        if text[pos..].starts_with("/*") {
            let end = text[pos + 2..]
                .find("*/")
                .ok_or_else(|| SchemaError::parse(pos, "unterminated comment"))?;
            pos += 2 + end + 2;
            continue;
        }
        if text[pos..].starts_with("-- ") || byte == b'#' {
            pos = text[pos..].find('\n').map_or(bytes.len(), |n| pos + n);
            continue;
        }
        let start = pos;
        let kind = match byte {
            b'`' => {
                let (value, next) = read_quoted(text, pos, b'`', false)?;
                pos = next;
                TokenKind::Quoted(value)
            }
            b'\'' | b'"' => {
                let (value, next) = read_quoted(text, pos, byte, true)?;
                pos = next;
                TokenKind::Str(value)
            }
            b'0'..=b'9' => {
                if (text[pos..].starts_with("0x") || text[pos..].starts_with("0b"))
                    && bytes.get(pos + 2).is_some_and(u8::is_ascii_alphanumeric)
                {
                    pos = scan_word(bytes, pos);
                    TokenKind::TypedLiteral(text[start..pos].to_owned())
                } else {
                    pos = scan_number(bytes, pos);
                    // Identifiers may start with digits (`1col`): a number followed by letters.
                    if bytes.get(pos).is_some_and(|b| is_word_byte(*b)) {
                        pos = scan_word(bytes, pos);
                        TokenKind::Word(text[start..pos].to_owned())
                    } else {
                        TokenKind::Number(text[start..pos].to_owned())
                    }
                }
            }
            _ if is_word_byte(byte) => {
                pos = scan_word(bytes, pos);
                let word = &text[start..pos];
                let introducer =
                    matches!(word, "b" | "B" | "x" | "X" | "n" | "N") || word.starts_with('_');
                if introducer && bytes.get(pos) == Some(&b'\'') {
                    let (_, next) = read_quoted(text, pos, b'\'', true)?;
                    pos = next;
                    TokenKind::TypedLiteral(text[start..pos].to_owned())
                } else {
                    TokenKind::Word(word.to_owned())
                }
            }
            _ => {
                let symbol = text[pos..]
                    .chars()
                    .next()
                    .ok_or_else(|| SchemaError::parse(pos, "unexpected end"))?;
                pos += symbol.len_utf8();
                TokenKind::Symbol(symbol)
            }
        };
        tokens.push(Token {
            kind,
            start,
            end: pos,
        });
    }
    Ok(tokens)
}

fn is_word_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'$' || byte >= 0x80
}

fn scan_word(bytes: &[u8], mut pos: usize) -> usize {
    while pos < bytes.len() && is_word_byte(bytes[pos]) {
        pos += 1;
    }
    pos
}

fn scan_number(bytes: &[u8], mut pos: usize) -> usize {
    while pos < bytes.len() && (bytes[pos].is_ascii_digit() || bytes[pos] == b'.') {
        pos += 1;
    }
    // Exponent: `1e10`, `1.5E-3`.
    if pos < bytes.len() && (bytes[pos] == b'e' || bytes[pos] == b'E') {
        let mut next = pos + 1;
        if next < bytes.len() && (bytes[next] == b'-' || bytes[next] == b'+') {
            next += 1;
        }
        if next < bytes.len() && bytes[next].is_ascii_digit() {
            pos = next;
            while pos < bytes.len() && bytes[pos].is_ascii_digit() {
                pos += 1;
            }
        }
    }
    pos
}

/// Reads a quoted token starting at `start` (the opening quote). A doubled quote stands for one;
/// in string literals, backslash escapes are decoded as the server writes them.
fn read_quoted(text: &str, start: usize, quote: u8, escapes: bool) -> Result<(String, usize)> {
    let bytes = text.as_bytes();
    let mut value = String::new();
    let mut pos = start + 1;
    let mut chunk_start = pos;
    while pos < bytes.len() {
        let byte = bytes[pos];
        if byte == quote {
            value.push_str(&text[chunk_start..pos]);
            if bytes.get(pos + 1) == Some(&quote) {
                value.push(quote as char);
                pos += 2;
                chunk_start = pos;
                continue;
            }
            return Ok((value, pos + 1));
        }
        if escapes && byte == b'\\' && pos + 1 < bytes.len() {
            value.push_str(&text[chunk_start..pos]);
            let escaped = bytes[pos + 1];
            match escaped {
                b'0' => value.push('\0'),
                b'n' => value.push('\n'),
                b'r' => value.push('\r'),
                b't' => value.push('\t'),
                b'b' => value.push('\u{8}'),
                b'Z' => value.push('\u{1a}'),
                // `\%` and `\_` keep their backslash (they matter only to LIKE).
                b'%' | b'_' => {
                    value.push('\\');
                    value.push(escaped as char);
                }
                _ => {
                    let ch = text[pos + 1..].chars().next().unwrap_or('\\');
                    value.push(ch);
                    pos += ch.len_utf8() - 1;
                }
            }
            pos += 2;
            chunk_start = pos;
            continue;
        }
        pos += 1;
    }
    Err(SchemaError::parse(start, "unterminated quoted text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<TokenKind> {
        tokenize(text)
            .unwrap()
            .into_iter()
            .map(|t| t.kind)
            .collect()
    }

    #[test]
    fn quoted_identifiers_and_strings_are_decoded() {
        assert_eq!(
            kinds("`a``b` 'it''s\\\\x\\0'"),
            vec![
                TokenKind::Quoted("a`b".into()),
                TokenKind::Str("it's\\x\0".into())
            ]
        );
    }

    #[test]
    fn versioned_comments_are_transparent() {
        assert_eq!(
            kinds("a /*!50100 PARTITION BY */ b /* skip */ c"),
            vec![
                TokenKind::Word("a".into()),
                TokenKind::Word("PARTITION".into()),
                TokenKind::Word("BY".into()),
                TokenKind::Word("b".into()),
                TokenKind::Word("c".into()),
            ]
        );
    }

    #[test]
    fn typed_literals_and_numbers() {
        assert_eq!(
            kinds("b'101' 0x1F 1.50 -1 _utf8mb4'x'"),
            vec![
                TokenKind::TypedLiteral("b'101'".into()),
                TokenKind::TypedLiteral("0x1F".into()),
                TokenKind::Number("1.50".into()),
                TokenKind::Symbol('-'),
                TokenKind::Number("1".into()),
                TokenKind::TypedLiteral("_utf8mb4'x'".into()),
            ]
        );
    }

    #[test]
    fn unterminated_input_is_an_error() {
        assert!(tokenize("'abc").is_err());
        assert!(tokenize("`abc").is_err());
        assert!(tokenize("/* abc").is_err());
    }
}

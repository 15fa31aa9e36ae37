//! A small MariaDB/MySQL tokenizer for the safety guard, reading text as the executor's session
//! does.
//!
//! It is deliberately not a parser: the guard only needs to know where strings, quoted
//! identifiers, comments and statement separators are, so that a keyword hidden in a string or
//! a comment is never mistaken for code. It reads exactly one way, under the `sql_mode` the
//! executor pins on its session ([`SESSION_SQL_MODE`]: backslash escapes on, `"` quoting
//! strings) and the `utf8mb4` connection character set, in which no byte of a multi-byte
//! character is an ASCII quote or backslash.
//!
//! What it reads as the server does:
//! - `'…'` and `"…"` strings with doubled quotes and backslash escapes (`'it\'s'`, as MariaDB's
//!   `SHOW CREATE TABLE` prints it);
//! - `` `…` `` identifiers with doubled backticks (no escapes inside);
//! - `-- ` (dash dash then space, tab, CR or newline) and `#` comments to the end of the line,
//!   and `/* … */` comments, ended by the first `*/` as MariaDB ends them; all are dropped;
//! - `;`, words (`[A-Za-z0-9_$]`), numbers (`1`, `1.5`, `.5`, `1e-3`, `0x1F`, `0b101`) and any
//!   other ASCII punctuation, one character at a time. `--` followed by printable ASCII (MariaDB
//!   prints `- -a` as ``--`a` `` in expressions) is two minus signs, for the server as for us.
//!
//! What it refuses, because the server could read it differently or the schema engine's
//! renderer never writes it (it quotes every identifier and writes no comment):
//! - executable comments (`/*!…*/`, `/*M!…*/`, with or without a version) and optimizer hints
//!   (`/*+…*/`): the server ends them at the first `*/` whatever quotes lie inside and runs or
//!   skips their body by version;
//! - outside strings and quoted names: any control character but tab, CR and newline (vertical
//!   tab and form feed too: whitespace to MariaDB's `utf8mb4` tables, but the renderer never
//!   writes them and `--` followed by any control character starts a comment for the server),
//!   any non-ASCII character (MariaDB reads non-ASCII bytes as identifier characters, Rust's
//!   `is_whitespace` reads U+00A0 as a space), a backslash (`\N` is `NULL` to the server) and a
//!   number running into a word (`1.5TABLE` is `1.5` then `TABLE` to the server);
//! - `--` followed by a control or non-ASCII character, or at the very end (the server then
//!   reads the byte past the statement, which is not ours to know);
//! - `/*` inside a comment (MariaDB nests inside some executable comments, not in plain ones);
//! - a NUL character anywhere, strings and quoted names included (C code in the server and its
//!   clients may end the text there);
//! - anything left open (an unterminated string, identifier or comment).

use std::fmt;

#[cfg(doc)]
use shadowsync_schema::SESSION_SQL_MODE;

/// One token of a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// A bare word: keyword or unquoted identifier (ASCII letters, digits, `_`, `$`).
    Word(String),
    /// A backtick-quoted identifier, unescaped.
    QuotedIdentifier(String),
    /// A `'…'` or `"…"` literal, unescaped as the server does.
    String(String),
    /// A number (`1`, `1.5`, `.5`, `1e-3`, `0x1F`, `0b101`).
    Number(String),
    /// `;`
    Semicolon,
    /// Any other ASCII character: `(`, `)`, `,`, `.`, `=`, …
    Punct(char),
}

impl Token {
    /// True for a bare word equal to `keyword`, ignoring ASCII case.
    pub fn is_keyword(&self, keyword: &str) -> bool {
        matches!(self, Token::Word(word) if word.eq_ignore_ascii_case(keyword))
    }

    /// The identifier this token names, bare or quoted.
    pub fn identifier(&self) -> Option<&str> {
        match self {
            Token::Word(word) | Token::QuotedIdentifier(word) => Some(word),
            _ => None,
        }
    }
}

/// Why a statement could not be tokenized; `at` is a character offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenizeError {
    UnterminatedString,
    UnterminatedIdentifier,
    UnterminatedComment,
    /// `/*!…*/`, `/*M!…*/` or `/*+…*/`.
    ExecutableComment {
        at: usize,
    },
    /// `/*` inside a comment.
    NestedComment {
        at: usize,
    },
    /// A control character outside a string or quoted name.
    ControlCharacter {
        character: char,
        at: usize,
    },
    /// A non-ASCII character outside a string or quoted name.
    NonAscii {
        character: char,
        at: usize,
    },
    /// A NUL character, even inside a string or quoted name.
    Nul {
        at: usize,
    },
    /// `--` followed by a control or non-ASCII character (`None`: by nothing).
    AmbiguousDashes {
        followed_by: Option<char>,
        at: usize,
    },
    /// A backslash outside a string.
    Backslash {
        at: usize,
    },
    /// A number running into a word, such as `1.5TABLE` or `1e5x`.
    NumberRunsIntoWord {
        text: String,
        at: usize,
    },
}

impl fmt::Display for TokenizeError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnterminatedString => formatter.write_str("unterminated string literal"),
            Self::UnterminatedIdentifier => formatter.write_str("unterminated quoted identifier"),
            Self::UnterminatedComment => formatter.write_str("unterminated comment"),
            Self::ExecutableComment { at } => write!(
                formatter,
                "executable comment or optimizer hint (`/*!`, `/*M!`, `/*+`) at character {at}"
            ),
            Self::NestedComment { at } => {
                write!(formatter, "`/*` inside a comment at character {at}")
            }
            Self::ControlCharacter { character, at } => write!(
                formatter,
                "control character U+{:04X} outside a string at character {at}",
                u32::from(*character)
            ),
            Self::NonAscii { character, at } => write!(
                formatter,
                "non-ASCII character U+{:04X} outside a string or quoted name at character {at}",
                u32::from(*character)
            ),
            Self::Nul { at } => write!(formatter, "NUL character at character {at}"),
            Self::AmbiguousDashes {
                followed_by: Some(next),
                at,
            } => write!(
                formatter,
                "`--` followed by U+{:04X} at character {at} (the server may read a comment)",
                u32::from(*next)
            ),
            Self::AmbiguousDashes {
                followed_by: None,
                at,
            } => write!(
                formatter,
                "`--` at the end of the statement (character {at})"
            ),
            Self::Backslash { at } => {
                write!(formatter, "backslash outside a string at character {at}")
            }
            Self::NumberRunsIntoWord { text, at } => write!(
                formatter,
                "`{text}` at character {at} is neither a number nor a word"
            ),
        }
    }
}

/// Splits `sql` into tokens as a session under `SESSION_SQL_MODE` reads it, dropping comments
/// and whitespace. Fails on anything listed in the module documentation.
pub fn tokenize(sql: &str) -> Result<Vec<Token>, TokenizeError> {
    let mut tokenizer = Tokenizer {
        chars: sql.chars().collect(),
        position: 0,
        tokens: Vec::new(),
    };
    tokenizer.run()?;
    Ok(tokenizer.tokens)
}

/// The whitespace the renderer writes, read alike by the server and by us.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// Identifier characters of unquoted names, ASCII only (non-ASCII is refused before).
fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$'
}

/// Characters allowed outside strings and quoted names, comments included.
fn check_plain(c: char, at: usize) -> Result<(), TokenizeError> {
    if c == '\0' {
        Err(TokenizeError::Nul { at })
    } else if is_space(c) {
        Ok(())
    } else if c.is_ascii_control() {
        Err(TokenizeError::ControlCharacter { character: c, at })
    } else if !c.is_ascii() {
        Err(TokenizeError::NonAscii { character: c, at })
    } else {
        Ok(())
    }
}

struct Tokenizer {
    chars: Vec<char>,
    position: usize,
    tokens: Vec<Token>,
}

impl Tokenizer {
    fn peek(&self, offset: usize) -> Option<char> {
        self.chars.get(self.position + offset).copied()
    }

    fn run(&mut self) -> Result<(), TokenizeError> {
        while let Some(c) = self.peek(0) {
            let at = self.position;
            check_plain(c, at)?;
            match c {
                c if is_space(c) => self.position += 1,
                '\'' | '"' => self.string(c)?,
                '`' => self.quoted_identifier()?,
                '#' => self.line_comment()?,
                '-' if self.peek(1) == Some('-') => match self.peek(2) {
                    Some(next) if is_space(next) => self.line_comment()?,
                    Some(next) if next.is_ascii_graphic() => {
                        // `--x`: a minus sign, for the server as for us.
                        self.tokens.push(Token::Punct('-'));
                        self.position += 1;
                    }
                    followed_by => {
                        return Err(TokenizeError::AmbiguousDashes { followed_by, at });
                    }
                },
                '/' if self.peek(1) == Some('*') => self.block_comment()?,
                '\\' => return Err(TokenizeError::Backslash { at }),
                ';' => {
                    self.tokens.push(Token::Semicolon);
                    self.position += 1;
                }
                '.' if self.peek(1).is_some_and(|d| d.is_ascii_digit()) && !self.after_name() => {
                    self.number()?;
                }
                c if c.is_ascii_digit() => self.number()?,
                c if is_word_char(c) => self.word(),
                c => {
                    self.tokens.push(Token::Punct(c));
                    self.position += 1;
                }
            }
        }
        Ok(())
    }

    /// True when the previous character ends a name, so a `.` here separates `db.table`.
    fn after_name(&self) -> bool {
        self.position
            .checked_sub(1)
            .and_then(|previous| self.chars.get(previous))
            .is_some_and(|p| is_word_char(*p) || *p == '`')
    }

    fn string(&mut self, quote: char) -> Result<(), TokenizeError> {
        self.position += 1;
        let mut value = String::new();
        loop {
            let at = self.position;
            let c = self.peek(0).ok_or(TokenizeError::UnterminatedString)?;
            if c == '\0' {
                return Err(TokenizeError::Nul { at });
            }
            self.position += 1;
            if c == '\\' {
                let escaped = self.peek(0).ok_or(TokenizeError::UnterminatedString)?;
                if escaped == '\0' {
                    return Err(TokenizeError::Nul { at: at + 1 });
                }
                self.position += 1;
                unescape(escaped, &mut value);
            } else if c == quote {
                if self.peek(0) == Some(quote) {
                    self.position += 1;
                    value.push(quote);
                } else {
                    self.tokens.push(Token::String(value));
                    return Ok(());
                }
            } else {
                value.push(c);
            }
        }
    }

    fn quoted_identifier(&mut self) -> Result<(), TokenizeError> {
        self.position += 1;
        let mut value = String::new();
        loop {
            let at = self.position;
            let c = self.peek(0).ok_or(TokenizeError::UnterminatedIdentifier)?;
            if c == '\0' {
                return Err(TokenizeError::Nul { at });
            }
            self.position += 1;
            if c == '`' {
                if self.peek(0) == Some('`') {
                    self.position += 1;
                    value.push('`');
                } else {
                    self.tokens.push(Token::QuotedIdentifier(value));
                    return Ok(());
                }
            } else {
                value.push(c);
            }
        }
    }

    /// `#` or `-- ` up to the newline (the server also stops at a NUL, which is refused).
    fn line_comment(&mut self) -> Result<(), TokenizeError> {
        while let Some(c) = self.peek(0) {
            check_plain(c, self.position)?;
            self.position += 1;
            if c == '\n' {
                break;
            }
        }
        Ok(())
    }

    /// `/* … */`, ended by the first `*/` (MariaDB does not nest plain comments).
    fn block_comment(&mut self) -> Result<(), TokenizeError> {
        let at = self.position;
        let executable = matches!(
            (self.peek(2), self.peek(3)),
            (Some('!' | '+'), _) | (Some('M'), Some('!'))
        );
        if executable {
            return Err(TokenizeError::ExecutableComment { at });
        }
        self.position += 2;
        loop {
            let c = self.peek(0).ok_or(TokenizeError::UnterminatedComment)?;
            check_plain(c, self.position)?;
            match (c, self.peek(1)) {
                ('*', Some('/')) => {
                    self.position += 2;
                    return Ok(());
                }
                ('/', Some('*')) => {
                    return Err(TokenizeError::NestedComment { at: self.position });
                }
                _ => self.position += 1,
            }
        }
    }

    /// A run of number-like characters; it must be a whole number (the server splits
    /// `1.5TABLE` or `1e5x` after the number, a run we would read as one word).
    fn number(&mut self) -> Result<(), TokenizeError> {
        let start = self.position;
        while let Some(c) = self.peek(0) {
            let exponent_sign = (c == '+' || c == '-')
                && self
                    .position
                    .checked_sub(1)
                    .and_then(|previous| self.chars.get(previous))
                    .is_some_and(|p| p.eq_ignore_ascii_case(&'e'))
                && self.peek(1).is_some_and(|d| d.is_ascii_digit());
            if is_word_char(c) || c == '.' || exponent_sign {
                self.position += 1;
            } else {
                break;
            }
        }
        let text: String = self.chars[start..self.position].iter().collect();
        if is_number(&text) {
            self.tokens.push(Token::Number(text));
            Ok(())
        } else {
            Err(TokenizeError::NumberRunsIntoWord { text, at: start })
        }
    }

    fn word(&mut self) {
        let start = self.position;
        while self.peek(0).is_some_and(is_word_char) {
            self.position += 1;
        }
        let text: String = self.chars[start..self.position].iter().collect();
        self.tokens.push(Token::Word(text));
    }
}

/// The character a backslash escape stands for, as the server unescapes it (`\%` and `\_`
/// keep their backslash, for `LIKE`).
fn unescape(escaped: char, value: &mut String) {
    match escaped {
        '0' => value.push('\0'),
        'b' => value.push('\u{8}'),
        'n' => value.push('\n'),
        'r' => value.push('\r'),
        't' => value.push('\t'),
        'Z' => value.push('\u{1a}'),
        '%' | '_' => {
            value.push('\\');
            value.push(escaped);
        }
        other => value.push(other),
    }
}

/// `1`, `1.5`, `.5`, `1.`, `1e-3`, `2.5E+10`, `0x1F`, `0b101`.
fn is_number(text: &str) -> bool {
    if let Some(hex) = text.strip_prefix("0x") {
        return !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit());
    }
    if let Some(bits) = text.strip_prefix("0b") {
        return !bits.is_empty() && bits.chars().all(|c| c == '0' || c == '1');
    }
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (text, None),
    };
    let mantissa_ok = mantissa.chars().any(|c| c.is_ascii_digit())
        && mantissa.chars().filter(|c| *c == '.').count() <= 1
        && mantissa.chars().all(|c| c.is_ascii_digit() || c == '.');
    let exponent_ok = exponent.is_none_or(|e| {
        let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
        !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())
    });
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests;

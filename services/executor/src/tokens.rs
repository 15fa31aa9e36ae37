//! A small MariaDB/MySQL tokenizer for the safety guard.
//!
//! It is deliberately not a parser: the guard only needs to know where strings, quoted
//! identifiers, comments and statement separators are, so that a keyword hidden in a string or a
//! comment is never mistaken for code, and code hidden in an executable comment is never
//! mistaken for a comment. What it understands:
//! - `'…'` and `"…"` strings with doubled quotes, and with backslash escapes or without them
//!   ([`Escapes`]: the server's `NO_BACKSLASH_ESCAPES` mode, which the guard cannot know, decides
//!   whether `'a\' ; DROP …` is one string or a string and a second statement, so the guard
//!   tokenizes both ways and requires both readings to pass);
//! - `` `…` `` identifiers with doubled backticks;
//! - `-- ` (dash dash followed by whitespace or the end), `#` and `/* … */` comments, which are
//!   dropped;
//! - `/*! … */` and `/*M! … */` executable comments (with an optional version number), whose
//!   content MariaDB runs: their content is tokenized as code;
//! - `;`, words, numbers and any other punctuation, one character at a time.
//!
//! Anything it cannot close (an unterminated string, identifier or comment) is an error: the
//! server would read it differently from us, so the guard refuses it.

use std::fmt;

/// One token of a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// A bare word: keyword or unquoted identifier (letters, digits, `_`, `$`, non-ASCII).
    Word(String),
    /// A backtick-quoted identifier, unescaped.
    QuotedIdentifier(String),
    /// A `'…'` or `"…"` literal, unescaped. (With `ANSI_QUOTES`, `"…"` would be an identifier;
    /// the guard never accepts a double-quoted name as a target, so reading it as a string is
    /// the safe side.)
    String(String),
    /// A number (digits, `.`, and an exponent).
    Number(String),
    /// `;`
    Semicolon,
    /// Any other character: `(`, `)`, `,`, `.`, `=`, …
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

/// Why a statement could not be tokenized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenizeError {
    UnterminatedString,
    UnterminatedIdentifier,
    UnterminatedComment,
    /// `/*! … /* … */ … */`: the server's handling of nested comments inside executable ones
    /// differs between versions, so it is refused rather than guessed.
    NestedComment,
}

impl fmt::Display for TokenizeError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Self::UnterminatedString => "unterminated string literal",
            Self::UnterminatedIdentifier => "unterminated quoted identifier",
            Self::UnterminatedComment => "unterminated comment",
            Self::NestedComment => "comment nested in an executable comment",
        })
    }
}

/// How a backslash inside a string is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escapes {
    /// The default `sql_mode`: `\'` is a quote inside the string.
    Backslash,
    /// `NO_BACKSLASH_ESCAPES` (and `"…"` identifiers under `ANSI_QUOTES`): a backslash is an
    /// ordinary character.
    None,
}

/// Splits `sql` into tokens with backslash escapes, dropping comments and whitespace.
pub fn tokenize(sql: &str) -> Result<Vec<Token>, TokenizeError> {
    tokenize_with(sql, Escapes::Backslash)
}

/// Splits `sql` into tokens reading backslashes as `escapes` says.
pub fn tokenize_with(sql: &str, escapes: Escapes) -> Result<Vec<Token>, TokenizeError> {
    let mut tokenizer = Tokenizer {
        chars: sql.chars().collect(),
        position: 0,
        in_executable_comment: false,
        escapes,
        tokens: Vec::new(),
    };
    tokenizer.run()?;
    Ok(tokenizer.tokens)
}

struct Tokenizer {
    chars: Vec<char>,
    position: usize,
    in_executable_comment: bool,
    escapes: Escapes,
    tokens: Vec<Token>,
}

impl Tokenizer {
    fn peek(&self, offset: usize) -> Option<char> {
        self.chars.get(self.position + offset).copied()
    }

    fn run(&mut self) -> Result<(), TokenizeError> {
        while let Some(c) = self.peek(0) {
            match c {
                c if c.is_whitespace() => self.position += 1,
                '\'' | '"' => self.string(c)?,
                '`' => self.quoted_identifier()?,
                '#' => self.line_comment(),
                '-' if self.peek(1) == Some('-')
                    && self.peek(2).is_none_or(|next| next.is_whitespace()) =>
                {
                    self.line_comment();
                }
                '/' if self.peek(1) == Some('*') => self.block_comment()?,
                '*' if self.in_executable_comment && self.peek(1) == Some('/') => {
                    // The end of an executable comment: what follows is code again.
                    self.in_executable_comment = false;
                    self.position += 2;
                }
                ';' => {
                    self.tokens.push(Token::Semicolon);
                    self.position += 1;
                }
                c if c.is_ascii_digit() => self.number(),
                c if is_word_char(c) => self.word(),
                c => {
                    self.tokens.push(Token::Punct(c));
                    self.position += 1;
                }
            }
        }
        if self.in_executable_comment {
            return Err(TokenizeError::UnterminatedComment);
        }
        Ok(())
    }

    fn string(&mut self, quote: char) -> Result<(), TokenizeError> {
        self.position += 1;
        let mut value = String::new();
        loop {
            let c = self.peek(0).ok_or(TokenizeError::UnterminatedString)?;
            self.position += 1;
            if c == '\\' && self.escapes == Escapes::Backslash {
                let escaped = self.peek(0).ok_or(TokenizeError::UnterminatedString)?;
                self.position += 1;
                value.push(escaped);
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
            let c = self.peek(0).ok_or(TokenizeError::UnterminatedIdentifier)?;
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

    fn line_comment(&mut self) {
        while let Some(c) = self.peek(0) {
            self.position += 1;
            if c == '\n' {
                return;
            }
        }
    }

    fn block_comment(&mut self) -> Result<(), TokenizeError> {
        // `/*!` (MySQL and MariaDB) and `/*M!` (MariaDB only) are executed by the server.
        let executable_prefix = match (self.peek(2), self.peek(3)) {
            (Some('!'), _) => Some(3),
            (Some('M'), Some('!')) => Some(4),
            _ => None,
        };
        if let Some(prefix) = executable_prefix {
            if self.in_executable_comment {
                return Err(TokenizeError::NestedComment);
            }
            self.position += prefix;
            // An optional version number: the content runs on servers at least that new,
            // which is every server we would care about, so it is code.
            while self.peek(0).is_some_and(|c| c.is_ascii_digit()) {
                self.position += 1;
            }
            self.in_executable_comment = true;
            return Ok(());
        }
        if self.in_executable_comment {
            return Err(TokenizeError::NestedComment);
        }
        self.position += 2;
        loop {
            let c = self.peek(0).ok_or(TokenizeError::UnterminatedComment)?;
            if c == '*' && self.peek(1) == Some('/') {
                self.position += 2;
                return Ok(());
            }
            self.position += 1;
        }
    }

    fn number(&mut self) {
        let start = self.position;
        while let Some(c) = self.peek(0) {
            let exponent_sign = (c == '+' || c == '-')
                && self
                    .position
                    .checked_sub(1)
                    .and_then(|previous| self.chars.get(previous))
                    .is_some_and(|p| p.eq_ignore_ascii_case(&'e'));
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '$' || exponent_sign {
                self.position += 1;
            } else {
                break;
            }
        }
        let text: String = self.chars[start..self.position].iter().collect();
        // `1abc` is an identifier in MySQL (names may start with a digit).
        if is_number(&text) {
            self.tokens.push(Token::Number(text));
        } else {
            self.tokens.push(Token::Word(text));
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

/// Digits with at most one `.` and an optional exponent (`1`, `1.5`, `1e-3`, `2.5E+10`).
fn is_number(text: &str) -> bool {
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (text, None),
    };
    let mantissa_ok = !mantissa.is_empty()
        && mantissa.chars().filter(|c| *c == '.').count() <= 1
        && mantissa.chars().all(|c| c.is_ascii_digit() || c == '.');
    let exponent_ok = exponent.is_none_or(|e| {
        let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
        !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())
    });
    mantissa_ok && exponent_ok
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$' || !c.is_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(sql: &str) -> Vec<Token> {
        tokenize(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    fn w(text: &str) -> Token {
        Token::Word(text.into())
    }

    #[test]
    fn strings_with_escapes_and_doubled_quotes() {
        assert_eq!(
            words(r"'a''b' 'c\'d' 'e\\' ; x"),
            vec![
                Token::String("a'b".into()),
                Token::String("c'd".into()),
                Token::String("e\\".into()),
                Token::Semicolon,
                w("x")
            ]
        );
        assert_eq!(words(r#""a""b;""#), vec![Token::String("a\"b;".into())]);
    }

    #[test]
    fn backslashes_read_both_ways() {
        let sql = r"'a\' ; DROP TABLE t; -- '";
        assert_eq!(
            words(sql),
            vec![Token::String("a' ; DROP TABLE t; -- ".into())]
        );
        let plain = tokenize_with(sql, Escapes::None).unwrap();
        assert_eq!(plain[0], Token::String("a\\".into()));
        assert_eq!(plain[1], Token::Semicolon);
    }

    #[test]
    fn backticks_with_doubled_backticks() {
        assert_eq!(
            words("`a``b; DROP`.`c`"),
            vec![
                Token::QuotedIdentifier("a`b; DROP".into()),
                Token::Punct('.'),
                Token::QuotedIdentifier("c".into())
            ]
        );
    }

    #[test]
    fn comments_are_dropped() {
        assert_eq!(
            words("a -- ; DROP\nb # ; x\nc /* ; */ d --\ne"),
            vec![w("a"), w("b"), w("c"), w("d"), w("e")]
        );
        // `--` without a following space is two minus signs, not a comment.
        assert_eq!(
            words("1--2"),
            vec![
                Token::Number("1".into()),
                Token::Punct('-'),
                Token::Punct('-'),
                Token::Number("2".into())
            ]
        );
    }

    #[test]
    fn executable_comments_are_code() {
        assert_eq!(
            words("a /*!50100 ; DROP */ b /*M! c */"),
            vec![w("a"), Token::Semicolon, w("DROP"), w("b"), w("c")]
        );
    }

    #[test]
    fn unterminated_input_is_an_error() {
        assert_eq!(tokenize("'abc"), Err(TokenizeError::UnterminatedString));
        assert_eq!(tokenize("'abc\\"), Err(TokenizeError::UnterminatedString));
        assert_eq!(tokenize("`abc"), Err(TokenizeError::UnterminatedIdentifier));
        assert_eq!(tokenize("/* abc"), Err(TokenizeError::UnterminatedComment));
        assert_eq!(tokenize("/*! abc"), Err(TokenizeError::UnterminatedComment));
        assert_eq!(
            tokenize("/*! a /* b */ c */"),
            Err(TokenizeError::NestedComment)
        );
    }

    #[test]
    fn numbers_and_words() {
        assert_eq!(
            words("int(10) 1.5e3 1e-3 1abc"),
            vec![
                w("int"),
                Token::Punct('('),
                Token::Number("10".into()),
                Token::Punct(')'),
                Token::Number("1.5e3".into()),
                Token::Number("1e-3".into()),
                w("1abc")
            ]
        );
    }
}

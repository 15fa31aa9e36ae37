//! A cursor over tokens with the small set of helpers the recursive-descent parser needs.

use super::lexer::{Token, TokenKind};
use crate::error::{Result, SchemaError};

pub struct Cursor<'a> {
    pub text: &'a str,
    tokens: Vec<Token>,
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(text: &'a str, tokens: Vec<Token>) -> Self {
        Self {
            text,
            tokens,
            pos: 0,
        }
    }

    pub fn peek(&self) -> Option<&TokenKind> {
        self.tokens.get(self.pos).map(|t| &t.kind)
    }

    pub fn peek_at(&self, offset: usize) -> Option<&TokenKind> {
        self.tokens.get(self.pos + offset).map(|t| &t.kind)
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.tokens.len()
    }

    /// Byte offset of the current token (or the end of the text), for error messages.
    pub fn offset(&self) -> usize {
        self.tokens
            .get(self.pos)
            .map_or(self.text.len(), |t| t.start)
    }

    pub fn error(&self, message: impl Into<String>) -> SchemaError {
        let found = self
            .tokens
            .get(self.pos)
            .map_or("end of input", |t| &self.text[t.start..t.end]);
        SchemaError::parse(
            self.offset(),
            format!("{} (found {found:?})", message.into()),
        )
    }

    pub fn next(&mut self) -> Option<TokenKind> {
        let token = self.tokens.get(self.pos).map(|t| t.kind.clone());
        if token.is_some() {
            self.pos += 1;
        }
        token
    }

    /// True if the current token is the keyword `word` (case-insensitive).
    pub fn is_word(&self, word: &str) -> bool {
        self.is_word_at(0, word)
    }

    pub fn is_word_at(&self, offset: usize, word: &str) -> bool {
        matches!(self.peek_at(offset), Some(TokenKind::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    pub fn is_symbol(&self, symbol: char) -> bool {
        matches!(self.peek(), Some(TokenKind::Symbol(s)) if *s == symbol)
    }

    /// Consumes the keyword if present.
    pub fn eat_word(&mut self, word: &str) -> bool {
        let found = self.is_word(word);
        if found {
            self.pos += 1;
        }
        found
    }

    /// Consumes a sequence of keywords if all are present.
    pub fn eat_words(&mut self, words: &[&str]) -> bool {
        let found = words
            .iter()
            .enumerate()
            .all(|(i, word)| self.is_word_at(i, word));
        if found {
            self.pos += words.len();
        }
        found
    }

    pub fn eat_symbol(&mut self, symbol: char) -> bool {
        let found = self.is_symbol(symbol);
        if found {
            self.pos += 1;
        }
        found
    }

    pub fn expect_word(&mut self, word: &str) -> Result<()> {
        if self.eat_word(word) {
            Ok(())
        } else {
            Err(self.error(format!("expected {word}")))
        }
    }

    pub fn expect_symbol(&mut self, symbol: char) -> Result<()> {
        if self.eat_symbol(symbol) {
            Ok(())
        } else {
            Err(self.error(format!("expected {symbol:?}")))
        }
    }

    /// An identifier: backtick-quoted or bare.
    pub fn identifier(&mut self) -> Result<String> {
        match self.peek() {
            Some(TokenKind::Quoted(name) | TokenKind::Word(name)) => {
                let name = name.clone();
                self.pos += 1;
                Ok(name)
            }
            _ => Err(self.error("expected an identifier")),
        }
    }

    /// A bare word, returned as written.
    pub fn word(&mut self) -> Result<String> {
        match self.peek() {
            Some(TokenKind::Word(word)) => {
                let word = word.clone();
                self.pos += 1;
                Ok(word)
            }
            _ => Err(self.error("expected a keyword")),
        }
    }

    pub fn string(&mut self) -> Result<String> {
        match self.peek() {
            Some(TokenKind::Str(value)) => {
                let value = value.clone();
                self.pos += 1;
                Ok(value)
            }
            _ => Err(self.error("expected a string literal")),
        }
    }

    pub fn number(&mut self) -> Result<u32> {
        match self.peek() {
            Some(TokenKind::Number(value)) => {
                let parsed = value
                    .parse()
                    .map_err(|_| self.error("expected a small integer"))?;
                self.pos += 1;
                Ok(parsed)
            }
            _ => Err(self.error("expected a number")),
        }
    }

    /// Consumes `( ... )` with balanced nesting and returns the text between the parentheses,
    /// verbatim and trimmed.
    pub fn parenthesized_raw(&mut self) -> Result<String> {
        let open = self.tokens.get(self.pos).map(|t| t.end);
        self.expect_symbol('(')?;
        let content_start = open.unwrap_or(0);
        let mut depth = 1usize;
        while let Some(token) = self.tokens.get(self.pos) {
            match token.kind {
                TokenKind::Symbol('(') => depth += 1,
                TokenKind::Symbol(')') => {
                    depth -= 1;
                    if depth == 0 {
                        let raw = self.text[content_start..token.start].trim().to_owned();
                        self.pos += 1;
                        return Ok(raw);
                    }
                }
                _ => {}
            }
            self.pos += 1;
        }
        Err(self.error("unbalanced parentheses"))
    }

    /// The verbatim text of the tokens from `start_token` up to (not including) the current one.
    pub fn raw_since(&self, start_token: usize) -> String {
        let (Some(first), Some(last)) = (
            self.tokens.get(start_token),
            self.tokens.get(self.pos.saturating_sub(1)),
        ) else {
            return String::new();
        };
        if self.pos <= start_token {
            return String::new();
        }
        self.text[first.start..last.end].to_owned()
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    /// A comma-separated list of identifiers in parentheses.
    pub fn identifier_list(&mut self) -> Result<Vec<String>> {
        self.expect_symbol('(')?;
        let mut names = Vec::new();
        loop {
            names.push(self.identifier()?);
            if !self.eat_symbol(',') {
                break;
            }
        }
        self.expect_symbol(')')?;
        Ok(names)
    }
}

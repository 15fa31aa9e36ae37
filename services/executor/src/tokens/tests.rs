//! The tokenizer against the server's reading: what it reads alike, and what it refuses.

use super::*;

fn words(sql: &str) -> Vec<Token> {
    tokenize(sql).unwrap_or_else(|e| panic!("{sql:?}: {e}"))
}

fn w(text: &str) -> Token {
    Token::Word(text.into())
}

#[test]
fn the_pinned_mode_is_the_one_this_tokenizer_reads() {
    // Strings with backslash escapes, `"` quoting strings: change the tokenizer with the mode.
    let modes: Vec<&str> = shadowsync_schema::SESSION_SQL_MODE.split(',').collect();
    assert!(!modes.contains(&"NO_BACKSLASH_ESCAPES"), "{modes:?}");
    assert!(
        !modes.contains(&"ANSI_QUOTES") && !modes.contains(&"ANSI"),
        "{modes:?}"
    );
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
    assert_eq!(
        words(r"'\n\t\Z\0\%\_\q'"),
        vec![Token::String("\n\t\u{1a}\0\\%\\_q".into())]
    );
}

#[test]
fn a_backslash_escapes_the_quote_as_the_pinned_session_reads_it() {
    let sql = r"'a\' ; DROP TABLE t; -- '";
    assert_eq!(
        words(sql),
        vec![Token::String("a' ; DROP TABLE t; -- ".into())]
    );
}

#[test]
fn mariadb_printed_literals_read_as_one_string() {
    // MariaDB prints `'it''s'` typed in a CHECK as `'it\'s'`.
    assert_eq!(
        words(r"CHECK (`v` <> 'it\'s\\x')"),
        vec![
            w("CHECK"),
            Token::Punct('('),
            Token::QuotedIdentifier("v".into()),
            Token::Punct('<'),
            Token::Punct('>'),
            Token::String("it's\\x".into()),
            Token::Punct(')'),
        ]
    );
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
    // Inside quotes, non-ASCII and control characters are read alike.
    assert_eq!(
        words("`n\u{a0}é\u{1}` 'x\u{a0}\u{7f}\u{1}'"),
        vec![
            Token::QuotedIdentifier("n\u{a0}é\u{1}".into()),
            Token::String("x\u{a0}\u{7f}\u{1}".into())
        ]
    );
}

#[test]
fn comments_are_dropped() {
    assert_eq!(
        words("a -- ; DROP\nb # ; x\nc /* ; */ d --\ne --\tf\ng --\r\nh"),
        vec![w("a"), w("b"), w("c"), w("d"), w("e"), w("g"), w("h")]
    );
    // `--` followed by printable ASCII is two minus signs (MariaDB prints `- -a` as ``--`a` ``).
    assert_eq!(
        words("1--2 --`a`"),
        vec![
            Token::Number("1".into()),
            Token::Punct('-'),
            Token::Punct('-'),
            Token::Number("2".into()),
            Token::Punct('-'),
            Token::Punct('-'),
            Token::QuotedIdentifier("a".into()),
        ]
    );
    // A plain comment ends at the first `*/`, whatever quotes lie inside.
    assert_eq!(words("a /* ' */ b /* ` */ c"), vec![w("a"), w("b"), w("c")]);
}

#[test]
fn executable_comments_are_refused() {
    for sql in [
        "ALTER TABLE _test_x COMMENT 'c' /*!80000 'x */ ; DROP TABLE orders; -- ' */",
        "a /*!50100 b */",
        "a /*! b */",
        "a /*M! b */",
        "a /*M!100500 b */",
        "a /*+ NO_INDEX(t) */",
    ] {
        assert!(
            matches!(tokenize(sql), Err(TokenizeError::ExecutableComment { .. })),
            "{sql}: {:?}",
            tokenize(sql)
        );
    }
    // `/*M` without `!` is a plain comment for the server too.
    assert_eq!(words("a /*M b */ c"), vec![w("a"), w("c")]);
}

#[test]
fn dashes_before_a_control_or_non_ascii_character_are_refused() {
    // The server starts a comment at `--\x01`; we would not (the reproduced bypass).
    let control = "ALTER TABLE _test_x COMMENT 'c' --\u{1}; DROP TABLE orders";
    assert_eq!(
        tokenize(control),
        Err(TokenizeError::AmbiguousDashes {
            followed_by: Some('\u{1}'),
            at: 32
        })
    );
    // Rust reads U+00A0 as whitespace, the server as part of a name (the reproduced bypass).
    let nbsp = "ALTER TABLE _test_x COMMENT 'c' --\u{a0}\n, ENGINE=FEDERATED";
    assert!(matches!(
        tokenize(nbsp),
        Err(TokenizeError::AmbiguousDashes {
            followed_by: Some('\u{a0}'),
            ..
        })
    ));
    for next in ['\u{b}', '\u{c}', '\u{7f}', '\u{1f}', '\u{2028}', '\u{3000}'] {
        let sql = format!("a --{next} b");
        assert!(
            matches!(tokenize(&sql), Err(TokenizeError::AmbiguousDashes { .. })),
            "{sql:?}"
        );
    }
    assert_eq!(
        tokenize("a --"),
        Err(TokenizeError::AmbiguousDashes {
            followed_by: None,
            at: 2
        })
    );
}

#[test]
fn control_and_non_ascii_characters_outside_quotes_are_refused() {
    for (sql, character) in [
        ("a\u{b}b", '\u{b}'),
        ("a\u{c}b", '\u{c}'),
        ("a\u{1}b", '\u{1}'),
        ("a\u{1b}[31mb", '\u{1b}'),
        ("a\u{7f}b", '\u{7f}'),
        ("a /* \u{1} */ b", '\u{1}'),
        ("a # \u{1}\nb", '\u{1}'),
        ("a -- \u{7f}\nb", '\u{7f}'),
    ] {
        assert!(
            matches!(tokenize(sql), Err(TokenizeError::ControlCharacter { character: c, .. }) if c == character),
            "{sql:?}: {:?}",
            tokenize(sql)
        );
    }
    for (sql, character) in [
        ("a\u{a0}b", '\u{a0}'),
        ("TABLE\u{a0}x", '\u{a0}'),
        ("é", 'é'),
        ("a /* é */ b", 'é'),
        ("a -- é\nb", 'é'),
        ("a\u{feff}b", '\u{feff}'),
    ] {
        assert!(
            matches!(tokenize(sql), Err(TokenizeError::NonAscii { character: c, .. }) if c == character),
            "{sql:?}: {:?}",
            tokenize(sql)
        );
    }
}

#[test]
fn nul_is_refused_everywhere() {
    for sql in [
        "a\0b",
        "'a\0b'",
        "`a\0b`",
        "'a\\\0'",
        "a -- \0\nb",
        "/* \0 */",
    ] {
        assert!(
            matches!(tokenize(sql), Err(TokenizeError::Nul { .. })),
            "{sql:?}: {:?}",
            tokenize(sql)
        );
    }
}

#[test]
fn a_backslash_outside_a_string_is_refused() {
    assert_eq!(tokenize(r"a \N"), Err(TokenizeError::Backslash { at: 2 }));
}

#[test]
fn unterminated_input_is_an_error() {
    assert_eq!(tokenize("'abc"), Err(TokenizeError::UnterminatedString));
    assert_eq!(tokenize("'abc\\"), Err(TokenizeError::UnterminatedString));
    assert_eq!(tokenize(r"'abc\'"), Err(TokenizeError::UnterminatedString));
    assert_eq!(tokenize("`abc"), Err(TokenizeError::UnterminatedIdentifier));
    assert_eq!(tokenize("/* abc"), Err(TokenizeError::UnterminatedComment));
    assert_eq!(
        tokenize("/* abc *"),
        Err(TokenizeError::UnterminatedComment)
    );
    assert_eq!(
        tokenize("/* a /* b */ c */"),
        Err(TokenizeError::NestedComment { at: 5 })
    );
}

#[test]
fn numbers_and_words() {
    assert_eq!(
        words("int(10) 1.5e3 1e-3 .5 0x1F 0b101 a.b"),
        vec![
            w("int"),
            Token::Punct('('),
            Token::Number("10".into()),
            Token::Punct(')'),
            Token::Number("1.5e3".into()),
            Token::Number("1e-3".into()),
            Token::Number(".5".into()),
            Token::Number("0x1F".into()),
            Token::Number("0b101".into()),
            w("a"),
            Token::Punct('.'),
            w("b"),
        ]
    );
}

#[test]
fn a_number_running_into_a_word_is_refused() {
    // The server reads `1.5TABLE` as `1.5` then the keyword `TABLE`.
    for sql in [
        "1.5TABLE",
        ".5TABLE",
        "1e5TABLE",
        "1abc",
        "0X1F",
        "1.2.3",
        "(.5RENAME",
    ] {
        assert!(
            matches!(tokenize(sql), Err(TokenizeError::NumberRunsIntoWord { .. })),
            "{sql}: {:?}",
            tokenize(sql)
        );
    }
}

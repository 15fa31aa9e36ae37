//! Caller-supplied values on their way into a log line.
//!
//! A value a client sent (an id, a name, a search string) is escaped and truncated before it is
//! logged: a newline would forge a log line, an ANSI escape would repaint a terminal, and a 3 MiB
//! id would become a 3 MiB line. Use `logged(&value)` wherever such a value reaches `tracing`:
//! `info!(task_id = %logged(&request.task_id), "…")`.

use std::fmt;

/// How many characters of a value reach the log; the rest is counted, not shown.
pub const MAX_LOGGED_CHARS: usize = 200;

/// A value shown escaped and truncated (see the module doc).
pub struct Logged<'a>(&'a str);

/// Wraps a caller-supplied value for a log line.
pub fn logged<T: AsRef<str> + ?Sized>(value: &T) -> Logged<'_> {
    Logged(value.as_ref())
}

/// Characters that change how a log line reads without being visible: controls (C0, DEL, C1:
/// newline, carriage return, ESC…), line and paragraph separators, and bidirectional overrides.
fn is_disguising(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

impl fmt::Display for Logged<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut chars = self.0.chars();
        for c in chars.by_ref().take(MAX_LOGGED_CHARS) {
            if c == '\\' {
                f.write_str("\\\\")?;
            } else if is_disguising(c) {
                write!(f, "{}", c.escape_unicode())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        let rest = chars.count();
        if rest > 0 {
            write!(f, "…[+{rest} chars]")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Logged<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_so_no_line_can_be_forged() {
        let shown =
            logged("t1\n2026-01-01T00:00:00Z ERROR forged\r\x1b[31mred\x7f\u{85}").to_string();
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
        assert_eq!(
            shown,
            "t1\\u{a}2026-01-01T00:00:00Z ERROR forged\\u{d}\\u{1b}[31mred\\u{7f}\\u{85}"
        );
        assert_eq!(
            logged("a\u{2028}b\u{202e}c").to_string(),
            "a\\u{2028}b\\u{202e}c"
        );
    }

    #[test]
    fn an_escape_cannot_be_faked_with_a_backslash() {
        // The literal text `\u{a}` is shown as `\\u{a}`, unlike an escaped newline.
        assert_eq!(logged("\\u{a}").to_string(), "\\\\u{a}");
        assert_ne!(logged("\\u{a}").to_string(), logged("\n").to_string());
    }

    #[test]
    fn long_values_are_cut_with_a_marker() {
        let huge = "x".repeat(3 * 1024 * 1024);
        let shown = logged(&huge).to_string();
        assert!(shown.len() < 300, "{}", shown.len());
        assert!(shown.starts_with(&"x".repeat(MAX_LOGGED_CHARS)));
        assert!(shown.ends_with(&format!("…[+{} chars]", huge.len() - MAX_LOGGED_CHARS)));
        // Exactly the limit: shown whole, no marker.
        let edge = "é".repeat(MAX_LOGGED_CHARS);
        assert_eq!(logged(&edge).to_string(), edge);
        // Escapes do not count against the limit: at most 200 source characters are shown.
        let newlines = "\n".repeat(1000);
        assert!(logged(&newlines).to_string().ends_with("…[+800 chars]"));
    }

    #[test]
    fn plain_values_are_untouched() {
        assert_eq!(
            logged("orders_2026 – café").to_string(),
            "orders_2026 – café"
        );
        assert_eq!(format!("{:?}", logged("a\nb")), "\"a\\u{a}b\"");
    }
}

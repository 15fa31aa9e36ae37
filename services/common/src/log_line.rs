//! One event, one line: the last defence against log forging, under every log format.
//!
//! Values reach log lines from many places (errors that quote a request, names a target database
//! returned, SQL). [`crate::logged`] escapes and truncates the caller-supplied ones where they are
//! logged; this writer makes sure that whatever slipped through still cannot start a new line,
//! repaint a terminal or flood the log: every control character (C0, DEL, C1) in a formatted
//! event is written as `\xNN`, and an event longer than [`MAX_LINE_BYTES`] is cut with a marker.
//! (ANSI colours are therefore off: the formatter's own escapes would be escaped too.)

use std::io::{self, Write};

use tracing_subscriber::fmt::MakeWriter;

/// The longest line an event may take.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// A [`MakeWriter`] whose writers escape and cut each event (see the module doc).
#[derive(Clone, Debug)]
pub struct OneLinePerEvent<M>(pub M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for OneLinePerEvent<M> {
    type Writer = OneLine<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        OneLine(self.0.make_writer())
    }
}

/// A writer that receives one formatted event per `write_all` (as `tracing-subscriber`'s fmt
/// layer writes them) and passes it on as one escaped line.
#[derive(Debug)]
pub struct OneLine<W>(W);

impl<W: Write> Write for OneLine<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(&one_line(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// `event` (with or without its final newline) as one escaped, bounded line ending in `\n`.
pub fn one_line(event: &[u8]) -> Vec<u8> {
    escape_line(event, false)
}

/// [`one_line`], except that colour sequences (SGR: `ESC [` digits and `;` then `m`) pass, for
/// pretty logs on a terminal. They can only colour text: anything that moves the cursor,
/// clears the screen or starts a line is still escaped.
pub fn one_line_keeping_colours(event: &[u8]) -> Vec<u8> {
    escape_line(event, true)
}

/// A [`MakeWriter`] like [`OneLinePerEvent`] that lets colour sequences through (see
/// [`one_line_keeping_colours`]); for a terminal only.
#[derive(Clone, Debug)]
pub struct ColouredLinePerEvent<M>(pub M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for ColouredLinePerEvent<M> {
    type Writer = ColouredLine<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        ColouredLine(self.0.make_writer())
    }
}

/// The writer of [`ColouredLinePerEvent`].
#[derive(Debug)]
pub struct ColouredLine<W>(W);

impl<W: Write> Write for ColouredLine<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(&one_line_keeping_colours(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// The length of the SGR sequence starting at `body[index]`, if one does.
fn sgr_length(body: &[u8], index: usize) -> Option<usize> {
    if body.get(index) != Some(&0x1b) || body.get(index + 1) != Some(&b'[') {
        return None;
    }
    let mut end = index + 2;
    while end < body.len() && (body[end].is_ascii_digit() || body[end] == b';') {
        end += 1;
    }
    (body.get(end) == Some(&b'm')).then_some(end + 1 - index)
}

fn escape_line(event: &[u8], keep_sgr: bool) -> Vec<u8> {
    let body = event.strip_suffix(b"\n").unwrap_or(event);
    let mut line = Vec::with_capacity(body.len().min(MAX_LINE_BYTES) + 32);
    let mut index = 0;
    while index < body.len() {
        if line.len() >= MAX_LINE_BYTES {
            line.extend_from_slice(format!("…[+{} bytes]", body.len() - index).as_bytes());
            break;
        }
        let byte = body[index];
        // U+0080–U+009F (C1, e.g. U+009B, a one-character CSI) is 0xC2 0x80–0x9F in UTF-8.
        let c1 = byte == 0xc2
            && body
                .get(index + 1)
                .is_some_and(|b| (0x80..=0x9f).contains(b));
        if c1 {
            line.extend_from_slice(format!("\\x{:02x}", body[index + 1]).as_bytes());
            index += 2;
            continue;
        }
        if keep_sgr && let Some(length) = sgr_length(body, index) {
            line.extend_from_slice(&body[index..index + length]);
            index += length;
            continue;
        }
        if byte < 0x20 || byte == 0x7f {
            line.extend_from_slice(format!("\\x{byte:02x}").as_bytes());
        } else {
            line.push(byte);
        }
        index += 1;
    }
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_stays_one_line_without_escapes() {
        let event = "INFO id=a\n2026-01-01T00:00:00Z ERROR forged\r\x1b[31mred\u{9b}2J\t!\n";
        let line = String::from_utf8(one_line(event.as_bytes())).unwrap();
        assert_eq!(
            line,
            "INFO id=a\\x0a2026-01-01T00:00:00Z ERROR forged\\x0d\\x1b[31mred\\x9b2J\\x09!\n"
        );
        assert_eq!(line.matches('\n').count(), 1);
        // Non-ASCII text passes.
        assert_eq!(one_line("café – 表\n".as_bytes()), "café – 表\n".as_bytes());
    }

    #[test]
    fn colours_pass_on_a_terminal_and_nothing_else_does() {
        let event = "\x1b[2m2026\x1b[0m \x1b[32mINFO\x1b[0m x\x1b[2J\x1b[1;1H\ny\x1b[31";
        let line = String::from_utf8(one_line_keeping_colours(event.as_bytes())).unwrap();
        assert_eq!(
            line,
            "\x1b[2m2026\x1b[0m \x1b[32mINFO\x1b[0m x\\x1b[2J\\x1b[1;1H\\x0ay\\x1b[31\n"
        );
        assert_eq!(line.matches('\n').count(), 1);
    }

    #[test]
    fn a_huge_event_is_cut() {
        let event = "x".repeat(6 * 1024 * 1024);
        let line = one_line(event.as_bytes());
        assert!(line.len() < MAX_LINE_BYTES + 64);
        assert!(String::from_utf8_lossy(&line).ends_with(" bytes]\n"));
    }
}

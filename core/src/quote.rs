//! Received data in log lines, made harmless.
//!
//! A log line that quotes what a peer sent (a sample of a message that
//! did not parse, a file name found on disk) must not let that text forge
//! log lines: a newline followed by `ERROR ...` would read as a line of
//! its own, and ANSI escapes can recolour or erase what a terminal shows.
//! [`quoted`] wraps such data for `Display`: control characters (C0, DEL,
//! C1), Unicode line and paragraph separators and bidirectional overrides
//! are written as escapes (`\n`, `\u{1b}`), bytes that are not UTF-8 as
//! `\xNN`, a backslash as `\\`, and the text is cut after a bounded number
//! of bytes with a count of what was left out. Everything else is written
//! as is, so ordinary text reads as it was sent.
//!
//! ```
//! use sluice_core::quote::quoted;
//! let line = format!("sample={}", quoted(b"hi\n2026 ERROR forged\x1b[2K"));
//! assert_eq!(line, r"sample=hi\n2026 ERROR forged\u{1b}[2K");
//! ```

use std::fmt::{self, Write};

/// Bytes of received data quoted by default.
pub const DEFAULT_MAX: usize = 200;

/// Received bytes or text, for a log line: see the [module docs](self).
#[derive(Clone, Copy, Debug)]
pub struct Quoted<'a> {
    bytes: &'a [u8],
    max: usize,
}

/// Wraps received data (bytes or text) to be quoted in a log line: control
/// characters escaped, at most [`DEFAULT_MAX`] bytes of it.
pub fn quoted<T: AsRef<[u8]> + ?Sized>(data: &T) -> Quoted<'_> {
    Quoted {
        bytes: data.as_ref(),
        max: DEFAULT_MAX,
    }
}

impl Quoted<'_> {
    /// At most `max` bytes of the data are quoted (whole characters only).
    #[must_use]
    pub fn max(self, max: usize) -> Self {
        Quoted { max, ..self }
    }
}

/// Whether `c` must be escaped: it could end a log line, move the cursor,
/// restyle the terminal or reorder what is shown.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\\' | '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut used = 0usize;
        for chunk in self.bytes.utf8_chunks() {
            for c in chunk.valid().chars() {
                if used + c.len_utf8() > self.max {
                    return cut(f, self.bytes.len() - used);
                }
                used += c.len_utf8();
                match c {
                    '\n' => f.write_str("\\n")?,
                    '\r' => f.write_str("\\r")?,
                    '\t' => f.write_str("\\t")?,
                    '\\' => f.write_str("\\\\")?,
                    c if needs_escape(c) => write!(f, "\\u{{{:x}}}", c as u32)?,
                    c => f.write_char(c)?,
                }
            }
            for b in chunk.invalid() {
                if used + 1 > self.max {
                    return cut(f, self.bytes.len() - used);
                }
                used += 1;
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

fn cut(f: &mut fmt::Formatter<'_>, left: usize) -> fmt::Result {
    write!(f, "…({left} more bytes)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_cannot_break_or_restyle_a_line() {
        let s =
            quoted("a\r\n2026-01-01T00:00:00Z ERROR x\x1b[31m\x07\u{7f}\u{85}\u{2028}\u{202e}b\\")
                .to_string();
        assert_eq!(
            s,
            r"a\r\n2026-01-01T00:00:00Z ERROR x\u{1b}[31m\u{7}\u{7f}\u{85}\u{2028}\u{202e}b\\"
        );
        assert!(!s.chars().any(char::is_control));
    }

    #[test]
    fn ordinary_text_reads_as_sent() {
        assert_eq!(
            quoted("héllo wörld ✓ \"x\"").to_string(),
            "héllo wörld ✓ \"x\""
        );
    }

    #[test]
    fn bytes_that_are_not_utf8_are_shown_as_hex() {
        assert_eq!(quoted(b"a\xffb\xc3").to_string(), r"a\xffb\xc3");
    }

    #[test]
    fn long_data_is_cut_on_a_character_boundary_with_a_count() {
        let long = "é".repeat(1000);
        let s = quoted(&long).max(5).to_string();
        assert_eq!(s, "éé…(1996 more bytes)");
        assert_eq!(quoted("abc").max(3).to_string(), "abc");
        assert_eq!(quoted("abcd").max(3).to_string(), "abc…(1 more bytes)");
        let big = vec![b'\n'; 1 << 20];
        assert!(quoted(&big).to_string().len() < 2 * DEFAULT_MAX + 40);
    }
}

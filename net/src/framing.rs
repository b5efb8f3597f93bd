//! Framing of byte streams into messages: one per line (`newline`), or
//! RFC 6587 octet counting (`octet_counted`: `LEN SP MSG`).
//!
//! As in the file source, bytes are read in big chunks into a buffer, the
//! complete messages of a chunk are frozen once and each message is a
//! zero-copy slice of it. Messages longer than `max_line_bytes` are skipped
//! and counted: [`StreamFramer::too_long`].

use bytes::{Buf, Bytes, BytesMut};
use serde::Deserialize;

/// How a stream is cut into messages.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Framing {
    /// One message per line; a trailing `\r` is removed.
    #[default]
    Newline,
    /// `LEN SP MSG` where `LEN` is the decimal byte length of `MSG`.
    OctetCounted,
    /// Octet counted when a message starts with a digit, else a line
    /// (what syslog senders do over TCP).
    Auto,
}

/// When the complete messages fill less than this fraction of the buffer's
/// capacity they are copied out, so that a trickle of small messages does
/// not pin one big read buffer each.
const COPY_BELOW_FRACTION: usize = 4;

/// A malformed octet-counted stream: the connection cannot be resynchronised.
#[derive(Debug, thiserror::Error)]
#[error("bad octet-counting frame header: expected `LENGTH SPACE`, found {found:?}")]
pub struct FrameError {
    /// The first bytes where a header was expected.
    pub found: String,
}

/// Cuts a stream into messages. See the module docs.
#[derive(Debug)]
pub(crate) struct StreamFramer {
    buf: BytesMut,
    ready: Bytes,
    framing: Framing,
    max: usize,
    /// Bytes of an over-long octet-counted message still to drop.
    skip: usize,
    /// Dropping the rest of an over-long line until its newline.
    skipping_line: bool,
    /// Messages skipped for being longer than `max`.
    pub(crate) too_long: u64,
}

impl StreamFramer {
    pub(crate) fn new(framing: Framing, max: usize) -> Self {
        StreamFramer {
            buf: BytesMut::new(),
            ready: Bytes::new(),
            framing,
            max,
            skip: 0,
            skipping_line: false,
            too_long: 0,
        }
    }

    /// The buffer to read into.
    pub(crate) fn buf_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// The next complete message; `Ok(None)` when more input is needed.
    pub(crate) fn next(&mut self) -> Result<Option<Bytes>, FrameError> {
        loop {
            while !self.ready.is_empty() {
                if let Some(line) = self.next_ready_line() {
                    return Ok(Some(line));
                }
            }
            if self.skip > 0 {
                let n = self.skip.min(self.buf.len());
                self.buf.advance(n);
                self.skip -= n;
                if self.skip > 0 {
                    return Ok(None);
                }
            }
            let Some(&first) = self.buf.first() else {
                return Ok(None);
            };
            let octets = match self.framing {
                Framing::Newline => false,
                Framing::OctetCounted => true,
                Framing::Auto => first.is_ascii_digit() && !self.skipping_line,
            };
            if octets {
                match self.octet_frame()? {
                    Some(Some(msg)) => return Ok(Some(msg)),
                    Some(None) => continue,
                    None => return Ok(None),
                }
            }
            if !self.fill_lines() {
                return Ok(None);
            }
        }
    }

    /// At end of input: the last message without its line ending.
    pub(crate) fn finish(&mut self) -> Option<Bytes> {
        if self.buf.is_empty() || self.skip > 0 {
            return None;
        }
        let line = self.buf.split().freeze();
        if std::mem::take(&mut self.skipping_line) {
            return None;
        }
        let end = strip_cr(&line);
        if end > self.max {
            self.too_long += 1;
            return None;
        }
        Some(line.slice(..end))
    }

    /// The next line of `ready`; `None` when it was too long (counted).
    fn next_ready_line(&mut self) -> Option<Bytes> {
        // `ready` ends with a newline.
        let nl = memchr::memchr(b'\n', &self.ready).unwrap_or(self.ready.len() - 1);
        let mut line = self.ready.split_to(nl + 1);
        let end = strip_cr(&line[..nl]);
        if end > self.max {
            self.too_long += 1;
            return None;
        }
        line.truncate(end);
        Some(line)
    }

    /// In `Auto` mode lines are taken up to the first one followed by a
    /// message that starts with a digit (an octet-counted frame).
    fn fill_lines(&mut self) -> bool {
        let found = if self.framing == Framing::Auto {
            let mut end = None;
            for nl in memchr::memchr_iter(b'\n', &self.buf) {
                end = Some(nl);
                if self.buf.get(nl + 1).is_some_and(u8::is_ascii_digit) {
                    break;
                }
            }
            end
        } else {
            memchr::memrchr(b'\n', &self.buf)
        };
        match found {
            Some(last) => {
                let n = last + 1;
                let chunk = if n * COPY_BELOW_FRACTION < self.buf.capacity() {
                    let c = Bytes::copy_from_slice(&self.buf[..n]);
                    self.buf.advance(n);
                    c
                } else {
                    self.buf.split_to(n).freeze()
                };
                if self.skipping_line {
                    // The first line of the chunk is the tail of a long one.
                    self.skipping_line = false;
                    let nl = memchr::memchr(b'\n', &chunk).unwrap_or(0);
                    self.ready = chunk.slice(nl + 1..);
                } else {
                    self.ready = chunk;
                }
                true
            }
            None => {
                if self.skipping_line || self.buf.len() > self.max.saturating_add(1) {
                    if !self.skipping_line {
                        self.too_long += 1;
                        self.skipping_line = true;
                    }
                    self.buf.clear();
                }
                false
            }
        }
    }

    /// One octet-counted frame: `Some(Some(msg))`, `Some(None)` after
    /// starting to skip an over-long one, `None` when more input is needed.
    fn octet_frame(&mut self) -> Result<Option<Option<Bytes>>, FrameError> {
        let head = &self.buf[..self.buf.len().min(12)];
        let Some(sp) = head.iter().position(|b| *b == b' ') else {
            if head.len() >= 12 || head.iter().any(|b| !b.is_ascii_digit()) {
                return Err(self.bad_header());
            }
            return Ok(None);
        };
        let digits = &head[..sp];
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err(self.bad_header());
        }
        let len: usize = std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| self.bad_header())?;
        if len > self.max {
            self.too_long += 1;
            self.buf.advance(sp + 1);
            self.skip = len;
            return Ok(Some(None));
        }
        if self.buf.len() < sp + 1 + len {
            self.buf.reserve(sp + 1 + len - self.buf.len());
            return Ok(None);
        }
        self.buf.advance(sp + 1);
        let msg = self.buf.split_to(len).freeze();
        Ok(Some(Some(msg)))
    }

    fn bad_header(&self) -> FrameError {
        FrameError {
            found: String::from_utf8_lossy(&self.buf[..self.buf.len().min(16)]).into_owned(),
        }
    }
}

fn strip_cr(line: &[u8]) -> usize {
    match line.last() {
        Some(b'\r') => line.len() - 1,
        _ => line.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(f: &mut StreamFramer, data: &[u8]) -> Vec<String> {
        f.buf_mut().extend_from_slice(data);
        let mut out = Vec::new();
        while let Some(m) = f.next().unwrap() {
            out.push(String::from_utf8(m.to_vec()).unwrap());
        }
        out
    }

    #[test]
    fn lines_across_reads_with_long_ones_skipped() {
        let mut f = StreamFramer::new(Framing::Newline, 4);
        assert_eq!(feed(&mut f, b"a\r\nbb\ntoolong\ncc"), ["a", "bb"]);
        assert_eq!(f.too_long, 1);
        assert_eq!(feed(&mut f, b"c\n12345678"), ["ccc"]);
        assert_eq!(feed(&mut f, b"9\nok\n"), ["ok"]);
        assert_eq!(f.too_long, 2);
        assert_eq!(feed(&mut f, b"tail"), Vec::<String>::new());
        assert_eq!(f.finish().unwrap(), "tail");
    }

    #[test]
    fn octet_counting_and_auto() {
        let mut f = StreamFramer::new(Framing::OctetCounted, 10);
        assert_eq!(feed(&mut f, b"5 hello3 a\nb1"), ["hello", "a\nb"]);
        assert_eq!(feed(&mut f, b" x20 0123456789"), ["x"]);
        assert_eq!(feed(&mut f, b"0123456789"), Vec::<String>::new());
        assert_eq!(feed(&mut f, b"2 ok"), ["ok"]);
        assert_eq!(f.too_long, 1);
        f.buf_mut().extend_from_slice(b"x y");
        assert!(f.next().is_err());

        let mut f = StreamFramer::new(Framing::Auto, 100);
        assert_eq!(
            feed(&mut f, b"<13>line one\n<14>two\n4 <1>x<2>three\n<5>four\n"),
            ["<13>line one", "<14>two", "<1>x", "<2>three", "<5>four"]
        );
    }
}

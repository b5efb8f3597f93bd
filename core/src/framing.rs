//! Cutting a byte stream into messages, for every source that reads one:
//! one message per line (`newline`), RFC 6587 octet counting
//! (`octet_counted`: `LEN SP MSG`), or either (`auto`, what syslog senders
//! do over TCP).
//!
//! A [`Framer`] is fed big chunks of bytes (appended to
//! [`Framer::buf_mut`]) and hands out one message at a time with
//! [`Framer::next_message`]. Lines are found with `memchr` and handed out as
//! zero-copy [`Bytes`] slices of the frozen chunk: the cost per chunk is one
//! freeze, the cost per message one reference-count increment. A trailing
//! `\r` is stripped from a line. The bytes of a message not complete yet
//! stay in the buffer until the rest arrives, or until [`Framer::finish`]
//! hands them out at the end of the input.
//!
//! Messages longer than `max_line_bytes` are skipped (a line up to and
//! including its newline) and counted ([`Framer::too_long`]); the framer
//! never holds more than about `max_line_bytes` plus one chunk. A framer
//! made with [`Framer::lines`] also warns, naming its input and the line's
//! byte offset, at most once a second ([`WarnLimiter`]); the network
//! sources report the count themselves, per connection.
//!
//! [`Framer::checkpoint`] is the byte offset just after the last message
//! handed out or skipped: the place to resume from so that a restart
//! neither reads a message again nor skips one.
//!
//! ```
//! use sluice_core::framing::{Framer, Framing};
//!
//! let mut f = Framer::new(Framing::Newline, 100);
//! f.buf_mut().extend_from_slice(b"one\r\ntwo\nthr");
//! assert_eq!(f.next_message().unwrap().unwrap(), "one");
//! assert_eq!(f.next_message().unwrap().unwrap(), "two");
//! assert!(f.next_message().unwrap().is_none());
//! assert_eq!(f.finish().unwrap(), "thr");
//! ```

use bytes::{Buf, Bytes, BytesMut};
use serde::Deserialize;

use crate::warn::WarnLimiter;

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

/// When the complete messages of a read fill less than this fraction of
/// the buffer's capacity, they are copied out instead of sliced, so that a
/// slow trickle of short messages does not pin one big read buffer each.
const COPY_BELOW_FRACTION: usize = 4;

/// A malformed octet-counted stream: it cannot be resynchronised.
#[derive(Debug, thiserror::Error)]
#[error("bad octet-counting frame header: expected `LENGTH SPACE`, found {found:?}")]
pub struct FrameError {
    /// The first bytes where a header was expected.
    pub found: String,
}

/// Cuts a stream into messages. See the module docs.
#[derive(Debug)]
pub struct Framer {
    /// Read but not yet framed: the start of a message still incomplete.
    buf: BytesMut,
    /// Complete lines (ending in `\n`) not handed out yet.
    ready: Bytes,
    framing: Framing,
    /// The longest message kept, in bytes, without its line ending.
    max: usize,
    /// Stream offset of `ready[0]` (and of `buf[0]` when `ready` is empty).
    pos: u64,
    /// Stream offset just after the last message handed out or skipped.
    line_start: u64,
    /// Bytes of an over-long octet-counted message still to drop.
    skip: usize,
    /// Dropping the rest of an over-long line until its newline.
    skipping_line: bool,
    /// How many over-long messages were skipped.
    too_long: u64,
    /// How many of them [`Framer::take_too_long`] has handed out.
    too_long_taken: u64,
    /// The input's name and the limit on warnings, for a framer that warns.
    warn: Option<(String, WarnLimiter)>,
}

impl Framer {
    /// A framer that counts over-long messages and leaves reporting them to
    /// its caller.
    pub fn new(framing: Framing, max_line_bytes: usize) -> Self {
        Framer {
            buf: BytesMut::new(),
            ready: Bytes::new(),
            framing,
            max: max_line_bytes,
            pos: 0,
            line_start: 0,
            skip: 0,
            skipping_line: false,
            too_long: 0,
            too_long_taken: 0,
            warn: None,
        }
    }

    /// A line framer for a stream that starts at byte `offset` of its
    /// input, warning about over-long lines under the name `label` (a path,
    /// `stdin`).
    pub fn lines(label: impl Into<String>, max_line_bytes: usize, offset: u64) -> Self {
        Framer {
            pos: offset,
            line_start: offset,
            warn: Some((label.into(), WarnLimiter::default())),
            ..Framer::new(Framing::Newline, max_line_bytes)
        }
    }

    /// The buffer to append freshly read bytes to.
    pub fn buf_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Takes the buffer out (to move it into a blocking read); give it back
    /// with [`Framer::put_buf`].
    pub fn take_buf(&mut self) -> BytesMut {
        std::mem::take(&mut self.buf)
    }

    /// Gives back the buffer taken by [`Framer::take_buf`], with the new
    /// bytes appended.
    pub fn put_buf(&mut self, buf: BytesMut) {
        self.buf = buf;
    }

    /// Frees the read buffer when it holds nothing: an idle input then
    /// keeps no chunk-sized allocation.
    pub fn release_idle_buffer(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > 0 {
            self.buf = BytesMut::new();
        }
    }

    /// The offset to resume from: just after the last message handed out
    /// or skipped.
    pub fn checkpoint(&self) -> u64 {
        self.line_start
    }

    /// Whether bytes of a message not complete yet are held (not counting
    /// the tail of an over-long line being skipped).
    pub fn has_partial(&self) -> bool {
        !self.skipping_line && !self.buf.is_empty()
    }

    /// Renames the input in warnings (a followed file that was renamed).
    pub fn set_label(&mut self, label: impl Into<String>) {
        if let Some((l, _)) = &mut self.warn {
            *l = label.into();
        }
    }

    /// How many over-long messages were skipped so far.
    pub fn too_long(&self) -> u64 {
        self.too_long
    }

    /// How many over-long messages were skipped since the last call.
    pub fn take_too_long(&mut self) -> u64 {
        let n = self.too_long - self.too_long_taken;
        self.too_long_taken = self.too_long;
        n
    }

    /// The next complete message; `Ok(None)` when more input is needed.
    ///
    /// # Errors
    ///
    /// An octet-counted stream (`octet_counted`, or `auto` on a message
    /// starting with a digit) whose header is not `LENGTH SPACE`. A
    /// `newline` framer never fails.
    pub fn next_message(&mut self) -> Result<Option<Bytes>, FrameError> {
        loop {
            if !self.ready.is_empty() {
                if let Some(line) = self.next_ready_line() {
                    return Ok(Some(line));
                }
                continue;
            }
            if self.skip > 0 {
                let n = self.skip.min(self.buf.len());
                self.buf.advance(n);
                self.pos += n as u64;
                self.skip -= n;
                if self.skip > 0 {
                    return Ok(None);
                }
                self.line_start = self.pos;
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

    /// [`Framer::next_message`] for a `newline` framer, which never fails.
    pub fn next_line(&mut self) -> Option<Bytes> {
        self.next_message().ok().flatten()
    }

    /// At the end of the input: the last message, which has no line ending,
    /// if any (and if not over-long). Call after [`Framer::next_message`] returned
    /// `None`.
    pub fn finish(&mut self) -> Option<Bytes> {
        if self.buf.is_empty() || self.skip > 0 {
            return None;
        }
        let len = self.buf.len();
        let start = self.pos;
        let mut line = self.buf.split().freeze();
        self.pos += len as u64;
        self.line_start = self.pos;
        if std::mem::take(&mut self.skipping_line) {
            return None;
        }
        let end = strip_cr(&line);
        if end > self.max {
            self.report_long(start);
            return None;
        }
        line.truncate(end);
        Some(line)
    }

    /// The next line of `ready`; `None` when it was skipped.
    fn next_ready_line(&mut self) -> Option<Bytes> {
        let start = self.pos;
        // `ready` always ends with a newline, so this finds one.
        let nl = memchr::memchr(b'\n', &self.ready).unwrap_or(self.ready.len() - 1);
        let mut line = self.ready.split_to(nl + 1);
        self.pos += (nl + 1) as u64;
        self.line_start = self.pos;
        if self.skipping_line {
            // The tail of an over-long line already reported.
            self.skipping_line = false;
            return None;
        }
        let end = strip_cr(&line[..nl]);
        if end > self.max {
            self.report_long(start);
            return None;
        }
        line.truncate(end);
        Some(line)
    }

    /// Moves the complete lines of `buf` into `ready`; false when there are
    /// none. Handles a partial line that has grown past the limit. In
    /// `auto` mode lines are taken up to the first one followed by a
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
                if n * COPY_BELOW_FRACTION < self.buf.capacity() {
                    self.ready = Bytes::copy_from_slice(&self.buf[..n]);
                    self.buf.advance(n);
                } else {
                    self.ready = self.buf.split_to(n).freeze();
                }
                true
            }
            None => {
                // Allow one extra byte for a `\r` that may precede the newline.
                let too_long = self.buf.len() > self.max.saturating_add(1);
                if self.skipping_line || too_long {
                    if !self.skipping_line {
                        self.report_long(self.pos);
                        self.skipping_line = true;
                    }
                    // `line_start` stays at the long line's start until its end.
                    self.pos += self.buf.len() as u64;
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
            self.report_long(self.pos);
            self.buf.advance(sp + 1);
            self.pos += (sp + 1) as u64;
            self.skip = len;
            return Ok(Some(None));
        }
        if self.buf.len() < sp + 1 + len {
            self.buf.reserve(sp + 1 + len - self.buf.len());
            return Ok(None);
        }
        self.buf.advance(sp + 1);
        let msg = self.buf.split_to(len).freeze();
        self.pos += (sp + 1 + len) as u64;
        self.line_start = self.pos;
        Ok(Some(Some(msg)))
    }

    fn bad_header(&self) -> FrameError {
        FrameError {
            found: String::from_utf8_lossy(&self.buf[..self.buf.len().min(16)]).into_owned(),
        }
    }

    fn report_long(&mut self, offset: u64) {
        self.too_long += 1;
        let Some((label, warn)) = &mut self.warn else {
            return;
        };
        let Some(held_back) = warn.allow() else {
            return;
        };
        tracing::warn!(
            input = %crate::quote::quoted(label).max(4096),
            offset,
            max_line_bytes = self.max,
            skipped_so_far = self.too_long,
            warnings_held_back = held_back,
            "line longer than max_line_bytes: skipped"
        );
    }
}

/// The length of `line` without a trailing `\r`.
fn strip_cr(line: &[u8]) -> usize {
    match line.last() {
        Some(b'\r') => line.len() - 1,
        _ => line.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(f: &mut Framer, data: &[u8]) -> Vec<String> {
        f.buf_mut().extend_from_slice(data);
        let mut out = Vec::new();
        while let Some(m) = f.next_message().unwrap() {
            out.push(String::from_utf8(m.to_vec()).unwrap());
        }
        out
    }

    #[test]
    fn lines_across_reads_with_long_ones_skipped() {
        let mut f = Framer::new(Framing::Newline, 4);
        assert_eq!(feed(&mut f, b"a\r\nbb\ntoolong\ncc"), ["a", "bb"]);
        assert_eq!(f.take_too_long(), 1);
        assert_eq!(feed(&mut f, b"c\n12345678"), ["ccc"]);
        assert_eq!(feed(&mut f, b"9\nok\n"), ["ok"]);
        assert_eq!(f.take_too_long(), 1);
        assert_eq!(f.too_long(), 2);
        assert_eq!(feed(&mut f, b"tail"), Vec::<String>::new());
        assert_eq!(f.finish().unwrap(), "tail");
    }

    #[test]
    fn octet_counting_and_auto() {
        let mut f = Framer::new(Framing::OctetCounted, 10);
        assert_eq!(feed(&mut f, b"5 hello3 a\nb1"), ["hello", "a\nb"]);
        assert_eq!(f.checkpoint(), 12);
        assert_eq!(feed(&mut f, b" x20 0123456789"), ["x"]);
        assert_eq!(feed(&mut f, b"0123456789"), Vec::<String>::new());
        assert_eq!(f.checkpoint(), 15 + 3 + 20);
        assert_eq!(feed(&mut f, b"2 ok"), ["ok"]);
        assert_eq!(f.too_long(), 1);
        f.buf_mut().extend_from_slice(b"x y");
        assert!(f.next_message().is_err());

        let mut f = Framer::new(Framing::Auto, 100);
        assert_eq!(
            feed(&mut f, b"<13>line one\n<14>two\n4 <1>x<2>three\n<5>four\n"),
            ["<13>line one", "<14>two", "<1>x", "<2>three", "<5>four"]
        );
    }

    #[test]
    fn lines_keep_their_offsets_across_chunks() {
        let mut f = Framer::lines("t", 100, 0);
        assert_eq!(feed(&mut f, b"a\r\nbb\nc"), ["a", "bb"]);
        assert_eq!(f.checkpoint(), 6);
        assert_eq!(feed(&mut f, b"cc\n\n"), ["ccc", ""]);
        assert_eq!(f.checkpoint(), 11);
        assert_eq!(feed(&mut f, b"tail\r"), Vec::<String>::new());
        assert!(f.has_partial());
        assert_eq!(f.finish().unwrap(), "tail");
        assert_eq!(f.checkpoint(), 16);
    }

    #[test]
    fn long_lines_are_skipped_inside_and_across_chunks() {
        let mut f = Framer::lines("t", 4, 10);
        assert_eq!(feed(&mut f, b"12345\nok\n"), ["ok"]);
        assert_eq!(f.too_long(), 1);
        // A long line without its newline yet: dropped, offset held at its start.
        assert_eq!(feed(&mut f, b"abcdefgh"), Vec::<String>::new());
        assert_eq!(f.checkpoint(), 19);
        assert!(!f.has_partial());
        assert_eq!(feed(&mut f, b"ijk\r\nfine\r\n"), ["fine"]);
        assert_eq!(f.too_long(), 2);
        assert_eq!(f.checkpoint(), 10 + 9 + 8 + 5 + 6);
        // Exactly the limit is kept, with or without `\r`.
        assert_eq!(feed(&mut f, b"1234\r\n1234\n"), ["1234", "1234"]);
    }
}

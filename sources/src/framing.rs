//! Line framing shared by the `file` and `stdin` sources.
//!
//! A [`LineFramer`] is fed big chunks of bytes (appended to [`LineFramer::buf_mut`])
//! and hands out one line at a time with [`LineFramer::next_line`]. Lines are
//! found with `memchr` and handed out as zero-copy [`Bytes`] slices of the
//! frozen chunk: the cost per chunk is one freeze, the cost per line is one
//! reference-count increment. A trailing `\r` is stripped. The bytes after the
//! last newline (a partial line) stay in the buffer until their newline
//! arrives, or until [`LineFramer::finish`] hands them out at end of input.
//!
//! Lines longer than `max_line_bytes` are counted, reported with a warning
//! naming the input and the line's byte offset (at most one warning a second
//! per input; the warning says how many were held back), and skipped up to
//! and including their newline; the framer never holds more than about
//! `max_line_bytes` plus one chunk.
//!
//! [`LineFramer::checkpoint`] is the byte offset just after the last line
//! handed out or skipped: the place to resume from so that a restart neither
//! re-reads nor skips a line.

use bytes::{Buf, Bytes, BytesMut};
use sluice_core::warn::WarnLimiter;

/// When the complete lines of a read fill less than this fraction of the
/// buffer's capacity, they are copied out instead of sliced, so that a slow
/// trickle of short lines does not pin one big read buffer per event.
const COPY_BELOW_FRACTION: usize = 4;

/// Splits a byte stream into lines. See the module docs.
#[derive(Debug)]
pub(crate) struct LineFramer {
    /// Read but not yet framed: the start of a line whose newline is still to come.
    buf: BytesMut,
    /// Complete lines (ending in `\n`) not handed out yet.
    ready: Bytes,
    /// Stream offset of `ready[0]` (and of `buf[0]` when `ready` is empty).
    pos: u64,
    /// Stream offset just after the last line handed out or skipped.
    line_start: u64,
    /// Discarding the rest of an over-long line until its newline.
    skipping: bool,
    /// The longest line kept, in bytes, without its line ending.
    max_line_bytes: usize,
    /// How many over-long lines were skipped.
    long_lines: u64,
    /// Names the input in warnings (a path, `stdin`).
    label: String,
    /// Over-long line warnings, at most one a second.
    warn: WarnLimiter,
}

impl LineFramer {
    /// A framer for a stream that starts at byte `offset` of its input.
    pub(crate) fn new(label: impl Into<String>, max_line_bytes: usize, offset: u64) -> Self {
        LineFramer {
            buf: BytesMut::new(),
            ready: Bytes::new(),
            pos: offset,
            line_start: offset,
            skipping: false,
            max_line_bytes,
            long_lines: 0,
            label: label.into(),
            warn: WarnLimiter::default(),
        }
    }

    /// The buffer to append freshly read bytes to.
    pub(crate) fn buf_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Takes the buffer out (to move it into a blocking read); give it back
    /// with [`LineFramer::put_buf`].
    pub(crate) fn take_buf(&mut self) -> BytesMut {
        std::mem::take(&mut self.buf)
    }

    /// Gives back the buffer taken by [`LineFramer::take_buf`], with the new
    /// bytes appended.
    pub(crate) fn put_buf(&mut self, buf: BytesMut) {
        self.buf = buf;
    }

    /// Frees the read buffer when it holds nothing: an idle followed file
    /// then keeps no chunk-sized allocation.
    pub(crate) fn release_idle_buffer(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > 0 {
            self.buf = BytesMut::new();
        }
    }

    /// The offset to resume from: just after the last line handed out or skipped.
    pub(crate) fn checkpoint(&self) -> u64 {
        self.line_start
    }

    /// Whether bytes of a line whose newline has not arrived yet are held
    /// (not counting the tail of an over-long line being skipped).
    pub(crate) fn has_partial(&self) -> bool {
        !self.skipping && !self.buf.is_empty()
    }

    /// Renames the input in warnings (a followed file that was renamed).
    pub(crate) fn set_label(&mut self, label: impl Into<String>) {
        self.label = label.into();
    }

    /// How many over-long lines were skipped so far.
    pub(crate) fn long_lines(&self) -> u64 {
        self.long_lines
    }

    /// The next complete line, without its `\n` or `\r\n`; `None` when more
    /// input is needed.
    pub(crate) fn next_line(&mut self) -> Option<Bytes> {
        loop {
            if self.ready.is_empty() && !self.fill_ready() {
                return None;
            }
            let start = self.pos;
            // `ready` always ends with a newline, so this finds one.
            let nl = memchr::memchr(b'\n', &self.ready).unwrap_or(self.ready.len() - 1);
            let mut line = self.ready.split_to(nl + 1);
            self.pos += (nl + 1) as u64;
            if self.skipping {
                // The tail of an over-long line already reported.
                self.skipping = false;
                self.line_start = self.pos;
                continue;
            }
            self.line_start = self.pos;
            let end = strip_cr(&line[..nl]);
            if end > self.max_line_bytes {
                self.report_long(start);
                continue;
            }
            line.truncate(end);
            return Some(line);
        }
    }

    /// At end of input: the final line that has no newline, if any (and if
    /// not over-long). Call after [`LineFramer::next_line`] returned `None`.
    pub(crate) fn finish(&mut self) -> Option<Bytes> {
        if self.buf.is_empty() {
            return None;
        }
        let len = self.buf.len();
        let start = self.pos;
        let mut line = self.buf.split().freeze();
        self.pos += len as u64;
        self.line_start = self.pos;
        if std::mem::take(&mut self.skipping) {
            return None;
        }
        let end = strip_cr(&line);
        if end > self.max_line_bytes {
            self.report_long(start);
            return None;
        }
        line.truncate(end);
        Some(line)
    }

    /// Moves the complete lines of `buf` into `ready`; false when there are
    /// none. Handles a partial line that has grown past the limit.
    fn fill_ready(&mut self) -> bool {
        match memchr::memrchr(b'\n', &self.buf) {
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
                let too_long = self.buf.len() > self.max_line_bytes.saturating_add(1);
                if self.skipping || too_long {
                    if !self.skipping {
                        self.report_long(self.pos);
                        self.skipping = true;
                    }
                    // `line_start` stays at the long line's start until its end.
                    self.pos += self.buf.len() as u64;
                    self.buf.clear();
                }
                false
            }
        }
    }

    fn report_long(&mut self, offset: u64) {
        self.long_lines += 1;
        let Some(held_back) = self.warn.allow() else {
            return;
        };
        tracing::warn!(
            input = %sluice_core::quote::quoted(&self.label).max(4096),
            offset,
            max_line_bytes = self.max_line_bytes,
            skipped_so_far = self.long_lines,
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

    fn feed(f: &mut LineFramer, data: &[u8]) -> Vec<String> {
        f.buf_mut().extend_from_slice(data);
        std::iter::from_fn(|| f.next_line())
            .map(|b| String::from_utf8(b.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn frames_lines_across_chunks_and_strips_cr() {
        let mut f = LineFramer::new("t", 100, 0);
        assert_eq!(feed(&mut f, b"a\r\nbb\nc"), ["a", "bb"]);
        assert_eq!(f.checkpoint(), 6);
        assert_eq!(feed(&mut f, b"cc\n\n"), ["ccc", ""]);
        assert_eq!(f.checkpoint(), 11);
        assert_eq!(feed(&mut f, b"tail\r"), Vec::<String>::new());
        assert_eq!(f.finish().unwrap(), "tail");
        assert_eq!(f.checkpoint(), 16);
    }

    #[test]
    fn skips_long_lines_inside_and_across_chunks() {
        let mut f = LineFramer::new("t", 4, 10);
        assert_eq!(feed(&mut f, b"12345\nok\n"), ["ok"]);
        assert_eq!(f.long_lines(), 1);
        // A long line without its newline yet: dropped, offset held at its start.
        assert_eq!(feed(&mut f, b"abcdefgh"), Vec::<String>::new());
        assert_eq!(f.checkpoint(), 19);
        assert_eq!(feed(&mut f, b"ijk\r\nfine\r\n"), ["fine"]);
        assert_eq!(f.long_lines(), 2);
        assert_eq!(f.checkpoint(), 10 + 9 + 8 + 5 + 6);
        // Exactly the limit is kept, with or without `\r`.
        assert_eq!(feed(&mut f, b"1234\r\n1234\n"), ["1234", "1234"]);
    }
}

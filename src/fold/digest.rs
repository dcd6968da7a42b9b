//! A digest of a stream's lines, for the verification before a swap
//! (`job::verify`): computed by the fold engine's scan as it reads the new
//! file (one read, not one to hash and one to fold), and by the planned
//! side from the plan's kept ranges.
//!
//! The digest is the wrapping sum of one hash per line of (offset in the
//! output, length, whether it ends in `\n`, bytes). The offset makes it
//! order-sensitive; the sum makes it independent of how the stream was cut
//! into shares.
//!
//! Invariants:
//! - A line's hash does not depend on how its bytes were fed: the bytes
//!   are hashed in fixed [`BLOCK`]s from the line's start, so a line fed in
//!   pieces (the planned side's copy buffers, a long line read back in
//!   chunks) hashes as the same line fed whole.
//! - Memory is bounded: at most one [`BLOCK`] of a line is held, however
//!   long the line is.

use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::os::unix::fs::FileExt;

/// The line's bytes are hashed in blocks of this size.
const BLOCK: usize = 4096;

const SEED: u64 = 0x6c6b_7665_7269_6679;

fn hasher(seed: u64) -> foldhash::fast::FoldHasher {
    foldhash::fast::FixedState::with_seed(seed).build_hasher()
}

/// See the module doc.
#[derive(Debug)]
pub(crate) struct LineDigest {
    /// The current line's bytes since its last whole block.
    block: Vec<u8>,
    /// The current line's blocks so far, chained.
    state: u64,
    /// The current line's length so far.
    len: u64,
    /// The output offset of the next line's first byte (fed streams).
    at: u64,
    /// Sum of the line hashes.
    pub(crate) sum: u64,
    pub(crate) lines: u64,
    pub(crate) bytes: u64,
}

impl LineDigest {
    /// A digest of a stream whose first byte is at output offset `at`.
    pub(crate) fn new(at: u64) -> Self {
        LineDigest {
            block: Vec::new(),
            state: 0,
            len: 0,
            at,
            sum: 0,
            lines: 0,
            bytes: 0,
        }
    }

    /// The output offset of the next line fed.
    pub(crate) fn set_at(&mut self, at: u64) {
        self.at = at;
    }

    #[inline]
    fn absorb(&mut self, blk: &[u8]) {
        let mut h = hasher(SEED ^ self.state);
        h.write(blk);
        self.state = h.finish();
    }

    /// Part of the current line (no `\n` in it).
    fn part(&mut self, mut b: &[u8]) {
        self.len += b.len() as u64;
        if !self.block.is_empty() {
            let n = (BLOCK - self.block.len()).min(b.len());
            self.block.extend_from_slice(&b[..n]);
            b = &b[n..];
            if self.block.len() < BLOCK {
                return;
            }
            let blk = std::mem::take(&mut self.block);
            self.absorb(&blk);
            self.block = blk;
            self.block.clear();
        }
        while b.len() >= BLOCK {
            self.absorb(&b[..BLOCK]);
            b = &b[BLOCK..];
        }
        self.block.extend_from_slice(b);
    }

    /// End the current line, which starts at output offset `at`.
    fn end_at(&mut self, at: u64, ended: bool) {
        if !self.block.is_empty() {
            let blk = std::mem::take(&mut self.block);
            self.absorb(&blk);
            self.block = blk;
            self.block.clear();
        }
        let mut h = hasher(SEED);
        h.write_u64(at);
        h.write_u64(self.len);
        h.write_u8(ended as u8);
        h.write_u64(self.state);
        self.sum = self.sum.wrapping_add(h.finish());
        self.lines += 1;
        self.bytes += self.len + u64::from(ended);
        self.at = at + self.len + 1;
        self.state = 0;
        self.len = 0;
    }

    /// One whole line (without its `\n`) at output offset `at`.
    #[inline]
    pub(crate) fn line(&mut self, at: u64, line: &[u8]) {
        debug_assert!(self.len == 0 && self.block.is_empty());
        let mut b = line;
        while b.len() > BLOCK {
            self.absorb(&b[..BLOCK]);
            b = &b[BLOCK..];
        }
        // The last (partial or whole) block, as `end_at` would absorb it.
        if !b.is_empty() {
            self.absorb(b);
        }
        self.len = line.len() as u64;
        let mut h = hasher(SEED);
        h.write_u64(at);
        h.write_u64(self.len);
        h.write_u8(1);
        h.write_u64(self.state);
        self.sum = self.sum.wrapping_add(h.finish());
        self.lines += 1;
        self.bytes += self.len + 1;
        self.at = at + self.len + 1;
        self.state = 0;
        self.len = 0;
    }

    /// One whole line of `len` bytes (without its `\n`) at `off` in
    /// `file`, read back in pieces, at output offset `at`.
    pub(crate) fn line_in_file(
        &mut self,
        file: &File,
        off: u64,
        len: u64,
        at: u64,
    ) -> std::io::Result<()> {
        let mut buf = vec![0u8; 1 << 20];
        let mut done = 0;
        while done < len {
            let n = ((len - done) as usize).min(buf.len());
            file.read_exact_at(&mut buf[..n], off + done)?;
            self.part(&buf[..n]);
            done += n as u64;
        }
        self.end_at(at, true);
        Ok(())
    }

    /// Bytes of the stream, in order, cut anywhere.
    pub(crate) fn feed(&mut self, mut b: &[u8]) {
        while let Some(i) = memchr::memchr(b'\n', b) {
            if self.len == 0 {
                // A whole line in `b`: hashed where it lies, not copied.
                self.line(self.at, &b[..i]);
            } else {
                self.part(&b[..i]);
                self.end_at(self.at, true);
            }
            b = &b[i + 1..];
        }
        if !b.is_empty() {
            self.part(b);
        }
    }

    /// End the stream: a last line without its `\n` (never in a plan) is
    /// hashed as unended.
    pub(crate) fn finish(&mut self) {
        if self.len > 0 {
            self.end_at(self.at, false);
        }
    }

    /// Add another digest's lines (finished).
    pub(crate) fn absorb_digest(&mut self, other: &LineDigest) {
        self.sum = self.sum.wrapping_add(other.sum);
        self.lines += other.lines;
        self.bytes += other.bytes;
    }
}

/// The planned side is read through [`crate::io::ranges::copy_ranges_mapped`].
impl std::io::Write for LineDigest {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.feed(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn fed(pieces: &[&[u8]]) -> LineDigest {
        let mut d = LineDigest::new(0);
        for p in pieces {
            d.feed(p);
        }
        d.finish();
        d
    }

    /// Lines shorter and longer than a block, fed whole, in pieces cut at
    /// every few bytes, and read back from a file, hash the same.
    #[test]
    fn a_line_hashes_the_same_however_it_is_fed() {
        let long: Vec<u8> = (0..3 * BLOCK + 17).map(|i| b'a' + (i % 26) as u8).collect();
        let mut text = b"{\"a\":1}\n\n".to_vec();
        text.extend_from_slice(&long);
        text.push(b'\n');
        let whole = fed(&[&text]);
        for step in [1, 7, BLOCK - 1, BLOCK, BLOCK + 1] {
            let pieces: Vec<&[u8]> = text.chunks(step).collect();
            assert_eq!(fed(&pieces).sum, whole.sum, "pieces of {step}");
        }
        let mut by_line = LineDigest::new(0);
        by_line.line(0, b"{\"a\":1}");
        by_line.line(8, b"");
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&text).unwrap();
        by_line.line_in_file(&f, 9, long.len() as u64, 9).unwrap();
        assert_eq!(
            (by_line.sum, by_line.lines, by_line.bytes),
            (whole.sum, 3, text.len() as u64)
        );
    }

    #[test]
    fn order_bytes_and_an_unended_line_all_count() {
        let a = fed(&[b"{\"t\":1}\n{\"t\":2}\n"]);
        assert_ne!(a.sum, fed(&[b"{\"t\":2}\n{\"t\":1}\n"]).sum);
        assert_ne!(a.sum, fed(&[b"{\"t\":1}\n{\"t\":3}\n"]).sum);
        assert_ne!(a.sum, fed(&[b"{\"t\":1}\n{\"t\":2}"]).sum);
    }
}

//! Looking at a stream while it passes: its first bytes (what format is it?
//! already compressed?) and its last bytes (did the dump tool finish?).

use std::io::Read;

const HEAD: usize = 16 << 10;
const TAIL: usize = 1 << 10;

/// A reader that remembers the start and the end of what went through it.
pub struct Sniff<R> {
    inner: R,
    pub head: Vec<u8>,
    tail: Vec<u8>,
    pub total: u64,
}

impl<R: Read> Sniff<R> {
    pub fn new(inner: R) -> Self {
        Sniff {
            inner,
            head: Vec::new(),
            tail: Vec::new(),
            total: 0,
        }
    }

    /// The last bytes read (up to 1 KiB).
    pub fn tail(&self) -> &[u8] {
        &self.tail
    }
}

impl<R: Read> Read for Sniff<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let got = &buf[..n];
        if self.head.len() < HEAD {
            let take = (HEAD - self.head.len()).min(n);
            self.head.extend_from_slice(&got[..take]);
        }
        if n >= TAIL {
            self.tail.clear();
            self.tail.extend_from_slice(&got[n - TAIL..]);
        } else {
            let drop = (self.tail.len() + n).saturating_sub(TAIL);
            self.tail.drain(..drop);
            self.tail.extend_from_slice(got);
        }
        self.total += n as u64;
        Ok(n)
    }
}

/// What compression, if any, the stream starting with `head` carries.
/// Compressed input defeats deduplication: one changed row changes every
/// byte after it.
pub fn compression(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(&[0x1f, 0x8b]) {
        return Some("gzip");
    }
    if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Some("zstd");
    }
    if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        return Some("xz");
    }
    if head.starts_with(b"BZh") && head.len() > 3 && head[3].is_ascii_digit() {
        return Some("bzip2");
    }
    if head.starts_with(&[0x04, 0x22, 0x4d, 0x18]) {
        return Some("lz4");
    }
    pg_custom_compression(head)
}

/// pg_dump's custom format header (pg_backup_archiver.c, ReadHead): "PGDMP",
/// version major/minor/rev, int size, offset size, format; then from 1.15 a
/// compression algorithm byte, before that a compression level int.
fn pg_custom_compression(h: &[u8]) -> Option<&'static str> {
    if !h.starts_with(b"PGDMP") || h.len() < 12 {
        return None;
    }
    let (major, minor, int_size) = (h[5], h[6], h[8] as usize);
    if (major, minor) >= (1, 15) {
        return match h[11] {
            0 => None,
            1 => Some("pg_dump custom format with gzip"),
            2 => Some("pg_dump custom format with lz4"),
            3 => Some("pg_dump custom format with zstd"),
            _ => None,
        };
    }
    // an int: a sign byte, then `int_size` bytes little-endian
    let bytes = h.get(12..12 + int_size)?;
    let level = bytes
        .iter()
        .rev()
        .fold(0i64, |acc, b| (acc << 8) | *b as i64);
    match level {
        0 => None,
        _ => Some("pg_dump custom format with compression"),
    }
}

/// Whether `tail` ends the way a complete dump of this kind ends.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_and_tail_are_kept_across_reads() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut s = Sniff::new(std::io::Cursor::new(&data));
        let mut buf = [0u8; 777];
        while s.read(&mut buf).unwrap() > 0 {}
        assert_eq!(s.head, data[..HEAD]);
        assert_eq!(s.tail(), &data[data.len() - TAIL..]);
        assert_eq!(s.total, data.len() as u64);
    }

    #[test]
    fn compressed_inputs_are_recognised() {
        let gz = [0x1f, 0x8b, 8, 0];
        assert_eq!(compression(&gz), Some("gzip"));
        let z = zstd::encode_all(&b"hello"[..], 3).unwrap();
        assert_eq!(compression(&z), Some("zstd"));
        assert_eq!(compression(b"-- PostgreSQL database dump"), None);
        // custom format 1.15 with compression byte 0 (none) / 1 (gzip)
        let mut h = b"PGDMP".to_vec();
        h.extend_from_slice(&[1, 15, 0, 4, 8, 1, 0]);
        assert_eq!(compression(&h), None);
        h[11] = 1;
        assert!(compression(&h).unwrap().contains("gzip"));
        // 1.14: compression level int (sign byte + 4 bytes)
        let mut old = b"PGDMP".to_vec();
        old.extend_from_slice(&[1, 14, 0, 4, 8, 1, 0, 6, 0, 0, 0]);
        assert!(compression(&old).is_some());
        old[12] = 0;
        assert_eq!(compression(&old), None);
    }
}

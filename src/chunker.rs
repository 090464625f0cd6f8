//! Content-defined chunking of a byte stream with FastCDC (format-spec/chunking.md).
//!
//! The gear table is XORed with a seed derived from the master key, so that
//! chunk boundaries do not reveal the plaintext to someone without the key
//! (a weak protection; see the threat model). Boundaries depend only on the
//! bytes from a chunk's start, so chunking a stream in windows gives the same
//! chunks as chunking it whole: a cut is only taken when at least `max_size`
//! bytes are buffered, or at the end of the input.

use std::io::{self, Read};

use fastcdc::v2020::{FastCDC, Normalization};

use crate::format::config::ChunkerParams;

pub struct Chunker {
    params: ChunkerParams,
    seed: u64,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
}

impl Chunker {
    pub fn new(params: ChunkerParams, seed: u64) -> Chunker {
        Chunker {
            params,
            seed,
            buf: vec![0; params.max_size as usize * 3],
            start: 0,
            end: 0,
            eof: false,
        }
    }

    /// Forget any buffered input, to chunk a new input with the same buffer.
    pub fn reset(&mut self) {
        self.start = 0;
        self.end = 0;
        self.eof = false;
    }

    fn cdc<'a>(&self, data: &'a [u8]) -> FastCDC<'a> {
        let p = &self.params;
        FastCDC::with_level_and_seed(
            data,
            p.min_size as usize,
            p.avg_size as usize,
            p.max_size as usize,
            Normalization::Level1,
            self.seed,
        )
    }

    /// Read from `r` until a chunk is complete; `None` at the end of the input.
    /// Interrupted reads are retried; other read errors are returned.
    pub fn next_chunk<R: Read + ?Sized>(&mut self, r: &mut R) -> io::Result<Option<Vec<u8>>> {
        let max = self.params.max_size as usize;
        if self.end - self.start < max && !self.eof {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            while self.end < self.buf.len() {
                match r.read(&mut self.buf[self.end..]) {
                    Ok(0) => {
                        self.eof = true;
                        break;
                    }
                    Ok(n) => self.end += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            }
        }
        let avail = self.end - self.start;
        if avail == 0 {
            return Ok(None);
        }
        let window = &self.buf[self.start..self.end];
        let len = if avail <= self.params.min_size as usize {
            avail
        } else {
            let (_, cut) = self.cdc(window).cut(0, avail.min(max));
            cut
        };
        let chunk = window[..len].to_vec();
        self.start += len;
        Ok(Some(chunk))
    }
}

/// Chunk boundaries of an in-memory input (lengths in order); used by tests
/// and benchmarks to check the streaming chunker.
pub fn chunk_lengths(params: ChunkerParams, seed: u64, data: &[u8]) -> Vec<usize> {
    let c = Chunker::new(params, seed);
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let rest = &data[pos..];
        let len = if rest.len() <= params.min_size as usize {
            rest.len()
        } else {
            c.cdc(rest)
                .cut(0, rest.len().min(params.max_size as usize))
                .1
        };
        out.push(len);
        pos += len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    /// A reader that returns at most `step` bytes per call, like a pipe.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(out.len()).min(self.1);
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn streaming_matches_whole_input() {
        let params = ChunkerParams {
            min_size: 4096,
            avg_size: 16384,
            max_size: 65536,
        };
        for (n, step) in [
            (0, 7),
            (1, 1),
            (4096, 100),
            (4097, 4096),
            (1_000_000, 65536),
            (777_777, 3000),
        ] {
            let data = pattern(n, 42);
            let mut c = Chunker::new(params, 99);
            let mut got = Vec::new();
            let mut joined = Vec::new();
            let mut r = Trickle(&data, step);
            while let Some(chunk) = c.next_chunk(&mut r).unwrap() {
                assert!(chunk.len() <= 65536);
                got.push(chunk.len());
                joined.extend_from_slice(&chunk);
            }
            assert_eq!(joined, data);
            assert_eq!(got, chunk_lengths(params, 99, &data), "n={n}");
        }
    }

    #[test]
    fn seed_changes_boundaries() {
        let params = ChunkerParams {
            min_size: 4096,
            avg_size: 16384,
            max_size: 65536,
        };
        let data = pattern(500_000, 7);
        assert_ne!(
            chunk_lengths(params, 1, &data),
            chunk_lengths(params, 2, &data)
        );
    }
}

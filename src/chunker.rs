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
    /// Ends (positions in `buf`) of chunks already planned, in order.
    cuts: std::collections::VecDeque<usize>,
}

impl Chunker {
    pub fn new(params: ChunkerParams, seed: u64) -> Chunker {
        Chunker {
            params,
            seed,
            // 1.5 x max: one compaction of less than max bytes per half max
            // or more chunked; backups of the anchors' dumps and volume are
            // as fast as with 2 x max or 3 x max, and 4 MiB less is resident
            // for the life of a backup
            buf: vec![0; params.max_size as usize * 3 / 2],
            start: 0,
            end: 0,
            eof: false,
            cuts: Default::default(),
        }
    }

    /// Forget any buffered input, to chunk a new input with the same buffer.
    pub fn reset(&mut self) {
        self.start = 0;
        self.end = 0;
        self.eof = false;
        self.cuts.clear();
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

    /// The end of the chunk that starts at `pos` in `w` (all of `w` is
    /// available: at least `max_size` bytes from `pos`, or the input's end).
    fn next_cut(&self, w: &[u8], pos: usize) -> usize {
        let rest = w.len() - pos;
        if rest <= self.params.min_size as usize {
            return w.len();
        }
        pos + self
            .cdc(&w[pos..])
            .cut(0, rest.min(self.params.max_size as usize))
            .1
    }

    /// Plan the chunks of window `w` whose starts have `max_size` bytes after
    /// them (or all of them at the end of the input).
    ///
    /// (Cutting the second half of a window speculatively on another thread,
    /// then resynchronising, gives identical cuts but measured no faster on 2
    /// cores: the workers already use the second core.)
    fn plan(&self, w: &[u8], eof: bool) -> Vec<usize> {
        let limit = if eof {
            w.len()
        } else {
            w.len() - self.params.max_size as usize
        };
        let mut cuts = Vec::new();
        let mut pos = 0;
        while pos <= limit && pos < w.len() {
            pos = self.next_cut(w, pos);
            cuts.push(pos);
        }
        cuts
    }

    /// Read from `r` until a chunk is complete; `None` at the end of the input.
    /// Interrupted reads are retried; other read errors are returned.
    pub fn next_chunk<R: Read + ?Sized>(&mut self, r: &mut R) -> io::Result<Option<Vec<u8>>> {
        let mut out = Vec::new();
        Ok(self.next_chunk_into(r, &mut out)?.then_some(out))
    }

    /// Like [`next_chunk`](Self::next_chunk), into `out` (cleared first), so
    /// that buffers can be reused; returns false at the end of the input.
    pub fn next_chunk_into<R: Read + ?Sized>(
        &mut self,
        r: &mut R,
        out: &mut Vec<u8>,
    ) -> io::Result<bool> {
        if self.cuts.is_empty() {
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
            if self.end == self.start {
                return Ok(false);
            }
            let base = self.start;
            let planned = self.plan(&self.buf[base..self.end], self.eof);
            self.cuts.extend(planned.into_iter().map(|c| base + c));
        }
        let cut = self
            .cuts
            .pop_front()
            .expect("a window always yields a chunk");
        out.clear();
        out.extend_from_slice(&self.buf[self.start..cut]);
        self.start = cut;
        Ok(true)
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
    fn windows_match_whole_input_on_repetitive_random_and_zero_data() {
        let params = ChunkerParams {
            min_size: 4096,
            avg_size: 16384,
            max_size: 65536,
        };
        // repetitive data (few cut candidates), random data, and zeros (no cut
        // candidates at all: every chunk is max_size), fed in large reads
        let mut text = Vec::new();
        while text.len() < 3_000_000 {
            text.extend_from_slice(
                format!("{}\t1\t0\t                    \n", text.len() / 7).as_bytes(),
            );
        }
        for data in [text, pattern(3_000_000, 5), vec![0u8; 2_000_000]] {
            let mut c = Chunker::new(params, 7);
            let mut got = Vec::new();
            let mut r = Trickle(&data, 1 << 20);
            while let Some(chunk) = c.next_chunk(&mut r).unwrap() {
                got.push(chunk.len());
            }
            assert_eq!(got, chunk_lengths(params, 7, &data));
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

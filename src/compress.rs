//! zstd compression of blob bodies (format-spec/envelope.md, "Codecs").
//!
//! Compression contexts are kept per thread: creating one costs more than
//! compressing a small chunk.

use std::cell::RefCell;
use std::io::Cursor;

use crate::error::{Error, Result};

/// Body stored as is.
pub const CODEC_NONE: u8 = 0x00;
/// Body is one zstd frame that declares its content size.
pub const CODEC_ZSTD: u8 = 0x01;
/// Reserved: a zstd patch against a reference blob (planned, see format-spec).
pub const CODEC_ZSTD_DELTA: u8 = 0x02;

thread_local! {
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

/// Compress `data` at `level`, appending the frame to `out` (after its current
/// length). Returns false, leaving `out` as it was, when compression does not
/// save at least 1/64 of the size: storing the data raw is then cheaper to read.
pub fn compress_into(data: &[u8], level: i32, out: &mut Vec<u8>) -> bool {
    // Large chunks of already-compressed data (media, archives) are common in
    // volumes: try a 64 KiB sample first and skip the rest when it does not pay.
    if data.len() > SAMPLE * 4 && !pays(&data[..SAMPLE], level, out) {
        return false;
    }
    let start = out.len();
    out.reserve(zstd::zstd_safe::compress_bound(data.len()));
    let mut cursor = Cursor::new(std::mem::take(out));
    cursor.set_position(start as u64);
    let ok = COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.as_ref().map(|(l, _)| *l) != Some(level) {
            let mut comp = zstd::bulk::Compressor::new(level).expect("zstd context");
            comp.include_contentsize(true).expect("zstd parameter");
            comp.include_checksum(false).expect("zstd parameter");
            if let Some(m) = min_match(level) {
                comp.set_parameter(zstd::zstd_safe::CParameter::MinMatch(m))
                    .expect("zstd parameter");
            }
            *c = Some((level, comp));
        }
        let comp = &mut c.as_mut().unwrap().1;
        comp.compress_to_buffer(data, &mut cursor).is_ok()
    });
    *out = cursor.into_inner();
    let saved = ok && out.len() - start + data.len() / 64 < data.len();
    if !saved {
        out.truncate(start);
    }
    saved
}

const SAMPLE: usize = 64 << 10;

/// The shortest match the fast levels look for. zstd's level 2 takes 6;
/// 7 decodes literal-heavy dumps 9 % faster (fewer, longer sequences) for a
/// repository 0.7 % larger on them and 1.3 % smaller on the pgbench dump
/// (`zstd -b2 --zstd=mml=7`, 2 MiB blocks). Level 1 already uses 7; higher
/// levels keep their own, which trade decoding speed for size on purpose.
fn min_match(level: i32) -> Option<u32> {
    (level == 2).then_some(7)
}

/// Would compressing `sample` save at least 1/32 of it? (`scratch` is left as it was.)
fn pays(sample: &[u8], level: i32, scratch: &mut Vec<u8>) -> bool {
    let start = scratch.len();
    let saved = compress_into(sample, level, scratch)
        && scratch.len() - start + sample.len() / 32 < sample.len();
    scratch.truncate(start);
    saved
}

/// Decompress one zstd frame whose declared content size must be at most `cap`.
pub fn decompress(frame: &[u8], cap: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    decompress_into(frame, cap, &mut out)?;
    Ok(out)
}

/// Like [`decompress`], into `out` (replacing its contents) so that buffers
/// can be reused.
pub fn decompress_into(frame: &[u8], cap: usize, out: &mut Vec<u8>) -> Result<()> {
    let size = match zstd::zstd_safe::get_frame_content_size(frame) {
        Ok(Some(n)) => n,
        Ok(None) => return Err(Error::corrupt("zstd frame does not declare its size")),
        Err(_) => return Err(Error::corrupt("invalid zstd frame header")),
    };
    if size > cap as u64 {
        return Err(Error::corrupt(format!(
            "zstd frame declares {size} bytes, more than the limit of {cap}"
        )));
    }
    out.clear();
    // exact: callers reuse `out` across chunks, and an amortized doubling
    // (6 MiB wanted of a 5 MiB buffer gives 10) would outgrow the buffer
    // pools' size limit, so the buffer is dropped and the next one faulted in anew
    out.reserve_exact(size as usize);
    DECOMPRESSOR.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_none() {
            *d = Some(zstd::bulk::Decompressor::new().expect("zstd context"));
        }
        d.as_mut()
            .unwrap()
            .decompress_to_buffer(frame, out)
            .map_err(|e| Error::corrupt(format!("zstd: {e}")))
    })?;
    if out.len() as u64 != size {
        return Err(Error::corrupt("zstd frame is shorter than it declares"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_incompressible_input_is_skipped_after_a_sample() {
        let mut x = 1u64;
        let noise: Vec<u8> = (0..1 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let mut out = vec![9u8];
        assert!(!compress_into(&noise, 2, &mut out));
        assert_eq!(out, vec![9u8]);
        let text = b"INSERT INTO t VALUES (1, 'abc');\n".repeat(40_000);
        assert!(compress_into(&text, 2, &mut out));
        assert_eq!(decompress(&out[1..], text.len()).unwrap(), text);
    }

    /// Level 2 frames are what zstd makes with a minimum match of 7, not
    /// its default 6 (literal-heavy rows of hex, like the high-entropy dump).
    #[test]
    fn level_2_looks_for_matches_of_at_least_7_bytes() {
        let mut x = 7u64;
        let mut rows = Vec::new();
        for i in 0..20_000u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            rows.extend_from_slice(format!("{i}\t{:016x}\t{}\tnew\n", x, x % 997).as_bytes());
        }
        let mut ours = Vec::new();
        assert!(compress_into(&rows, 2, &mut ours));
        assert_eq!(decompress(&ours, rows.len()).unwrap(), rows);
        let with = |m: Option<u32>| {
            let mut c = zstd::bulk::Compressor::new(2).unwrap();
            c.include_contentsize(true).unwrap();
            c.include_checksum(false).unwrap();
            if let Some(m) = m {
                c.set_parameter(zstd::zstd_safe::CParameter::MinMatch(m))
                    .unwrap();
            }
            c.compress(&rows).unwrap()
        };
        assert_eq!(ours, with(Some(7)));
        assert_ne!(ours, with(None), "the data does not tell 6 from 7");
    }

    #[test]
    fn round_trip_and_skip_incompressible() {
        let text = b"hello hello hello hello hello hello hello hello".repeat(100);
        let mut out = vec![7u8];
        assert!(compress_into(&text, 3, &mut out));
        assert_eq!(out[0], 7);
        assert_eq!(decompress(&out[1..], text.len()).unwrap(), text);
        assert!(decompress(&out[1..], text.len() - 1).is_err());

        let noise: Vec<u8> = (0..10000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let mut out = vec![1, 2];
        let _ = compress_into(&noise, 3, &mut out);
        // whether or not it paid, the prefix is untouched
        assert_eq!(&out[..2], &[1, 2]);
    }
}

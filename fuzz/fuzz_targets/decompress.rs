//! `compress::decompress` with a 1 MiB cap on arbitrary frames: it must never
//! panic, never return more than the cap, and never allocate (through the
//! Rust allocator) more than the cap plus a little. Also compress_into →
//! decompress round trips of the input.
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use coffre::compress;
use coffre_fuzz::assert_corrupt;
use libfuzzer_sys::fuzz_target;

const CAP: usize = 1 << 20;
/// Error messages and the like.
const SLACK: usize = 64 << 10;

/// Counts the bytes live through the Rust allocator and their high-water mark.
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

fn note_alloc(size: usize) {
    let live = LIVE.fetch_add(size, Relaxed) + size;
    PEAK.fetch_max(live, Relaxed);
    LARGEST.fetch_max(size, Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            note_alloc(l.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            note_alloc(l.size());
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size(), Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            LIVE.fetch_sub(l.size(), Relaxed);
            note_alloc(new);
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fuzz_target!(|data: &[u8]| {
    // 1. Arbitrary bytes as a frame, measured.
    let base = LIVE.load(Relaxed);
    PEAK.store(base, Relaxed);
    LARGEST.store(0, Relaxed);
    let got = compress::decompress(data, CAP);
    let peak = PEAK.load(Relaxed) - base;
    let largest = LARGEST.load(Relaxed);
    assert!(largest <= CAP + SLACK, "decompress made a {largest}-byte allocation (cap {CAP})");
    assert!(peak <= CAP + SLACK, "decompress had {peak} bytes live (cap {CAP})");
    match got {
        Ok(out) => {
            assert!(out.len() <= CAP);
            // It declared its size: a cap of one byte less must refuse it.
            if !out.is_empty() {
                assert!(compress::decompress(data, out.len() - 1).is_err());
            }
        }
        Err(e) => assert_corrupt(&e),
    }

    // 2. compress_into → decompress round trip.
    let level = data.first().map_or(3, |b| *b as i32 % 8 - 1); // -1..=6
    let mut out = vec![0xeeu8; 3];
    if compress::compress_into(data, level, &mut out) {
        assert_eq!(out[..3], [0xee; 3], "compress_into overwrote the prefix");
        let back = compress::decompress(&out[3..], data.len()).expect("round trip failed");
        assert_eq!(back, data, "round trip changed the data");
        if !data.is_empty() {
            assert!(compress::decompress(&out[3..], data.len() - 1).is_err());
        }
    } else {
        assert_eq!(out, [0xee; 3], "compress_into left bytes behind");
    }
});

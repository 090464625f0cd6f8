//! Reusable byte buffers handed between the threads of a pipeline.

use crossbeam_channel::{Receiver, Sender, bounded};

/// Buffers handed back once their bytes are used, so that large allocations
/// are reused rather than faulted in anew each time (page faults and page
/// clearing were a tenth of a restore's or a scrub's CPU time). Bounded both
/// in count and in the size of each buffer it keeps, so it never pins more
/// memory than the pipeline had in flight.
#[derive(Clone)]
pub(crate) struct BufferPool {
    tx: Sender<Vec<u8>>,
    rx: Receiver<Vec<u8>>,
    keep_up_to: usize,
    fresh_capacity: usize,
}

impl BufferPool {
    /// A pool of at most `keep` idle buffers of at most `keep_up_to` bytes.
    pub(crate) fn new(keep: usize, keep_up_to: usize) -> BufferPool {
        let (tx, rx) = bounded(keep.max(1));
        BufferPool {
            tx,
            rx,
            keep_up_to,
            fresh_capacity: 0,
        }
    }

    /// New buffers start with `bytes` of capacity, on huge pages where the
    /// kernel allows: for buffers of several MiB that are filled and read
    /// once per item, 4 KiB pages cost a page fault each and TLB misses (a
    /// pgbench dump restores 4 % faster).
    pub(crate) fn fresh_capacity(mut self, bytes: usize) -> BufferPool {
        self.fresh_capacity = bytes;
        self
    }

    /// An idle buffer, or a new empty one.
    pub(crate) fn take(&self) -> Vec<u8> {
        self.rx.try_recv().unwrap_or_else(|_| {
            let buf = Vec::with_capacity(self.fresh_capacity);
            advise_huge_pages(&buf);
            buf
        })
    }

    /// Keep `buf` for reuse, unless the pool is full or `buf` is larger than
    /// it keeps (a buffer grown by a rare large item would pin that size).
    pub(crate) fn give_back(&self, buf: Vec<u8>) {
        if buf.capacity() <= self.keep_up_to {
            let _ = self.tx.try_send(buf);
        }
    }
}

/// Ask the kernel to back the 2 MiB-aligned part of `buf`'s allocation with
/// huge pages, where transparent huge pages are enabled on request
/// (`madvise`, a common default).
fn advise_huge_pages(buf: &Vec<u8>) {
    const HUGE: usize = 2 << 20;
    let start = buf.as_ptr() as usize;
    let end = start + buf.capacity();
    let first = start.next_multiple_of(HUGE);
    let last = end / HUGE * HUGE;
    if last > first {
        // SAFETY: the range lies inside `buf`'s allocation; MADV_HUGEPAGE
        // changes no contents, only how untouched pages will be backed.
        unsafe {
            libc::madvise(
                first as *mut libc::c_void,
                last - first,
                libc::MADV_HUGEPAGE,
            )
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_buffers_have_the_capacity_and_come_back_for_reuse() {
        let pool = BufferPool::new(2, 8 << 20).fresh_capacity(8 << 20);
        let mut a = pool.take();
        assert!(a.capacity() >= 8 << 20);
        a.extend_from_slice(&[7; 4 << 20]);
        let ptr = a.as_ptr();
        pool.give_back(a);
        let b = pool.take();
        assert_eq!(b.as_ptr(), ptr, "an idle buffer is reused");
        // one grown past what the pool keeps is dropped, not pinned
        let mut big = b;
        big.reserve(16 << 20);
        pool.give_back(big);
        assert_eq!(pool.take().capacity(), 8 << 20);
    }
}

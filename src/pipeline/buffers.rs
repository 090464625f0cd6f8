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
}

impl BufferPool {
    /// A pool of at most `keep` idle buffers of at most `keep_up_to` bytes.
    pub(crate) fn new(keep: usize, keep_up_to: usize) -> BufferPool {
        let (tx, rx) = bounded(keep.max(1));
        BufferPool { tx, rx, keep_up_to }
    }

    /// An idle buffer, or a new empty one.
    pub(crate) fn take(&self) -> Vec<u8> {
        self.rx.try_recv().unwrap_or_default()
    }

    /// Keep `buf` for reuse, unless the pool is full or `buf` is larger than
    /// it keeps (a buffer grown by a rare large item would pin that size).
    pub(crate) fn give_back(&self, buf: Vec<u8>) {
        if buf.capacity() <= self.keep_up_to {
            let _ = self.tx.try_send(buf);
        }
    }
}

//! Backup and restore pipelines.
//!
//! Both run the same shape: one producer thread (reading input and chunking
//! it, or walking a snapshot), a pool of workers (one per core: hashing,
//! dedup lookup, compression and sealing — or reading, opening and
//! verifying), and the calling thread consuming results in input order. The
//! channels are bounded, so memory stays flat whatever the input size.

mod backup;
mod buffers;
mod check;
mod engine;
mod prune;
mod restore;
mod scrub;
mod sync;
mod verify;
mod walk;

pub use backup::{BackupSession, normalize_root};
pub use check::{CheckReport, Damage, DamagedSnapshots, check, damaged_snapshots};
pub use prune::{PruneOptions, PruneReport, prune};
pub use restore::{RestoreOptions, restore_stream, restore_tree};
pub use scrub::{ScrubOptions, ScrubReport, scrub};
pub use sync::{HighWater, SyncOptions, SyncReport, sync};
pub use verify::{narrow_entry, verify_entry};
pub use walk::TreeEvent;

/// Callbacks for progress display; the library never touches a terminal.
pub trait Progress: Send + Sync {
    /// `n` input bytes were read and chunked (backup) or written (restore).
    fn bytes(&self, _n: u64) {}
    /// `n` bytes of new data went into packs (after compression).
    fn stored(&self, _n: u64) {}
    /// `n` input bytes were already in the repository.
    fn reused(&self, _n: u64) {}
    /// A file or directory was finished.
    fn item(&self, _path: &str) {}
    /// The work ahead is now known: `bytes` in all (sync).
    fn total(&self, _bytes: u64) {}
    /// `done` of `total` objects copied (sync).
    fn objects(&self, _done: u64, _total: u64) {}
    /// Something was skipped; the operation goes on.
    fn warn(&self, message: &str) {
        // it may quote a file name: shown escaped (format/label.rs)
        eprintln!("warning: {}", crate::format::label::shown(message));
    }
}

/// Progress that shows nothing (warnings still go to stderr).
pub struct NoProgress;
impl Progress for NoProgress {}

/// Worker threads to use: one per core.
pub fn workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 16)
}

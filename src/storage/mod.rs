//! Where repository files live (format-spec/layout.md).
//!
//! Durability contract: when `write_atomic` returns Ok, the file is complete
//! and durable under its final name, and a crash at any moment before leaves
//! either no file or a stray temp file under `tmp/`, never a partial file under
//! the final name. Readers distinguish "absent" ([`ErrorKind::NotFound`]) from
//! any other failure: a read or list error is never taken for "nothing there".

mod local;
mod location;
mod remote;

pub use local::{create_dir_private, sync_dir};

pub use local::LocalStorage;
pub use location::{Location, S3Location, SftpLocation};
pub use remote::{RemoteStorage, RetryPolicy};

use std::sync::Arc;

use crate::error::Result;

/// Run `f` on every item with `jobs` threads, for storage requests that
/// are round trips (a remote) or wait on a disk. Memory is bounded by what
/// `jobs` calls hold at once. The first error stops the other threads from
/// taking more items and is returned.
pub fn for_each_concurrently<T: Sync>(
    items: &[T],
    jobs: usize,
    f: impl Fn(&T) -> Result<()> + Sync,
) -> Result<()> {
    let next = std::sync::Mutex::new(items.iter());
    let failed = std::sync::Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, items.len().max(1)) {
            s.spawn(|| {
                while failed.lock().unwrap().is_none() {
                    let Some(item) = next.lock().unwrap().next() else {
                        return;
                    };
                    if let Err(e) = f(item) {
                        failed.lock().unwrap().get_or_insert(e);
                        return;
                    }
                }
            });
        }
    });
    match failed.into_inner().unwrap() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The storage at `location`: a local directory, or a remote through OpenDAL.
pub fn open(location: &Location) -> Result<Arc<dyn Storage>> {
    Ok(match location {
        Location::Local(p) => Arc::new(LocalStorage::new(p)),
        remote => Arc::new(RemoteStorage::open(remote, &RetryPolicy::default())?),
    })
}

pub trait Storage: Send + Sync {
    /// The whole file at `path` (relative to the repository root).
    fn read(&self, path: &str) -> Result<Vec<u8>>;
    /// The whole file at `path` into `buf` (replacing its contents), so that
    /// a caller reading many files can reuse one buffer's memory.
    fn read_into(&self, path: &str, buf: &mut Vec<u8>) -> Result<()> {
        *buf = self.read(path)?;
        Ok(())
    }
    /// `len` bytes at `offset`; a short file is an error.
    fn read_at(&self, path: &str, offset: u64, len: usize) -> Result<Vec<u8>>;
    /// Like `read_at`, into `buf` (replacing its contents).
    fn read_at_into(&self, path: &str, offset: u64, len: usize, buf: &mut Vec<u8>) -> Result<()> {
        *buf = self.read_at(path, offset, len)?;
        Ok(())
    }
    fn size(&self, path: &str) -> Result<u64>;
    fn exists(&self, path: &str) -> Result<bool>;
    /// Write the concatenation of `parts` as `path`, atomically and durably.
    fn write_atomic(&self, path: &str, parts: &[&[u8]]) -> Result<()>;
    /// Like `write_atomic`, handing the parts over: a local write frees each
    /// part once it is written (not held through the fsync), a remote sends
    /// a single part without a copy.
    fn write_owned(&self, path: &str, parts: Vec<Vec<u8>>) -> Result<()> {
        let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
        self.write_atomic(path, &refs)
    }
    /// Names directly inside `dir`, files and directories (empty if `dir`
    /// does not exist).
    fn list(&self, dir: &str) -> Result<Vec<String>>;
    /// Paths (relative to `dir`) of every file under `dir`, recursively.
    fn list_files(&self, dir: &str) -> Result<Vec<String>>;
    fn remove(&self, path: &str) -> Result<()>;
    /// Remove temp files of interrupted writes (under `tmp/`) last modified
    /// longer than `older_than` ago; returns how many. Only under the
    /// exclusive lock (prune), so no write of a running process is cut.
    fn remove_stale_tmp(&self, older_than: std::time::Duration) -> Result<u64>;
    /// A directory on this machine (fsync, free-space checks apply).
    fn is_local(&self) -> bool;
}

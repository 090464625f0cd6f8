//! The write path: streams and directory trees into blobs, packs and one snapshot.
//!
//! Crash safety: packs are durable before their index rows are committed, and
//! the snapshot object is written only after every pack it needs is durable
//! and indexed. A run killed at any point leaves earlier snapshots intact;
//! packs it wrote are unreferenced leftovers that later runs may reuse.

use std::collections::HashSet;
use std::io::Read;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use crate::chunker::Chunker;
use crate::error::{Error, Result};
use crate::format::chunklist::{self, Content, LIST_MAX};
use crate::format::snapshot::{
    Entry, EntryKind, Failure, Snapshot, Stats, check_entry_name, check_tag,
};
use crate::format::tree::{Node, Tree};
use crate::format::{BlobId, ObjectType, SnapshotId};
use crate::index::Index;
use crate::pipeline::buffers::BufferPool;
use crate::pipeline::engine::{self, Done};
use crate::pipeline::walk::{self, TreeEvent};
use crate::pipeline::{Progress, workers};
use crate::repo::{Packer, Repo, now_rfc3339};

/// Chunk budget in flight (see [`engine::weight_of`]): one chunk of any size
/// per core and one more, or four times as many small files. Two per core kept
/// the cores no busier (dump, high-entropy and volume backups as fast) and
/// held two more chunks: on incompressible input each is stored whole, and
/// peak RSS reached 106 MiB (tests/memory.rs).
fn in_flight_units() -> usize {
    (workers() + 1) * engine::MAX_WEIGHT
}

/// The outcome of one chunk, as the workers report it.
pub struct ChunkDone {
    pub id: BlobId,
    pub len: u64,
    /// Bytes added to packs; 0 if the chunk was already stored.
    pub stored: u64,
}

/// One snapshot in the making: entries are added one by one, then committed.
pub struct BackupSession<'r> {
    repo: &'r Repo,
    progress: &'r dyn Progress,
    packer: Mutex<Packer>,
    /// Blobs claimed by this session whose packs are not indexed yet.
    pending: Mutex<HashSet<BlobId>>,
    /// Chunk buffers going back from workers to the reader, so that chunk-sized
    /// allocations are reused instead of churned through the allocator.
    buffers: BufferPool,
    /// While an entry is being backed up: the queue to the pack writer thread,
    /// which writes and fsyncs packs while the workers go on compressing.
    pack_tx: Mutex<Option<crossbeam_channel::Sender<crate::repo::PackBatch>>>,
    writer_error: Mutex<Option<Error>>,
    entries: Vec<Entry>,
    failed: Vec<Failure>,
    warnings: u64,
}

impl<'r> BackupSession<'r> {
    pub fn new(repo: &'r Repo, progress: &'r dyn Progress) -> Self {
        BackupSession {
            repo,
            progress,
            packer: Mutex::new(Packer::default()),
            pending: Mutex::new(HashSet::new()),
            pack_tx: Mutex::new(None),
            writer_error: Mutex::new(None),
            // chunk buffers of any size come back for reuse: compressible
            // dumps cut chunks well above the average (5.6 MiB on the pgbench
            // dump), and when only average-sized ones came back, every chunk
            // was a new buffer faulted in page by page (dump backup 1.09 ->
            // 0.95 s, sys 0.63 -> 0.45 s). One idle buffer per worker, and a
            // new one only when none is idle; idle buffers keep the pages of
            // the largest chunk they held, which the smaller budget in flight
            // (see in_flight_units) makes room for
            buffers: BufferPool::new(workers(), repo.config().chunker.max_size as usize),
            entries: Vec::new(),
            failed: Vec::new(),
            warnings: 0,
        }
    }

    pub fn warnings(&self) -> u64 {
        self.warnings
    }

    pub fn repo(&self) -> &'r Repo {
        self.repo
    }

    pub fn entry_mut(&mut self, name: &str) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|e| e.name == name)
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Drop entry `name` (a source that failed after its data was stored).
    /// Its chunks stay as unreferenced leftovers, as after a crash.
    pub fn discard(&mut self, name: &str) {
        self.entries.retain(|e| e.name != name);
    }

    /// Record a source that failed; the snapshot is then marked partial.
    pub fn record_failure(&mut self, name: &str, kind: &str, error: String) {
        self.failed.push(Failure {
            name: name.to_string(),
            kind: kind.to_string(),
            error,
        });
    }

    fn check_new_name(&self, name: &str) -> Result<()> {
        check_entry_name(name)?;
        if self.entries.iter().any(|e| e.name == name) {
            return Err(Error::usage(format!("entry {name:?} is given twice")));
        }
        Ok(())
    }

    /// True if this blob must be stored (nobody has it yet); claims it.
    fn claim(&self, index: &Index, id: &BlobId) -> Result<bool> {
        if self.pending.lock().unwrap().contains(id) || index.contains(id)? {
            return Ok(false);
        }
        Ok(self.pending.lock().unwrap().insert(*id))
    }

    fn add_sealed(
        &self,
        ty: ObjectType,
        id: BlobId,
        raw_len: usize,
        sealed: Vec<u8>,
    ) -> Result<u64> {
        let stored = sealed.len() as u64;
        let target = self.repo.config().pack_size as usize;
        let batch = self
            .packer
            .lock()
            .unwrap()
            .add(ty, id, raw_len as u32, sealed, target);
        if let Some(batch) = batch {
            self.submit(batch)?;
        }
        self.progress.stored(stored);
        Ok(stored)
    }

    /// Hand a full pack to the writer thread (or write it here when there is none).
    fn submit(&self, batch: crate::repo::PackBatch) -> Result<()> {
        let tx = self.pack_tx.lock().unwrap().clone();
        match tx {
            // the writer's own error is left for `with_writer` to return:
            // when two workers find it stopped, the one whose error reaches
            // the caller must not be the one that says only "stopped" (a
            // lost lease, exit 12, was reported as exit 1)
            Some(tx) => tx
                .send(batch)
                .map_err(|_| Error::other("the pack writer stopped")),
            None => self.write_batch(batch),
        }
    }

    /// Run `f` with a pack writer thread: a full pack is handed over only
    /// when the writer is ready for it (the worker holding it waits), so a
    /// backup holds at most three packs (being written, waiting, filling)
    /// and fsyncs overlap the compression work; a queue of one more pack
    /// made no backup faster and cost 8 MiB. Waits for every pack `f`
    /// produced to be durable.
    fn with_writer<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        std::thread::scope(|s| {
            let (tx, rx) = crossbeam_channel::bounded::<crate::repo::PackBatch>(0);
            *self.pack_tx.lock().unwrap() = Some(tx);
            let writer = s.spawn(move || {
                for batch in rx {
                    if let Err(e) = self.write_batch(batch) {
                        *self.writer_error.lock().unwrap() = Some(e);
                        return;
                    }
                }
            });
            let r = f();
            // dropping the last sender lets the writer drain the queue and stop
            *self.pack_tx.lock().unwrap() = None;
            writer.join().expect("pack writer panicked");
            if let Some(e) = self.writer_error.lock().unwrap().take() {
                return Err(e);
            }
            r
        })
    }

    fn write_batch(&self, batch: crate::repo::PackBatch) -> Result<()> {
        let flushed = batch.write(self.repo)?;
        let mut pending = self.pending.lock().unwrap();
        for id in &flushed.blobs {
            pending.remove(id);
        }
        Ok(())
    }

    /// Hash, deduplicate, compress and seal one data chunk (runs on a worker).
    fn store_chunk(&self, index: &Index, data: Vec<u8>) -> Result<ChunkDone> {
        let id = self.repo.keys().blob_id(&data);
        let len = data.len() as u64;
        let stored = if self.claim(index, &id)? {
            let sealed = self.repo.seal_blob(ObjectType::Data, &id, &data)?;
            self.add_sealed(ObjectType::Data, id, data.len(), sealed)?
        } else {
            self.progress.reused(len);
            0
        };
        self.progress.bytes(len);
        self.buffers.give_back(data);
        Ok(ChunkDone { id, len, stored })
    }

    /// Store a metadata blob (tree, chunk list) and return its id.
    fn store_meta(&self, index: &Index, ty: ObjectType, plaintext: &[u8]) -> Result<BlobId> {
        if plaintext.len() > crate::format::METADATA_CAP {
            // readers refuse larger objects; better to fail the backup than to
            // write a snapshot that cannot be restored
            return Err(Error::usage(format!(
                "a {} of {} bytes is larger than the format allows ({} bytes): a directory with too many entries?",
                ty.name(),
                plaintext.len(),
                crate::format::METADATA_CAP
            )));
        }
        let id = self.repo.keys().blob_id(plaintext);
        if self.claim(index, &id)? {
            let sealed = self.repo.seal_blob(ty, &id, plaintext)?;
            self.add_sealed(ty, id, plaintext.len(), sealed)?;
        }
        Ok(id)
    }

    /// Back up one byte stream as entry `name`. An empty stream is an error:
    /// a dump that printed nothing is not a backup.
    pub fn stream(
        &mut self,
        name: &str,
        input: &mut (dyn Read + Send),
        command: Option<Vec<String>>,
        meta: serde_json::Map<String, serde_json::Value>,
    ) -> Result<&Entry> {
        self.check_new_name(name)?;
        let started = now_rfc3339();
        let t0 = Instant::now();
        let index = self.repo.index_reader()?;
        let mut stats = Stats::default();
        let mut content = ContentBuilder::default();
        let params = self.repo.config().chunker;
        let seed = self.repo.keys().chunker_seed;
        let this = &*self;
        self.with_writer(|| {
            engine::run(
                workers(),
                in_flight_units(),
                move |em| {
                    let mut chunker = Chunker::new(params, seed);
                    loop {
                        let mut buf = this.buffers.take();
                        let more = chunker.next_chunk_into(input, &mut buf).map_err(|e| {
                            Error::other(format!("reading the input of {name}: {e}")).with_source(e)
                        })?;
                        if !more {
                            return Ok(());
                        }
                        let weight = engine::weight_of(buf.len());
                        em.work_weighted(buf, weight)?;
                    }
                },
                || this.repo.index_reader(),
                |index, data: Vec<u8>| this.store_chunk(index, data),
                |done: Done<ChunkDone, ()>| {
                    if let Done::Output(c) = done {
                        stats.add_chunk(&c);
                        content.push(this, &index, c.id)?;
                    }
                    Ok(())
                },
            )
        })
        .map_err(|e| e.context(format!("backing up {name}")))?;
        if stats.bytes_read == 0 {
            return Err(Error::new(
                crate::ErrorKind::CommandFailed,
                format!("{name}: the input is empty; no snapshot was made"),
            )
            .with_hint(
                "a dump that prints nothing is not a backup: check the command or the input",
            ));
        }
        let content = content.finish(self, &index)?;
        stats.duration_ms = t0.elapsed().as_millis() as u64;
        self.entries.push(Entry {
            name: name.to_string(),
            kind: EntryKind::Stream,
            size: stats.bytes_read,
            chunks: content.chunks,
            lists: content.lists,
            tree: None,
            root: None,
            path: None,
            parent: None,
            command,
            started,
            finished: now_rfc3339(),
            stats,
            meta,
        });
        Ok(self.entries.last().unwrap())
    }

    /// Back up the directory (or single file) at `path` as entry `name`. Files
    /// whose size, mtime, ctime and inode match the `parent` snapshot's entry of
    /// the same name are taken from it without being read.
    pub fn tree(
        &mut self,
        name: &str,
        path: &Path,
        parent: Option<(SnapshotId, &Entry)>,
    ) -> Result<&Entry> {
        self.check_new_name(name)?;
        let started = now_rfc3339();
        let t0 = Instant::now();
        let path = normalize_root(path)?;
        // the root itself is followed if it is a symlink: `backup /srv/current`
        // means the directory it points to
        let md = std::fs::metadata(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::not_found(format!("{} does not exist", path.display()))
            } else {
                Error::io("reading", &path, e)
            }
        })?;
        let is_dir = md.is_dir();
        let parent_tree = parent.as_ref().and_then(|(_, e)| e.tree).filter(|_| is_dir);
        let index = self.repo.index_reader()?;
        let mut stats = Stats::default();
        let mut builder = walk::TreeBuilder::default();
        let mut warnings = 0u64;
        let params = self.repo.config().chunker;
        let seed = self.repo.keys().chunker_seed;
        let this = &*self;
        let repo = self.repo;
        let progress = self.progress;
        let walk_path = path.clone();
        self.with_writer(|| {
            engine::run(
                workers(),
                in_flight_units(),
                move |em| {
                    let mut walker = walk::Walker::new(
                        repo,
                        Chunker::new(params, seed),
                        progress,
                        &this.buffers,
                    )?;
                    walker.walk_root(&walk_path, parent_tree, em)
                },
                || this.repo.index_reader(),
                |index, data: Vec<u8>| this.store_chunk(index, data),
                |done: Done<ChunkDone, TreeEvent>| match done {
                    Done::Output(c) => {
                        stats.add_chunk(&c);
                        builder.chunk(c.id, c.len, &mut |ids| store_list(this, &index, ids))
                    }
                    Done::Event(TreeEvent::Warning(w)) => {
                        warnings += 1;
                        progress.warn(&w);
                        Ok(())
                    }
                    Done::Event(ev) => builder.event(
                        ev,
                        &mut stats,
                        &mut |ty, bytes| this.store_meta(&index, ty, bytes),
                        &mut |ids| store_list(this, &index, ids),
                    ),
                },
            )
        })
        .map_err(|e| e.context(format!("backing up {name}")))?;
        self.warnings += warnings;
        let (root, tree_id, size) = builder.finish()?;
        stats.duration_ms = t0.elapsed().as_millis() as u64;
        self.entries.push(Entry {
            name: name.to_string(),
            kind: EntryKind::Tree,
            size,
            chunks: Vec::new(),
            lists: Vec::new(),
            tree: Some(tree_id),
            root: if is_dir { Some(root) } else { None },
            path: Some(crate::format::tree::RawName::from_os(path.as_os_str())),
            parent: parent.map(|(id, _)| id),
            command: None,
            started,
            finished: now_rfc3339(),
            stats,
            meta: serde_json::Map::new(),
        });
        Ok(self.entries.last().unwrap())
    }

    /// Make everything durable, then write the snapshot. Returns its id.
    pub fn commit(self, tags: Vec<String>, host: Option<String>) -> Result<(SnapshotId, Snapshot)> {
        for t in &tags {
            check_tag(t)?;
        }
        if self.entries.is_empty() {
            return Err(Error::usage("nothing to back up"));
        }
        let batch = self.packer.lock().unwrap().take();
        if let Some(batch) = batch {
            self.write_batch(batch)?;
        }
        let snap = Snapshot {
            version: 1,
            time: now_rfc3339(),
            host: host.unwrap_or_else(crate::repo::host_name),
            user: crate::repo::user_name(),
            tags,
            program: format!("coffre {}", env!("CARGO_PKG_VERSION")),
            entries: self.entries,
            partial: !self.failed.is_empty(),
            failed: self.failed,
        };
        let id = self.repo.write_snapshot(&snap)?;
        Ok((id, snap))
    }
}

fn store_list(session: &BackupSession<'_>, index: &Index, ids: &[BlobId]) -> Result<BlobId> {
    session.store_meta(index, ObjectType::ChunkList, &chunklist::encode(ids))
}

impl Stats {
    fn add_chunk(&mut self, c: &ChunkDone) {
        self.bytes_read += c.len;
        if c.stored > 0 {
            self.chunks_new += 1;
            self.bytes_new += c.len;
            self.bytes_stored += c.stored;
        } else {
            self.chunks_reused += 1;
        }
    }
}

/// Builds a [`Content`]: inline while short, chunk-list blobs once long.
#[derive(Default)]
pub struct ContentBuilder {
    chunks: Vec<BlobId>,
    lists: Vec<BlobId>,
}

impl ContentBuilder {
    fn push(&mut self, session: &BackupSession<'_>, index: &Index, id: BlobId) -> Result<()> {
        self.push_with(id, &mut |ids| store_list(session, index, ids))
    }

    pub fn push_with(
        &mut self,
        id: BlobId,
        store: &mut dyn FnMut(&[BlobId]) -> Result<BlobId>,
    ) -> Result<()> {
        self.chunks.push(id);
        if self.chunks.len() == LIST_MAX {
            self.lists.push(store(&self.chunks)?);
            self.chunks.clear();
        }
        Ok(())
    }

    fn finish(self, session: &BackupSession<'_>, index: &Index) -> Result<Content> {
        self.finish_with(&mut |ids| store_list(session, index, ids))
    }

    pub fn finish_with(
        mut self,
        store: &mut dyn FnMut(&[BlobId]) -> Result<BlobId>,
    ) -> Result<Content> {
        if self.lists.is_empty() {
            return Ok(Content {
                chunks: self.chunks,
                lists: Vec::new(),
            });
        }
        if !self.chunks.is_empty() {
            self.lists.push(store(&self.chunks)?);
        }
        Ok(Content {
            chunks: Vec::new(),
            lists: self.lists,
        })
    }
}

/// The absolute form of a backup root, without `.` parts or a trailing slash,
/// so that `/data` and `/data/` find the same parent snapshot.
pub fn normalize_root(path: &Path) -> Result<std::path::PathBuf> {
    let abs = std::path::absolute(path).map_err(|e| Error::io("resolving", path, e))?;
    Ok(abs.components().collect())
}

/// Used by the tree builder to store a finished directory.
pub fn encode_tree(nodes: Vec<Node>) -> Vec<u8> {
    Tree { nodes }.encode()
}

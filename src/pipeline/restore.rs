//! The read path: a stream entry to a writer, a tree entry to a directory.
//! Every chunk is authenticated and re-hashed before a byte of it is written.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crossbeam_channel::{Receiver, Sender};

use crate::error::{Error, Result};
use crate::format::chunklist::{self, Content};
use crate::format::tree::{Node, NodeKind, Tree};
use crate::format::{BlobId, ObjectType};
use crate::index::{BlobLocation, Index};
use crate::pipeline::buffers::BufferPool;
use crate::pipeline::engine::{self, Done, Emitter, MAX_WEIGHT};
use crate::pipeline::{Progress, workers};
use crate::repo::Repo;

#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    /// Allow restoring into a non-empty directory, replacing what is in the way.
    pub overwrite: bool,
}

/// A chunk to read, and for tree restores where its bytes go.
struct Work {
    id: BlobId,
    loc: BlobLocation,
    dest: Option<(Arc<Dest>, u64)>,
}

/// What a tree restore's workers do: write a chunk into its file, or wait
/// for an empty file to be created (so that its metadata is applied after).
enum TreeWork {
    Chunk(Work),
    Empty(Arc<Dest>),
}

impl From<Work> for TreeWork {
    fn from(w: Work) -> TreeWork {
        TreeWork::Chunk(w)
    }
}

/// A restored file: created by a creator thread (see [`create_files`]), or
/// by the worker that needs it first, then filled by the workers, each chunk
/// at its offset.
struct Dest {
    path: PathBuf,
    /// The open file or why it could not be made: set once, by whichever
    /// thread gets there first, while the others wait.
    created: OnceLock<Result<File>>,
}

impl Dest {
    fn new(path: PathBuf) -> Arc<Dest> {
        Arc::new(Dest {
            path,
            created: OnceLock::new(),
        })
    }

    /// The file: created now unless another thread has made it or is
    /// making it (then waited for).
    fn file(&self, to: &Target<'_>) -> Result<&File> {
        let created = self.created.get_or_init(|| to.create_file(&self.path));
        created.as_ref().map_err(|e| {
            let copy = Error::new(e.kind(), e.message());
            match e.hint() {
                Some(h) => copy.with_hint(h),
                None => copy,
            }
        })
    }
}

/// Files handed to the creators at once: a directory's files, up to this
/// many, so that each creator works in a directory of its own.
const FILES_PER_BATCH: usize = 32;

/// Chunks in flight per worker: enough to keep workers busy while the
/// consumer writes, few enough to bound memory (chunks are at most 8 MiB).
const IN_FLIGHT_PER_WORKER: usize = 3;

/// Chunks read at once, and large chunks in flight (read, waiting for their
/// turn to be written; [`MAX_WEIGHT`] tokens each): one reader per core on a
/// local disk; on a remote, where every read is a round trip, four or
/// `COFFRE_REMOTE_READERS` (memory: chunks in flight × chunk size).
fn parallelism(repo: &Repo) -> (usize, usize) {
    let cores = workers();
    if repo.storage().is_local() {
        (cores, cores * IN_FLIGHT_PER_WORKER)
    } else {
        let readers = std::env::var("COFFRE_REMOTE_READERS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(4usize)
            .clamp(1, 64);
        (readers, readers + cores)
    }
}

/// Emit the chunks of `content` in order, resolving chunk lists.
fn emit_content<W: From<Work>, E>(
    repo: &Repo,
    index: &Index,
    content: &Content,
    dest: Option<&Arc<Dest>>,
    em: &mut Emitter<'_, W, E>,
) -> Result<()> {
    let mut offset = 0u64;
    let mut one = |id: &BlobId, em: &mut Emitter<'_, W, E>| -> Result<()> {
        let loc = index.lookup(id)?.ok_or_else(|| {
            Error::corrupt(format!("data chunk {id} is not in the repository"))
                .with_hint("the repository is damaged; this entry cannot be restored completely")
        })?;
        let len = loc.raw_length as u64;
        // in a tree, small chunks (small files) hold less of the in-flight
        // budget, so a worker does not sit idle behind a large one (a
        // 2,000-file volume restores 8 % faster into tmpfs); a stream's chunks
        // are large, and more of them in flight only cost memory
        let weight = match dest {
            Some(_) => engine::weight_of(len as usize),
            None => MAX_WEIGHT,
        };
        em.work_weighted(
            Work {
                id: *id,
                loc,
                dest: dest.map(|d| (d.clone(), offset)),
            }
            .into(),
            weight,
        )?;
        offset += len;
        Ok(())
    };
    for id in &content.chunks {
        one(id, em)?;
    }
    for list in &content.lists {
        let ids = chunklist::decode(&repo.read_blob(index, ObjectType::ChunkList, list)?)
            .map_err(|e| e.context(format!("chunk list {list}")))?;
        for id in &ids {
            one(id, em)?;
        }
    }
    Ok(())
}

/// Restored chunks' buffers, handed back by the consumer once written.
struct Buffers(BufferPool);

impl Buffers {
    fn new(repo: &Repo) -> Buffers {
        // as many as can be in flight, so that steady state allocates nothing
        let max_chunk = repo.config().chunker.max_size as usize;
        Buffers(BufferPool::new(parallelism(repo).1 + 1, max_chunk).fresh_capacity(max_chunk))
    }
    fn read_chunk(&self, repo: &Repo, w: &Work) -> Result<Vec<u8>> {
        let mut buf = self.0.take();
        repo.read_blob_at_into(ObjectType::Data, &w.id, &w.loc, &mut buf)?;
        Ok(buf)
    }
    /// Read a chunk and write it at its place in its file (tree restores:
    /// the workers write in parallel). Returns the bytes written.
    fn write_chunk(&self, repo: &Repo, to: &Target<'_>, w: Work) -> Result<u64> {
        use std::os::unix::fs::FileExt;
        let buf = self.read_chunk(repo, &w)?;
        let (dest, offset) = w.dest.as_ref().expect("tree chunks have a destination");
        dest.file(to)?
            .write_all_at(&buf, *offset)
            .map_err(|e| Error::io("writing", &dest.path, e))?;
        let n = buf.len() as u64;
        self.give_back(buf);
        Ok(n)
    }
    fn give_back(&self, buf: Vec<u8>) {
        self.0.give_back(buf)
    }
}

/// Write the stream `content` to `out`, verified chunk by chunk. Returns bytes written.
pub fn restore_stream(
    repo: &Repo,
    content: &Content,
    out: &mut dyn Write,
    progress: &dyn Progress,
) -> Result<u64> {
    content.check()?;
    let mut written = 0u64;
    let buffers = Buffers::new(repo);
    let (readers, chunks) = parallelism(repo);
    engine::run(
        readers,
        chunks * MAX_WEIGHT,
        |em| {
            let index = repo.index_reader()?;
            emit_content::<Work, ()>(repo, &index, content, None, em)
        },
        || Ok(()),
        |_, w| buffers.read_chunk(repo, &w),
        |done: Done<Vec<u8>, ()>| {
            if let Done::Output(data) = done {
                out.write_all(&data).map_err(|e| {
                    Error::other(format!("writing the restored stream: {e}")).with_source(e)
                })?;
                written += data.len() as u64;
                progress.bytes(data.len() as u64);
                buffers.give_back(data);
            }
            Ok(())
        },
    )?;
    out.flush()
        .map_err(|e| Error::other(format!("writing the restored stream: {e}")).with_source(e))?;
    Ok(written)
}

/// What the consumer does, in order, once the workers are done with it.
enum Ev {
    /// All of a directory's entries are restored: apply its metadata.
    DirDone(PathBuf, Node),
    /// All of a file's chunks are written: apply its metadata.
    FileDone(PathBuf, Node),
    /// A symlink or fifo to create.
    Leaf(PathBuf, Node),
}

/// Where a tree is restored to.
struct Target<'a> {
    root: &'a Path,
    overwrite: bool,
    /// Files created but not yet complete. Workers fill files out of order,
    /// so a failed restore removes these rather than leave files with holes
    /// that look whole.
    incomplete: std::sync::Mutex<std::collections::HashSet<PathBuf>>,
}

impl Target<'_> {
    fn make_dir(&self, rel: &Path) -> Result<()> {
        let p = self.root.join(rel);
        if self.overwrite {
            clear_way(&p, true)?;
        }
        match fs::create_dir(&p) {
            Ok(()) => {}
            Err(e) if self.overwrite && e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io("creating", &p, e)),
        }
        fs::set_permissions(&p, fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io("setting the mode of", &p, e))
    }

    /// Create the file at `path` (absolute, under the root), empty.
    fn create_file(&self, path: &Path) -> Result<File> {
        if self.overwrite {
            clear_way(path, false)?;
        }
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| Error::io("creating", path, e))?;
        self.incomplete.lock().unwrap().insert(path.to_owned());
        Ok(file)
    }

    /// Create the symlink or fifo `node` at `rel`; returns its path.
    fn make_leaf(&self, rel: &Path, node: &Node) -> Result<PathBuf> {
        let p = self.root.join(rel);
        if self.overwrite {
            clear_way(&p, false)?;
        }
        match node.kind {
            NodeKind::Symlink => {
                std::os::unix::fs::symlink(node.target.as_ref().unwrap().as_os(), &p)
                    .map_err(|e| Error::io("creating symlink", &p, e))?;
            }
            NodeKind::Fifo => {
                let c =
                    std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str()))
                        .map_err(|_| Error::usage("path contains NUL"))?;
                // SAFETY: c is a valid NUL-terminated path.
                if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
                    return Err(Error::io(
                        "creating fifo",
                        &p,
                        std::io::Error::last_os_error(),
                    ));
                }
            }
            _ => unreachable!("leaves are symlinks and fifos"),
        }
        Ok(p)
    }
}

/// A creator thread: creates the files of each batch in turn. Files are
/// created off the producer, a directory per thread, because creating can
/// cost more than filling: a create on a network file system is a round
/// trip, and ext4 without a journal scans past every recently deleted inode
/// (2,000 small files restored just after others were deleted: 1.3 s on one
/// thread, 0.8 s on two). Creates in one directory serialize on its lock,
/// hence batches of one directory's files.
fn create_files(to: &Target<'_>, batches: Receiver<Vec<Arc<Dest>>>) {
    for batch in batches {
        for dest in batch {
            // a failure is reported by the workers that need the file
            let _ = dest.file(to);
        }
    }
}

/// The files of `nodes[from..]` (up to [`FILES_PER_BATCH`]), handed to the
/// creators; returns them and where the next batch starts.
fn send_batch(
    to: &Target<'_>,
    rel: &Path,
    nodes: &[Option<Node>],
    from: usize,
    creators: &Sender<Vec<Arc<Dest>>>,
) -> Result<(VecDeque<Arc<Dest>>, usize)> {
    let mut batch = Vec::new();
    let mut next = from;
    while next < nodes.len() && batch.len() < FILES_PER_BATCH {
        if let Some(node) = &nodes[next]
            && node.kind == NodeKind::File
        {
            batch.push(Dest::new(to.root.join(rel.join(node.name.as_os()))));
        }
        next += 1;
    }
    creators
        .send(batch.clone())
        .map_err(|_| Error::other("stopped"))?;
    Ok((batch.into(), next))
}

/// Producer of a tree restore: creates directories as it walks, has the
/// creators make files ahead of it (so workers can write chunks straight
/// into them), and tells the consumer when each is complete.
fn walk_tree(
    repo: &Repo,
    index: &Index,
    to: &Target<'_>,
    creators: &Sender<Vec<Arc<Dest>>>,
    rel: &Path,
    tree_id: &BlobId,
    em: &mut Emitter<'_, TreeWork, Ev>,
) -> Result<()> {
    let tree = Tree::decode(&repo.read_blob(index, ObjectType::Tree, tree_id)?)
        .map_err(|e| e.context(format!("tree {tree_id}")))?;
    let mut nodes: Vec<Option<Node>> = tree.nodes.into_iter().map(Some).collect();
    // files sent to the creators, in order, and where the next batch starts
    let mut created = VecDeque::new();
    let mut batch_from = 0;
    for i in 0..nodes.len() {
        if nodes[i].as_ref().unwrap().kind == NodeKind::File && created.is_empty() {
            (created, batch_from) = send_batch(to, rel, &nodes, batch_from, creators)?;
        }
        let node = nodes[i].take().unwrap();
        let path = rel.join(node.name.as_os());
        match node.kind {
            NodeKind::Dir => {
                to.make_dir(&path)?;
                walk_tree(
                    repo,
                    index,
                    to,
                    creators,
                    &path,
                    node.subtree.as_ref().unwrap(),
                    em,
                )?;
                em.event(Ev::DirDone(path, node))?;
            }
            NodeKind::File => {
                let dest = created.pop_front().expect("a file's batch was sent");
                let content = node.content();
                if content.chunks.is_empty() && content.lists.is_empty() {
                    em.work(TreeWork::Empty(dest))?;
                } else {
                    emit_content(repo, index, &content, Some(&dest), em)?;
                }
                em.event(Ev::FileDone(path, node))?;
            }
            NodeKind::Symlink | NodeKind::Fifo => em.event(Ev::Leaf(path, node))?,
        }
    }
    Ok(())
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Apply owner (when root), mode and mtime to a restored node.
fn apply_metadata(path: &Path, node: &Node) -> Result<()> {
    if is_root() {
        std::os::unix::fs::lchown(path, Some(node.uid), Some(node.gid))
            .map_err(|e| Error::io("setting the owner of", path, e))?;
    }
    let mtime = filetime::FileTime::from_unix_time(
        node.mtime_ns.div_euclid(1_000_000_000),
        node.mtime_ns.rem_euclid(1_000_000_000) as u32,
    );
    // lutimes for symlinks (their own times) and fifos (opening one to set
    // its times would block until a writer appears)
    if node.kind == NodeKind::Fifo {
        fs::set_permissions(path, fs::Permissions::from_mode(node.mode))
            .map_err(|e| Error::io("setting the mode of", path, e))?;
    }
    if matches!(node.kind, NodeKind::Symlink | NodeKind::Fifo) {
        filetime::set_symlink_file_times(path, mtime, mtime)
            .map_err(|e| Error::io("setting times of", path, e))?;
        return Ok(());
    }
    fs::set_permissions(path, fs::Permissions::from_mode(node.mode))
        .map_err(|e| Error::io("setting the mode of", path, e))?;
    filetime::set_file_times(path, mtime, mtime)
        .map_err(|e| Error::io("setting times of", path, e))?;
    Ok(())
}

/// Make room for a new entry at `path` when overwriting.
fn clear_way(path: &Path, want_dir: bool) -> Result<()> {
    match fs::symlink_metadata(path) {
        Err(_) => Ok(()),
        Ok(md) if md.is_dir() && want_dir => Ok(()),
        Ok(md) if md.is_dir() => {
            fs::remove_dir_all(path).map_err(|e| Error::io("removing", path, e))
        }
        Ok(_) => fs::remove_file(path).map_err(|e| Error::io("removing", path, e)),
    }
}

/// Restore the tree `tree_id` into `target` (created if missing). `root` is
/// the metadata of the backed-up directory itself, applied to `target`.
pub fn restore_tree(
    repo: &Repo,
    tree_id: &BlobId,
    root: Option<&Node>,
    target: &Path,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<u64> {
    if target.exists() {
        let md = fs::symlink_metadata(target).map_err(|e| Error::io("inspecting", target, e))?;
        if !md.is_dir() {
            return Err(Error::usage(format!(
                "restore target {} exists and is not a directory",
                target.display()
            )));
        }
        let empty = fs::read_dir(target)
            .map_err(|e| Error::io("reading", target, e))?
            .next()
            .is_none();
        if !empty && !opts.overwrite {
            return Err(Error::usage(format!("restore target {} is not empty", target.display()))
                .with_hint("restore into a new directory, or pass --overwrite to replace what is there"));
        }
    } else {
        crate::storage::create_dir_private(target).map_err(|e| Error::io("creating", target, e))?;
    }
    let mut written = 0u64;
    let target_state = Target {
        root: target,
        overwrite: opts.overwrite,
        incomplete: Default::default(),
    };
    let to = &target_state;
    let buffers = Buffers::new(repo);
    let (readers, chunks) = parallelism(repo);
    let (batch_tx, batch_rx) = crossbeam_channel::unbounded();
    // the scope ends only when the creators are done, so a failed restore
    // removes every file they made
    let result = std::thread::scope(|s| {
        for _ in 0..workers() {
            let batches = batch_rx.clone();
            s.spawn(move || create_files(to, batches));
        }
        drop(batch_rx);
        engine::run(
            readers,
            chunks * MAX_WEIGHT,
            // the producer owns the creators' queue: they stop when it is done
            move |em| {
                let index = repo.index_reader()?;
                walk_tree(repo, &index, to, &batch_tx, Path::new(""), tree_id, em)
            },
            || Ok(()),
            |_, w| match w {
                TreeWork::Chunk(w) => buffers.write_chunk(repo, to, w),
                TreeWork::Empty(dest) => dest.file(to).map(|_| 0),
            },
            |done: Done<u64, Ev>| {
                match done {
                    Done::Output(n) => {
                        written += n;
                        progress.bytes(n);
                    }
                    Done::Event(Ev::DirDone(rel, node)) => {
                        apply_metadata(&target.join(&rel), &node)?;
                        progress.item(&rel.to_string_lossy());
                    }
                    Done::Event(Ev::FileDone(rel, node)) => {
                        let p = target.join(&rel);
                        to.incomplete.lock().unwrap().remove(&p);
                        apply_metadata(&p, &node)?;
                    }
                    Done::Event(Ev::Leaf(rel, node)) => {
                        let p = to.make_leaf(&rel, &node)?;
                        apply_metadata(&p, &node)?;
                    }
                }
                Ok(())
            },
        )
    });
    if let Err(e) = result {
        for p in to.incomplete.lock().unwrap().drain() {
            let _ = fs::remove_file(&p);
        }
        return Err(e);
    }
    if let Some(root) = root {
        apply_metadata(target, root)?;
    }
    Ok(written)
}

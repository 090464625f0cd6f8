//! Opening, creating and reading a repository (format-spec/layout.md).

pub mod lock;
mod packer;

pub use packer::{FlushedPack, PackBatch, Packer};

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use zeroize::Zeroizing;

use crate::crypto::{KdfParams, Keys, MasterKey};
use crate::error::{Error, ErrorKind, Result};
use crate::format::config::{self, ChunkerParams, RepoConfig};
use crate::format::envelope::{self, Binding, ObjectType};
use crate::format::keyfile::KeyFile;
use crate::format::snapshot::Snapshot;
use crate::format::{BlobId, METADATA_CAP, PackId, RepoId, SnapshotId};
use crate::format::{label, pack};
use crate::index::{BlobLocation, Index};
use crate::storage::{Location, Storage};

pub const CONFIG: &str = "config";
pub const KEYS: &str = "keys";
pub const PACKS: &str = "packs";
pub const SNAPSHOTS: &str = "snapshots";
pub use lock::LOCKS;
pub const INDEX_DIR: &str = "index";
const INDEX_NAME: &str = "index.sqlite";

pub fn pack_path(id: &PackId) -> String {
    let h = id.to_hex();
    format!("{PACKS}/{}/{h}", &h[..2])
}

pub fn snapshot_path(id: &SnapshotId) -> String {
    format!("{SNAPSHOTS}/{}", id.to_hex())
}

/// An exclusive advisory lock (flock) held while a process opens the index.
struct OpenLock {
    _file: std::fs::File,
}

impl OpenLock {
    fn acquire(path: &Path) -> Result<OpenLock> {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::OpenOptionsExt;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| Error::io("opening", path, e))?;
        // SAFETY: flock on a file descriptor we own; released when it closes.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(Error::io("locking", path, std::io::Error::last_os_error()));
        }
        Ok(OpenLock { _file: f })
    }
}

/// An SQLite database file and its WAL and shared-memory files.
fn sqlite_files(db: &Path) -> [PathBuf; 3] {
    let with = |suffix: &str| {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        PathBuf::from(p)
    };
    [db.to_path_buf(), with("-wal"), with("-shm")]
}

fn remove_if_present(p: &Path) -> Result<()> {
    match std::fs::remove_file(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("removing", p, e)),
        _ => Ok(()),
    }
}

/// The storage at `location` if a repository can be created there: it
/// holds none and is empty (or absent).
pub fn check_can_init(location: &Location) -> Result<std::sync::Arc<dyn Storage>> {
    let storage = crate::storage::open(location)?;
    if storage.exists(CONFIG)? {
        return Err(Error::usage(format!(
            "{location} already holds a coffre repository"
        )));
    }
    if !storage.list("")?.is_empty() {
        return Err(Error::usage(format!("{location} exists and is not empty"))
            .with_hint("choose a new or empty place for the repository"));
    }
    Ok(storage)
}

/// A password, wiped from memory when dropped.
pub type Password = Zeroizing<String>;

/// Settings chosen at `init` time.
#[derive(Clone, Debug)]
pub struct InitOptions {
    pub kdf_memory_kib: u32,
    pub kdf_iterations: u32,
    pub kdf_parallelism: u32,
    pub chunker: ChunkerParams,
    pub zstd_level: i32,
    pub pack_size: u32,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            kdf_memory_kib: 64 * 1024,
            kdf_iterations: 3,
            kdf_parallelism: 4,
            chunker: ChunkerParams::DEFAULT,
            // level 2 beats 3 on dumps in both speed and size with 1 MiB chunks
            // (measured with `zstd -b -B1048576`: pgbench 2350 vs 2260 MB/s,
            // x87.0 vs x86.8; high-entropy 264 vs 159 MB/s, x2.24 vs x2.20)
            zstd_level: 2,
            pack_size: 8 << 20,
        }
    }
}

/// An open repository: its keys, its parameters and its index.
pub struct Repo {
    location: Location,
    /// Where the SQLite index lives: `index/` inside a local repository,
    /// a per-repository cache directory for a remote one.
    index_dir: PathBuf,
    storage: std::sync::Arc<dyn Storage>,
    repo_id: RepoId,
    keys: Keys,
    /// Kept for `key add`; zeroized on drop.
    master: MasterKey,
    config: RepoConfig,
    key_id: String,
    index: Mutex<Index>,
    /// The lock this process holds on the repository, if any.
    lock: Mutex<Option<lock::RepoLock>>,
    /// Verify every sealed chunk (see `seal_blob`).
    verify_all: std::sync::atomic::AtomicBool,
}

fn no_repo(location: &Location) -> Error {
    Error::new(
        ErrorKind::NoRepository,
        format!("no coffre repository at {location}"),
    )
    .with_hint(format!(
        "create one with `coffre init --repo {location}`, or check --repo / COFFRE_REPO"
    ))
}

/// Where the indexes of remote repositories are kept: `COFFRE_CACHE_DIR`,
/// else `$XDG_CACHE_HOME/coffre`, else `~/.cache/coffre`.
pub fn cache_root() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("COFFRE_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("coffre"));
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(h) => Ok(PathBuf::from(h).join(".cache").join("coffre")),
        None => Err(
            Error::usage("no place for the local index of a remote repository")
                .with_hint("set COFFRE_CACHE_DIR (or HOME)"),
        ),
    }
}

pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    label::clean(&String::from_utf8_lossy(&buf[..end]), label::MAX_LABEL)
}

pub fn user_name() -> String {
    let name = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| format!("uid{}", unsafe { libc::getuid() }));
    // written into lock and key files, which readers check (label.rs)
    label::clean(&name, label::MAX_LABEL)
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

impl Repo {
    /// Create a repository at `location`, which must not exist or be empty.
    pub fn init(location: &Location, password: &str, opts: &InitOptions) -> Result<RepoId> {
        let storage = check_can_init(location)?;
        if password.is_empty() {
            return Err(
                Error::usage("the password is empty").with_hint("choose a non-empty password")
            );
        }
        let repo_id = RepoId(crate::crypto::random_array());
        let master = MasterKey::generate();
        // everything is checked before anything is created
        let kdf = KdfParams::new(
            opts.kdf_memory_kib,
            opts.kdf_iterations,
            opts.kdf_parallelism,
        )?;
        let config = RepoConfig {
            chunker: opts.chunker,
            zstd_level: opts.zstd_level,
            pack_size: opts.pack_size,
            created: now_rfc3339(),
        };
        config
            .check()
            .map_err(|e| Error::usage(e.message().to_string()))?;
        let kf = KeyFile::create(
            &repo_id,
            &master,
            password.as_bytes(),
            kdf,
            &host_name(),
            &user_name(),
            None,
        )?;
        if let Some(root) = location.local_path() {
            for dir in ["", KEYS, PACKS, SNAPSHOTS, INDEX_DIR, "tmp"] {
                crate::storage::create_dir_private(&root.join(dir))
                    .map_err(|e| Error::io("creating", root, e))?;
            }
        }
        storage.write_atomic(&format!("{KEYS}/{}", kf.id), &[&kf.to_bytes()])?;
        let keys = Keys::derive(&master);
        // the config is written last: a repository without one is not a repository
        storage.write_atomic(
            CONFIG,
            &[&config::encode(&keys.encryption, &repo_id, &config, None)],
        )?;
        Ok(repo_id)
    }

    /// Read the repository id without a password (fails if there is no repository).
    fn peek_id(storage: &dyn Storage, location: &Location) -> Result<RepoId> {
        let bytes = match storage.read(CONFIG) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(no_repo(location)),
            Err(e) => return Err(e),
        };
        config::read_header(&bytes).map_err(|e| e.context(format!("{location}: config")))
    }

    /// Open the repository at `location`. `password` is only called once we
    /// know a repository is there.
    pub fn open(location: &Location, password: impl FnOnce() -> Result<Password>) -> Result<Repo> {
        Self::open_with(location, password, false, true)
    }

    /// Open the repository and take a lock on it (see [`Repo::lock`]). A
    /// remote's cached index catches up with its packs once, under the lock.
    pub fn open_locked(
        location: &Location,
        password: impl FnOnce() -> Result<Password>,
        exclusive: bool,
        command: &str,
        wait: std::time::Duration,
    ) -> Result<Repo> {
        let repo = Self::open_with(location, password, false, false)?;
        repo.lock(exclusive, command, wait)?;
        Ok(repo)
    }

    fn index_file(&self) -> PathBuf {
        self.index_dir.join(INDEX_NAME)
    }

    /// Open the repository with a new index built from its packs and
    /// snapshot objects (`coffre repair index`), under the exclusive lock.
    /// The new index is built beside the old one, which stays in place
    /// until the new one is complete.
    pub fn open_rebuilding_index(
        location: &Location,
        password: impl FnOnce() -> Result<Password>,
        lock_wait: std::time::Duration,
    ) -> Result<Repo> {
        // the keys must open before anything is touched
        let unlocked = Self::open_with(location, password, true, false)?;
        let storage = unlocked.storage.clone();
        let lock = lock::RepoLock::acquire(storage, true, "repair index", lock_wait)?;
        let index_path = unlocked.index_file();
        let fresh = unlocked.index_dir.join("index.rebuild.sqlite");
        for f in sqlite_files(&fresh) {
            remove_if_present(&f)?;
        }
        let (index, _) = Index::open(&fresh, &unlocked.repo_id)?;
        let repo = Repo {
            index: Mutex::new(index),
            lock: Mutex::new(Some(lock)),
            ..unlocked
        };
        repo.rebuild_packs()?;
        repo.sync_snapshots()?;
        repo.index().mark_complete()?;
        // close it (checkpointing its WAL), drop the old index's WAL and
        // shared memory so they are never applied to the new file, then
        // put the new file in place
        drop(std::mem::replace(
            &mut *repo.index(),
            Index::in_memory(&repo.repo_id)?,
        ));
        for f in sqlite_files(&index_path).into_iter().skip(1) {
            remove_if_present(&f)?;
        }
        std::fs::rename(&fresh, &index_path).map_err(|e| Error::io("replacing", &index_path, e))?;
        crate::storage::sync_dir(&repo.index_dir)
            .map_err(|e| Error::io("syncing", &index_path, e))?;
        *repo.index() = Index::open(&index_path, &repo.repo_id)?.0;
        Ok(repo)
    }

    /// `skip_index`: open an in-memory placeholder instead of the index
    /// (the caller builds a new one). `catch_up`: bring a remote's cached
    /// index in line with its packs now (else the caller locks, which does).
    fn open_with(
        location: &Location,
        password: impl FnOnce() -> Result<Password>,
        skip_index: bool,
        catch_up: bool,
    ) -> Result<Repo> {
        let storage = crate::storage::open(location)?;
        let repo_id = Self::peek_id(storage.as_ref(), location)?;
        let password = password()?;
        let mut key_files = Vec::new();
        for name in storage.list(KEYS)? {
            let bytes = storage.read(&format!("{KEYS}/{name}"))?;
            match KeyFile::parse(&bytes) {
                Ok(kf) if kf.id == name => key_files.push(kf),
                Ok(_) => eprintln!(
                    "warning: key file {} names another id; skipped",
                    label::shown(&name)
                ),
                Err(e) => eprintln!("warning: key file {}: {e}; skipped", label::shown(&name)),
            }
        }
        if key_files.is_empty() {
            return Err(Error::new(
                ErrorKind::WrongPassword,
                format!("{location} has no usable key file"),
            ));
        }
        let mut found = None;
        for kf in &key_files {
            match kf.unwrap(&repo_id, password.as_bytes()) {
                Ok(mk) => {
                    found = Some((mk, kf.id.clone()));
                    break;
                }
                Err(e) if e.kind() == ErrorKind::WrongPassword => continue,
                Err(e) => return Err(e),
            }
        }
        let Some((master, key_id)) = found else {
            return Err(Error::new(
                ErrorKind::WrongPassword,
                "wrong password: no key file of this repository opens with it",
            )
            .with_hint("check COFFRE_PASSWORD, --password-file or --password-command"));
        };
        let keys = Keys::derive(&master);
        let config = config::decode(&keys.encryption, &storage.read(CONFIG)?)
            .map_err(|e| e.context("config"))?;
        let index_dir = match location.local_path() {
            Some(root) => root.join(INDEX_DIR),
            // per repository and place: off-site copies share the
            // repository id but not always the same packs
            None => cache_root()?
                .join(hex::encode(repo_id.0))
                .join(&blake3::hash(location.canonical().as_bytes()).to_hex()[..16]),
        };
        crate::storage::create_dir_private(&index_dir)
            .map_err(|e| Error::io("creating", &index_dir, e))?;
        // Opening is serialised between processes: creating the schema,
        // switching to WAL and rebuilding are not safe to race, and SQLite
        // answers some of those races with an immediate "locked".
        let _opening = OpenLock::acquire(&index_dir.join("open.lock"))?;
        let (index, needs_rebuild) = if skip_index {
            (Index::in_memory(&repo_id)?, false)
        } else {
            // a damaged index file gets its repair hint where SQLite's
            // errors are converted (error.rs)
            Index::open(&index_dir.join(INDEX_NAME), &repo_id)?
        };
        let repo = Repo {
            location: location.clone(),
            index_dir,
            storage,
            repo_id,
            keys,
            master,
            config,
            key_id,
            index: Mutex::new(index),
            lock: Mutex::new(None),
            verify_all: Default::default(),
        };
        if needs_rebuild {
            repo.rebuild_packs()?;
            repo.index().mark_complete()?;
        } else if catch_up && !repo.storage.is_local() {
            // other machines write to and prune a remote repository: its
            // local index is a cache that catches up at every open
            repo.refresh_packs()?;
        }
        if !skip_index {
            repo.sync_snapshots()?;
        }
        Ok(repo)
    }

    pub fn location(&self) -> &Location {
        &self.location
    }
    pub fn id(&self) -> &RepoId {
        &self.repo_id
    }
    pub fn keys(&self) -> &Keys {
        &self.keys
    }
    pub fn config(&self) -> &RepoConfig {
        &self.config
    }
    pub fn storage(&self) -> &dyn Storage {
        self.storage.as_ref()
    }
    pub fn current_key_id(&self) -> &str {
        &self.key_id
    }
    /// Take a shared (backup, restore, read) or exclusive (prune) lock on
    /// the repository for the rest of this process, waiting up to `wait`.
    pub fn lock(&self, exclusive: bool, command: &str, wait: std::time::Duration) -> Result<()> {
        let l = lock::RepoLock::acquire(self.storage.clone(), exclusive, command, wait)?;
        *self.lock.lock().unwrap_or_else(|p| p.into_inner()) = Some(l);
        if !self.storage.is_local() {
            // a prune elsewhere may have finished between the open and
            // now; under the lock, no other prune can start
            self.refresh_packs()?;
        }
        Ok(())
    }

    /// Prove this process still holds its lock (renewing it), before a
    /// commit. Without a lock held, nothing may be committed.
    pub fn check_lease(&self) -> Result<()> {
        match &*self.lock.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(l) => l.check(),
            None => Err(Error::other(
                "internal: committing without a repository lock",
            )),
        }
    }

    /// Does this process hold an exclusive lock?
    pub fn holds_exclusive_lock(&self) -> bool {
        self.lock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|l| l.is_exclusive())
    }

    /// The shared read-write index connection.
    pub fn index(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }
    /// A fresh read-only index connection for another thread.
    pub fn index_reader(&self) -> Result<Index> {
        Index::open_reader(&self.index_file())
    }

    pub fn binding<'a>(&'a self, object_type: ObjectType, id: &'a [u8; 32]) -> Binding<'a> {
        Binding {
            repo_id: &self.repo_id,
            object_type,
            object_id: id,
        }
    }

    /// Verify every sealed data chunk, not only a sample (`backup
    /// --verify-all`).
    pub fn set_verify_all(&self, all: bool) {
        self.verify_all
            .store(all, std::sync::atomic::Ordering::Relaxed);
    }

    /// Compress (when it pays) and encrypt a blob, then — for every tree and
    /// chunk list, one data chunk in 16 (by id) or, with `set_verify_all`,
    /// every chunk — open it again and compare with the plaintext: a faulty
    /// compressor or encryptor, or a flipped bit in memory, stops the backup
    /// before the pack is written. (Checking every chunk costs about a fifth
    /// more CPU; a systematic fault shows up in the sample at once.)
    pub fn seal_blob(&self, ty: ObjectType, id: &BlobId, plaintext: &[u8]) -> Result<Vec<u8>> {
        let sealed = envelope::seal(
            &self.keys.encryption,
            self.binding(ty, &id.0),
            plaintext,
            Some(self.config.zstd_level),
            None,
        );
        let sampled = ty != ObjectType::Data
            || id.0[0] & 0x0f == 0
            || self.verify_all.load(std::sync::atomic::Ordering::Relaxed);
        if !sampled {
            return Ok(sealed);
        }
        thread_local! {
            static CHECK: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        CHECK.with(|check| {
            let mut check = check.borrow_mut();
            let opened = envelope::open_into(
                &self.keys.encryption,
                self.binding(ty, &id.0),
                &sealed,
                plaintext.len(),
                &mut check,
            );
            let same = opened.is_ok() && check.as_slice() == plaintext;
            // not kept: a chunk-sized buffer per thread, idle for 15
            // chunks out of 16, costs more memory than the allocation
            *check = Vec::new();
            if same {
                Ok(sealed)
            } else {
                Err(Error::other(format!(
                    "{} {id} does not read back as written after compression and encryption \
                     (faulty memory or CPU?); nothing was written",
                    ty.name()
                ))
                .with_hint("run the backup again; if it repeats, test this machine's memory"))
            }
        })
    }

    /// Read, authenticate, decompress and re-hash a blob; refuses anything that
    /// does not verify, naming the blob and its pack.
    pub fn read_blob(&self, index: &Index, ty: ObjectType, id: &BlobId) -> Result<Vec<u8>> {
        let loc = index.lookup(id)?.ok_or_else(|| {
            Error::corrupt(format!(
                "{} {} is not in the repository index",
                ty.name(),
                id
            ))
            .with_hint(
                "the repository is damaged or the index is stale: `coffre check` tells which, \
                 and `coffre repair index` rebuilds a stale index",
            )
        })?;
        self.read_blob_at(ty, id, &loc)
    }

    pub fn read_blob_at(&self, ty: ObjectType, id: &BlobId, loc: &BlobLocation) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.read_blob_at_into(ty, id, loc, &mut out)?;
        Ok(out)
    }

    /// Like [`read_blob_at`](Self::read_blob_at), into a reusable buffer.
    pub fn read_blob_at_into(
        &self,
        ty: ObjectType,
        id: &BlobId,
        loc: &BlobLocation,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let where_ = || format!("{} {} in pack {}", ty.name(), id, loc.pack);
        if loc.blob_type != ty {
            return Err(Error::corrupt(format!(
                "{} is indexed as a {}",
                where_(),
                loc.blob_type.name()
            )));
        }
        thread_local! {
            /// Sealed blobs are read into this and decrypted in place.
            static SEALED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        SEALED.with(|sealed| {
            let mut sealed = sealed.borrow_mut();
            let r = self.read_sealed_into(ty, id, loc, &mut sealed, out);
            if sealed.capacity() > self.config.chunker.max_size as usize + (64 << 10) {
                *sealed = Vec::new();
            }
            r
        })
    }

    /// Read a sealed blob into `sealed` and open it there.
    fn read_sealed_into(
        &self,
        ty: ObjectType,
        id: &BlobId,
        loc: &BlobLocation,
        sealed: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let where_ = || format!("{} {} in pack {}", ty.name(), id, loc.pack);
        self.storage
            .read_at_into(
                &pack_path(&loc.pack),
                loc.offset,
                loc.length as usize,
                sealed,
            )
            .map_err(|e| {
                if e.kind() == ErrorKind::NotFound {
                    // the index names the pack: its absence is damage
                    Error::corrupt(format!("{}: the pack is missing", where_())).with_hint(
                        "`coffre check` lists what it affects; restore those entries from \
                         another snapshot or an off-site copy",
                    )
                } else {
                    e.context(where_())
                }
            })?;
        let cap = self.blob_cap(ty);
        envelope::open_in_place_into(
            &self.keys.encryption,
            self.binding(ty, &id.0),
            sealed,
            cap,
            out,
        )
        .and_then(|()| self.check_opened(id, loc.raw_length, out))
        .map_err(|e| Error::corrupt(format!("{}: {}", where_(), e.message())))
    }

    /// Open a sealed blob and check it is what its id and pack header say:
    /// authenticated, decompressed within the cap for its type, re-hashed.
    pub fn open_blob_into(
        &self,
        ty: ObjectType,
        id: &BlobId,
        sealed: &[u8],
        raw_length: u32,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        envelope::open_into(
            &self.keys.encryption,
            self.binding(ty, &id.0),
            sealed,
            self.blob_cap(ty),
            out,
        )?;
        self.check_opened(id, raw_length, out)
    }

    /// The most plaintext a blob of type `ty` may decompress to.
    fn blob_cap(&self, ty: ObjectType) -> usize {
        match ty {
            ObjectType::Data => self.config.chunker.max_size as usize,
            _ => METADATA_CAP,
        }
    }

    /// An opened blob is what its id and pack header say.
    fn check_opened(&self, id: &BlobId, raw_length: u32, out: &[u8]) -> Result<()> {
        if self.keys.blob_id(out) != *id {
            return Err(Error::corrupt("content does not match its id"));
        }
        if out.len() != raw_length as usize {
            return Err(Error::corrupt("length differs from the pack header"));
        }
        Ok(())
    }

    /// Store a snapshot object and index it. The caller has made sure every
    /// blob it references is durable and indexed.
    pub fn write_snapshot(&self, snap: &Snapshot) -> Result<SnapshotId> {
        snap.check()?;
        // the packs it references must not have been pruned meanwhile
        self.check_lease()?;
        let id = SnapshotId::random();
        let sealed = envelope::seal(
            &self.keys.encryption,
            self.binding(ObjectType::Snapshot, &id.0),
            &snap.encode(),
            Some(self.config.zstd_level),
            None,
        );
        self.storage.write_atomic(&snapshot_path(&id), &[&sealed])?;
        self.index().add_snapshot(&id, snap)?;
        Ok(id)
    }

    /// Delete a snapshot object, then its index rows (a crash in between
    /// is mended by the snapshot sync of the next open). Its data stays
    /// until prune.
    pub fn forget_snapshot(&self, id: &SnapshotId) -> Result<()> {
        match self.storage.remove(&snapshot_path(id)) {
            Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        self.index().remove_snapshot(id)
    }

    pub fn load_snapshot(&self, id: &SnapshotId) -> Result<Snapshot> {
        let bytes = self
            .storage
            .read(&snapshot_path(id))
            .map_err(|e| e.context(format!("snapshot {}", id.short())))?;
        let plain = envelope::open(
            &self.keys.encryption,
            self.binding(ObjectType::Snapshot, &id.0),
            &bytes,
            METADATA_CAP,
        )
        .map_err(|e| Error::corrupt(format!("snapshot {id}: {}", e.message())))?;
        Snapshot::decode(&plain)
            .map_err(|e| Error::corrupt(format!("snapshot {id}: {}", e.message())))
    }

    /// Bring the index's snapshot table in line with the `snapshots/` directory.
    pub fn sync_snapshots(&self) -> Result<()> {
        let on_disk: std::collections::BTreeSet<SnapshotId> = self
            .storage
            .list(SNAPSHOTS)?
            .iter()
            .filter_map(|n| SnapshotId::from_hex(n).ok())
            .collect();
        let indexed: std::collections::BTreeSet<SnapshotId> =
            self.index().snapshot_ids()?.into_iter().collect();
        for id in on_disk.difference(&indexed) {
            match self.load_snapshot(id) {
                Ok(snap) => self.index().add_snapshot(id, &snap)?,
                Err(e) => eprintln!("warning: {e}; not listed"),
            }
        }
        for id in indexed.difference(&on_disk) {
            self.index().remove_snapshot(id)?;
        }
        Ok(())
    }

    /// Every pack file in the storage (names that are not pack ids are
    /// ignored). A listing error is an error, never "no packs".
    pub fn pack_files(&self) -> Result<Vec<PackId>> {
        Ok(self
            .storage
            .list_files(PACKS)?
            .iter()
            .filter_map(|p| PackId::from_hex(p.rsplit('/').next()?).ok())
            .collect())
    }

    /// Index every pack that the index does not know yet, from its header.
    pub fn rebuild_packs(&self) -> Result<usize> {
        let mut unknown = Vec::new();
        for id in self.pack_files()? {
            if !self.index().has_pack(&id)? {
                unknown.push(id);
            }
        }
        self.index_found_packs(&unknown)
    }

    /// Bring the cached index of a remote repository in line with its
    /// packs: index the packs other machines wrote, forget the ones their
    /// prunes deleted (a chunk that is then in no pack is damage that
    /// `coffre check` names, never something a backup deduplicates against).
    fn refresh_packs(&self) -> Result<()> {
        let stored: std::collections::BTreeSet<PackId> = self.pack_files()?.into_iter().collect();
        let indexed: std::collections::BTreeSet<PackId> =
            self.index().packs()?.into_iter().map(|(p, _)| p).collect();
        let gone: Vec<PackId> = indexed.difference(&stored).copied().collect();
        if !gone.is_empty() {
            self.index().remove_packs(&gone)?;
        }
        let new: Vec<PackId> = stored.difference(&indexed).copied().collect();
        self.index_found_packs(&new)?;
        Ok(())
    }

    /// Read the headers of `packs` (several at once on a remote, where each
    /// read is a round trip) and index them; an unreadable pack is warned
    /// about and left out.
    fn index_found_packs(&self, packs: &[PackId]) -> Result<usize> {
        let jobs = if self.storage.is_local() { 2 } else { 16 };
        let found = std::sync::atomic::AtomicUsize::new(0);
        crate::storage::for_each_concurrently(packs, jobs, |id| {
            match self.read_pack_header(id) {
                Ok((size, entries)) => self.index().add_found_pack(id, size, &entries)?,
                Err(e) if e.kind() == ErrorKind::Corrupt => {
                    eprintln!("warning: pack {id}: {e}; its blobs are not indexed");
                    return Ok(());
                }
                Err(e) => return Err(e.context(format!("pack {id}"))),
            }
            found.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        })?;
        Ok(found.into_inner())
    }

    pub fn read_pack_header(&self, id: &PackId) -> Result<(u64, Vec<pack::PackEntry>)> {
        let path = pack_path(id);
        let size = self.storage.size(&path)?;
        if size < 4 {
            return Err(Error::corrupt(format!("pack {id} is truncated")));
        }
        // one read of the tail holds the header of a usual pack
        let tail_len = size.min(64 << 10);
        let tail = self
            .storage
            .read_at(&path, size - tail_len, tail_len as usize)?;
        let trailer: [u8; 4] = tail[tail.len() - 4..].try_into().unwrap();
        let (off, len) = pack::header_range(size, &trailer)?;
        let header = if off >= size - tail_len {
            let start = (off - (size - tail_len)) as usize;
            tail[start..start + len as usize].to_vec()
        } else {
            self.storage.read_at(&path, off, len as usize)?
        };
        let entries = pack::decode_header(&self.keys.encryption, &self.repo_id, &header, off)
            .map_err(|e| Error::corrupt(format!("pack {id}: {}", e.message())))?;
        Ok((size, entries))
    }

    // ---- keys

    pub fn list_keys(&self) -> Result<Vec<KeyFile>> {
        let mut out = Vec::new();
        for name in self.storage.list(KEYS)? {
            match KeyFile::parse(&self.storage.read(&format!("{KEYS}/{name}"))?) {
                Ok(kf) => out.push(kf),
                Err(e) => eprintln!("warning: key file {}: {e}; not listed", label::shown(&name)),
            }
        }
        Ok(out)
    }

    /// Add a key file that opens this repository with `password`.
    pub fn add_key(&self, password: &str, kdf: KdfParams) -> Result<String> {
        if password.is_empty() {
            return Err(Error::usage("the new password is empty"));
        }
        let kf = KeyFile::create(
            &self.repo_id,
            &self.master,
            password.as_bytes(),
            kdf,
            &host_name(),
            &user_name(),
            None,
        )?;
        self.storage
            .write_atomic(&format!("{KEYS}/{}", kf.id), &[&kf.to_bytes()])?;
        Ok(kf.id)
    }

    pub fn remove_key(&self, id: &str) -> Result<()> {
        let keys = self.storage.list(KEYS)?;
        if !keys.iter().any(|k| k == id) {
            return Err(
                Error::not_found(format!("no key file {id}")).with_hint("see `coffre key list`")
            );
        }
        if keys.len() == 1 {
            return Err(Error::usage(
                "refusing to remove the last key file: the repository would be unreadable",
            ));
        }
        self.storage.remove(&format!("{KEYS}/{id}"))
    }
}

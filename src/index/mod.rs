//! The SQLite index (format-spec/index.md): derived state, rebuildable from
//! the repository's packs and snapshot objects.
//!
//! One writer at a time (SQLite's own lock, with a busy timeout); readers use
//! their own connections in WAL mode and never block the writer. Rows for a
//! pack are inserted only after the pack is durable, in one transaction, so
//! every row names a pack that exists.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::error::{Error, Result};
use crate::format::pack::PackEntry;
use crate::format::snapshot::Snapshot;
use crate::format::{BlobId, ObjectType, PackId, RepoId, SnapshotId};

pub const SCHEMA_VERSION: i64 = 3;

const SCHEMA: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE packs (
    id INTEGER PRIMARY KEY,
    name BLOB NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    blobs INTEGER NOT NULL,
    added_ns INTEGER NOT NULL,
    verified_ns INTEGER,
    verify_ok INTEGER
);
CREATE TABLE blobs (
    id BLOB PRIMARY KEY,
    type INTEGER NOT NULL,
    pack INTEGER NOT NULL REFERENCES packs(id),
    offset INTEGER NOT NULL,
    length INTEGER NOT NULL,
    raw_length INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX blobs_pack ON blobs(pack);
CREATE TABLE snapshots (
    id BLOB PRIMARY KEY,
    time_ns INTEGER NOT NULL,
    host TEXT NOT NULL,
    user TEXT NOT NULL,
    tags TEXT NOT NULL,
    failed TEXT NOT NULL DEFAULT '[]'
) WITHOUT ROWID;
CREATE INDEX snapshots_time ON snapshots(time_ns);
CREATE TABLE entries (
    snapshot BLOB NOT NULL REFERENCES snapshots(id),
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    size INTEGER NOT NULL,
    PRIMARY KEY (snapshot, name)
) WITHOUT ROWID;
CREATE INDEX entries_name ON entries(name);
CREATE TABLE deleted_packs (name BLOB PRIMARY KEY) WITHOUT ROWID;
";

/// Where a blob lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobLocation {
    pub pack: PackId,
    pub blob_type: ObjectType,
    pub offset: u64,
    pub length: u32,
    pub raw_length: u32,
}

/// Who is indexing a pack, which decides how `deleted_packs` and blobs
/// already indexed elsewhere are treated.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PackOrigin {
    /// A backup wrote it: refused if prune deleted it meanwhile.
    Written,
    /// A rebuild found the file in the storage.
    Found,
    /// Prune wrote it: its blobs' locations move to it.
    Repacked,
}

/// How much of a pack the live blobs use.
#[derive(Clone, Debug)]
pub struct PackUsage {
    pub pack: PackId,
    /// The pack file's size.
    pub size: u64,
    /// Where its blob data ends (its header follows), as far as the index
    /// knows its blobs: exact only when `indexed_blobs == blobs`.
    pub data_len: u64,
    /// Blobs its header lists.
    pub blobs: u64,
    /// Blobs the index locates in it: fewer than `blobs` when some are
    /// copies of blobs the index locates elsewhere (two backups stored the
    /// same new chunk at once, or a found pack repeated indexed blobs).
    pub indexed_blobs: u64,
    pub live_blobs: u64,
    pub live_bytes: u64,
}

/// A snapshot as the index summarises it.
#[derive(Clone, Debug)]
pub struct SnapshotRow {
    pub id: SnapshotId,
    pub time_ns: i64,
    pub host: String,
    pub user: String,
    pub tags: Vec<String>,
    pub entries: Vec<(String, String, u64)>,
    /// The sources that failed, for a partial snapshot (empty otherwise).
    pub failed: Vec<String>,
}

pub struct Index {
    conn: Connection,
}

fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
}

impl Index {
    /// Open (creating if needed) the index at `path` for repository `repo_id`.
    /// Returns the index and whether it still needs a rebuild from the packs
    /// (it is new, or the process that created it did not finish rebuilding).
    pub fn open(path: &Path, repo_id: &RepoId) -> Result<(Index, bool)> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(60))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        {
            // concurrent first opens: one creates the schema, the others wait
            // on the write lock and then find it there
            let tx = rusqlite::Transaction::new_unchecked(
                &conn,
                rusqlite::TransactionBehavior::Immediate,
            )?;
            let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
            if version == 0 {
                tx.execute_batch(SCHEMA)?;
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('repo_id', ?1)",
                    [repo_id.to_string()],
                )?;
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            } else if version < SCHEMA_VERSION {
                if version == 1 {
                    // v2 adds snapshots.failed: empty the snapshot tables,
                    // which the sync after opening refills from the objects
                    tx.execute_batch(
                        "ALTER TABLE snapshots ADD COLUMN failed TEXT NOT NULL DEFAULT '[]';
                         DELETE FROM entries; DELETE FROM snapshots;",
                    )?;
                }
                if version <= 2 {
                    // v3 remembers the packs prune deleted
                    tx.execute_batch(
                        "CREATE TABLE IF NOT EXISTS deleted_packs (name BLOB PRIMARY KEY) WITHOUT ROWID;",
                    )?;
                }
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            }
            tx.commit()?;
        }
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version != SCHEMA_VERSION {
            return Err(Error::other(format!(
                "index {} has schema version {version}, this coffre uses {SCHEMA_VERSION}",
                path.display()
            ))
            .with_hint("delete the index file; it is rebuilt from the repository"));
        }
        let stored: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'repo_id'", [], |r| {
                r.get(0)
            })
            .optional()?;
        if stored.as_deref() != Some(&repo_id.to_string()) {
            return Err(Error::other(format!(
                "index {} belongs to another repository",
                path.display()
            ))
            .with_hint("delete the index file; it is rebuilt from the repository"));
        }
        let complete: bool = conn
            .prepare("SELECT 1 FROM meta WHERE key = 'complete'")?
            .exists([])?;
        Ok((Index { conn }, !complete))
    }

    /// Record that every pack of the repository has been indexed once.
    /// An empty index in memory (a placeholder while a new one is built).
    pub fn in_memory(repo_id: &RepoId) -> Result<Index> {
        let conn = Connection::open_in_memory()?;
        conn.execute_batch(SCHEMA)?;
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('repo_id', ?1)",
            [repo_id.to_string()],
        )?;
        Ok(Index { conn })
    }

    pub fn mark_complete(&self) -> Result<()> {
        self.conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('complete', '1')",
            [],
        )?;
        Ok(())
    }

    /// A read-only connection for a worker thread.
    pub fn open_reader(path: &Path) -> Result<Index> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(60))?;
        Ok(Index { conn })
    }

    pub fn lookup(&self, id: &BlobId) -> Result<Option<BlobLocation>> {
        let mut st = self.conn.prepare_cached(
            "SELECT p.name, b.type, b.offset, b.length, b.raw_length
             FROM blobs b JOIN packs p ON p.id = b.pack WHERE b.id = ?1",
        )?;
        let row = st
            .query_row([&id.0[..]], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, u8>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })
            .optional()?;
        let Some((pack, ty, offset, length, raw_length)) = row else {
            return Ok(None);
        };
        let pack =
            PackId::from_slice(&pack).ok_or_else(|| Error::corrupt("index holds a bad pack id"))?;
        let blob_type = ObjectType::from_byte(ty)
            .ok_or_else(|| Error::corrupt("index holds a bad blob type"))?;
        Ok(Some(BlobLocation {
            pack,
            blob_type,
            offset: offset as u64,
            length: length as u32,
            raw_length: raw_length as u32,
        }))
    }

    pub fn contains(&self, id: &BlobId) -> Result<bool> {
        let mut st = self
            .conn
            .prepare_cached("SELECT 1 FROM blobs WHERE id = ?1")?;
        Ok(st.exists([&id.0[..]])?)
    }

    /// Did a prune of this repository delete the pack?
    pub fn was_deleted(&self, id: &PackId) -> Result<bool> {
        let mut st = self
            .conn
            .prepare_cached("SELECT 1 FROM deleted_packs WHERE name = ?1")?;
        Ok(st.exists([&id.0[..]])?)
    }

    pub fn has_pack(&self, id: &PackId) -> Result<bool> {
        let mut st = self
            .conn
            .prepare_cached("SELECT 1 FROM packs WHERE name = ?1")?;
        Ok(st.exists([&id.0[..]])?)
    }

    /// Record a pack a backup just wrote, and its blobs, in one transaction.
    /// A blob already indexed in another pack keeps its first location.
    /// Refused if prune deleted the pack meanwhile (the backup was suspended
    /// past its lease): rows naming a deleted pack would make later backups
    /// reference data that is gone.
    pub fn add_pack(&mut self, pack: &PackId, size: u64, entries: &[PackEntry]) -> Result<()> {
        self.insert_pack(pack, size, entries, PackOrigin::Written)
    }

    /// Record a pack file found in the storage (rebuilds): it exists, so it
    /// may be indexed even if a prune once deleted it.
    pub fn add_found_pack(
        &mut self,
        pack: &PackId,
        size: u64,
        entries: &[PackEntry],
    ) -> Result<()> {
        self.insert_pack(pack, size, entries, PackOrigin::Found)
    }

    /// Record a pack written by prune: its blobs' locations move to it.
    pub fn relocate_to_pack(
        &mut self,
        pack: &PackId,
        size: u64,
        entries: &[PackEntry],
    ) -> Result<()> {
        self.insert_pack(pack, size, entries, PackOrigin::Repacked)
    }

    fn insert_pack(
        &mut self,
        pack: &PackId,
        size: u64,
        entries: &[PackEntry],
        origin: PackOrigin,
    ) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if origin != PackOrigin::Written {
            tx.execute("DELETE FROM deleted_packs WHERE name = ?1", [&pack.0[..]])?;
        } else if tx
            .prepare_cached("SELECT 1 FROM deleted_packs WHERE name = ?1")?
            .exists([&pack.0[..]])?
        {
            return Err(Error::new(
                crate::error::ErrorKind::Locked,
                format!(
                    "pack {pack} was deleted by a prune while this process was suspended past \
                     its lock's lease; nothing was committed"
                ),
            )
            .with_hint("run the command again"));
        }
        tx.execute(
            "INSERT OR IGNORE INTO packs (name, size, blobs, added_ns) VALUES (?1, ?2, ?3, ?4)",
            params![&pack.0[..], size as i64, entries.len() as i64, now_ns()],
        )?;
        let pack_row: i64 =
            tx.query_row("SELECT id FROM packs WHERE name = ?1", [&pack.0[..]], |r| {
                r.get(0)
            })?;
        {
            // a blob already indexed in another pack keeps its first
            // location, unless prune moved it here
            let mut st = tx.prepare_cached(if origin == PackOrigin::Repacked {
                "INSERT OR REPLACE INTO blobs (id, type, pack, offset, length, raw_length)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
            } else {
                "INSERT OR IGNORE INTO blobs (id, type, pack, offset, length, raw_length)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
            })?;
            for e in entries {
                st.execute(params![
                    &e.id.0[..],
                    e.blob_type as u8,
                    pack_row,
                    e.offset as i64,
                    e.length as i64,
                    e.raw_length as i64
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    pub fn add_snapshot(&mut self, id: &SnapshotId, snap: &Snapshot) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT OR REPLACE INTO snapshots (id, time_ns, host, user, tags, failed) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                &id.0[..],
                snap.time_ns()?,
                snap.host,
                snap.user,
                serde_json::to_string(&snap.tags).unwrap(),
                serde_json::to_string(&snap.failed.iter().map(|f| &f.name).collect::<Vec<_>>())
                    .unwrap()
            ],
        )?;
        tx.execute("DELETE FROM entries WHERE snapshot = ?1", [&id.0[..]])?;
        for e in &snap.entries {
            let kind = match e.kind {
                crate::format::snapshot::EntryKind::Stream => "stream",
                crate::format::snapshot::EntryKind::Tree => "tree",
            };
            tx.execute(
                "INSERT INTO entries (snapshot, name, kind, size) VALUES (?1, ?2, ?3, ?4)",
                params![&id.0[..], e.name, kind, e.size as i64],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn snapshot_ids(&self) -> Result<Vec<SnapshotId>> {
        let mut st = self.conn.prepare("SELECT id FROM snapshots")?;
        let rows = st.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
        let mut out = Vec::new();
        for r in rows {
            out.push(
                SnapshotId::from_slice(&r?)
                    .ok_or_else(|| Error::corrupt("index holds a bad snapshot id"))?,
            );
        }
        Ok(out)
    }

    /// All snapshots, oldest first.
    pub fn snapshots(&self) -> Result<Vec<SnapshotRow>> {
        let mut st = self.conn.prepare(
            "SELECT id, time_ns, host, user, tags, failed FROM snapshots ORDER BY time_ns, id",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
            ))
        })?;
        let mut out = Vec::new();
        let mut est = self.conn.prepare_cached(
            "SELECT name, kind, size FROM entries WHERE snapshot = ?1 ORDER BY name",
        )?;
        for r in rows {
            let (id, time_ns, host, user, tags, failed) = r?;
            let entries = est
                .query_map([&id[..]], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            out.push(SnapshotRow {
                id: SnapshotId::from_slice(&id)
                    .ok_or_else(|| Error::corrupt("index holds a bad snapshot id"))?,
                time_ns,
                host,
                user,
                tags: serde_json::from_str(&tags).unwrap_or_default(),
                entries,
                failed: serde_json::from_str(&failed).unwrap_or_default(),
            });
        }
        Ok(out)
    }

    // ---- prune (pipeline/prune.rs): the set of live blobs is a temporary
    // table of this connection, on disk, so memory stays flat however many
    // chunks the repository holds

    /// Start an empty live set.
    pub fn live_reset(&self) -> Result<()> {
        // prune and check read the whole blob table and fill the live set:
        // a page cache of up to 64 MiB each (instead of SQLite's 2 MiB)
        // saves most of their page reads, and memory stays bounded
        self.conn.execute_batch(
            "PRAGMA main.cache_size = -65536;
             PRAGMA temp.cache_size = -65536;
             CREATE TEMP TABLE IF NOT EXISTS live (id BLOB PRIMARY KEY) WITHOUT ROWID;
             DELETE FROM live;",
        )?;
        Ok(())
    }

    pub fn live_begin(&self) -> Result<()> {
        self.conn.execute_batch("BEGIN")?;
        Ok(())
    }

    pub fn live_end(&self, commit: bool) -> Result<()> {
        self.conn
            .execute_batch(if commit { "COMMIT" } else { "ROLLBACK" })?;
        Ok(())
    }

    pub fn live_count(&self) -> Result<u64> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM live", [], |r| r.get::<_, i64>(0))? as u64)
    }

    /// Add a blob to the live set; false if it was there already.
    pub fn live_add(&self, id: &BlobId) -> Result<bool> {
        let mut st = self
            .conn
            .prepare_cached("INSERT OR IGNORE INTO live (id) VALUES (?1)")?;
        Ok(st.execute([&id.0[..]])? == 1)
    }

    /// Live blobs that are in no pack the index knows (at most `limit`).
    pub fn live_missing(&self, limit: usize) -> Result<Vec<BlobId>> {
        let mut st = self.conn.prepare(
            "SELECT l.id FROM live l WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.id = l.id)
             LIMIT ?1",
        )?;
        let rows = st.query_map([limit as i64], |r| r.get::<_, Vec<u8>>(0))?;
        let mut out = Vec::new();
        for r in rows {
            out.push(BlobId::from_slice(&r?).ok_or_else(|| Error::corrupt("bad blob id"))?);
        }
        Ok(out)
    }

    /// Every pack with its size and how much of it the live set uses.
    pub fn pack_usage(&self) -> Result<Vec<PackUsage>> {
        let mut st = self.conn.prepare(
            "SELECT p.name, p.size, coalesce(max(b.offset + b.length), 0),
                    p.blobs, count(b.id), count(l.id),
                    coalesce(sum(CASE WHEN l.id IS NULL THEN 0 ELSE b.length END), 0)
             FROM packs p
             LEFT JOIN blobs b ON b.pack = p.id
             LEFT JOIN live l ON l.id = b.id
             GROUP BY p.id ORDER BY p.id",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, i64>(6)?,
            ))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (name, size, data_len, blobs, indexed_blobs, live_blobs, live_bytes) = r?;
            out.push(PackUsage {
                pack: PackId::from_slice(&name)
                    .ok_or_else(|| Error::corrupt("index holds a bad pack id"))?,
                size: size as u64,
                data_len: data_len as u64,
                blobs: blobs as u64,
                indexed_blobs: indexed_blobs as u64,
                live_blobs: live_blobs as u64,
                live_bytes: live_bytes as u64,
            });
        }
        Ok(out)
    }

    /// When each indexed pack was last verified by a scrub (None: never),
    /// with its size.
    pub fn pack_verification(
        &self,
    ) -> Result<std::collections::HashMap<PackId, (u64, Option<i64>)>> {
        let mut st = self
            .conn
            .prepare("SELECT name, size, verified_ns FROM packs")?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<i64>>(2)?,
            ))
        })?;
        let mut out = std::collections::HashMap::new();
        for r in rows {
            let (name, size, when) = r?;
            let id = PackId::from_slice(&name)
                .ok_or_else(|| Error::corrupt("index holds a bad pack id"))?;
            out.insert(id, (size as u64, when));
        }
        Ok(out)
    }

    /// Packs whose last verification found damage.
    pub fn packs_failing_verification(&self) -> Result<u64> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM packs WHERE verify_ok = 0", [], |r| {
                r.get::<_, i64>(0)
            })? as u64)
    }

    /// Record that a scrub verified `pack` now, and its result.
    pub fn record_verified(&self, pack: &PackId, ok: bool) -> Result<()> {
        self.conn.execute(
            "UPDATE packs SET verified_ns = ?1, verify_ok = ?2 WHERE name = ?3",
            params![now_ns(), ok as i64, &pack.0[..]],
        )?;
        Ok(())
    }

    /// Every indexed pack and its recorded size.
    pub fn packs(&self) -> Result<Vec<(PackId, u64)>> {
        let mut st = self
            .conn
            .prepare("SELECT name, size FROM packs ORDER BY name")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))?;
        let mut out = Vec::new();
        for r in rows {
            let (name, size) = r?;
            out.push((
                PackId::from_slice(&name)
                    .ok_or_else(|| Error::corrupt("index holds a bad pack id"))?,
                size as u64,
            ));
        }
        Ok(out)
    }

    /// The blobs whose indexed location is in `pack`, by offset; with
    /// `live_only`, those in the live set only (prune).
    pub fn blobs_in_pack(&self, pack: &PackId, live_only: bool) -> Result<Vec<PackEntry>> {
        let mut st = self.conn.prepare_cached(if live_only {
            "SELECT b.id, b.type, b.offset, b.length, b.raw_length
             FROM blobs b JOIN packs p ON p.id = b.pack JOIN live l ON l.id = b.id
             WHERE p.name = ?1 ORDER BY b.offset"
        } else {
            "SELECT b.id, b.type, b.offset, b.length, b.raw_length
             FROM blobs b JOIN packs p ON p.id = b.pack
             WHERE p.name = ?1 ORDER BY b.offset"
        })?;
        let rows = st.query_map([&pack.0[..]], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, u8>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (id, ty, offset, length, raw_length) = r?;
            out.push(PackEntry {
                blob_type: ObjectType::from_byte(ty)
                    .ok_or_else(|| Error::corrupt("index holds a bad blob type"))?,
                id: BlobId::from_slice(&id).ok_or_else(|| Error::corrupt("bad blob id"))?,
                offset: offset as u64,
                length: length as u32,
                raw_length: raw_length as u32,
            });
        }
        Ok(out)
    }

    /// Forget packs about to be deleted, with every blob row still naming
    /// them, in one transaction: afterwards no lookup can lead to them.
    pub fn remove_packs(&mut self, packs: &[PackId]) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut blobs = tx.prepare_cached(
                "DELETE FROM blobs WHERE pack = (SELECT id FROM packs WHERE name = ?1)",
            )?;
            let mut pack = tx.prepare_cached("DELETE FROM packs WHERE name = ?1")?;
            let mut tombstone =
                tx.prepare_cached("INSERT OR IGNORE INTO deleted_packs (name) VALUES (?1)")?;
            for p in packs {
                blobs.execute([&p.0[..]])?;
                pack.execute([&p.0[..]])?;
                tombstone.execute([&p.0[..]])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    pub fn remove_snapshot(&mut self, id: &SnapshotId) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM entries WHERE snapshot = ?1", [&id.0[..]])?;
        tx.execute("DELETE FROM snapshots WHERE id = ?1", [&id.0[..]])?;
        tx.commit()?;
        Ok(())
    }
}

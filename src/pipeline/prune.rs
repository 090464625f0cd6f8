//! Prune: delete what no snapshot references (format-spec/prune.md).
//!
//! 1. Mark: every blob reachable from a snapshot goes into the index's
//!    on-disk live set (shared subtrees and chunk lists are walked once).
//!    A referenced blob that no pack holds means the repository is damaged:
//!    prune refuses, deleting nothing.
//! 2. Plan: packs with no live blob are deleted; packs whose unused share is
//!    above `max_unused` are repacked (their live blobs copied, verified,
//!    into new packs), up to `max_repack` bytes.
//! 3. Sweep, in an order that is safe to kill at any moment: new packs are
//!    durable and indexed before the index forgets the old ones, and the
//!    index forgets a pack before its file is deleted, so no lookup ever
//!    leads to a deleted pack.
//!
//! Runs under the exclusive repository lock, whose lease is checked before
//! every destructive step.

use crate::error::{Error, Result};
use crate::format::chunklist::{self, Content};
use crate::format::pack::PackEntry;
use crate::format::tree::Tree;
use crate::format::{BlobId, ObjectType, PackId};
use crate::index::Index;
use crate::repo::{Repo, SNAPSHOTS, pack_path};

/// How much prune may do.
#[derive(Clone, Debug)]
pub struct PruneOptions {
    /// Repack packs whose unused share is above this (0.0..=1.0).
    pub max_unused: f64,
    /// Repack at most this many bytes of packs (None: no limit).
    pub max_repack: Option<u64>,
    /// Report only; change nothing.
    pub dry_run: bool,
}

/// What prune found and did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct PruneReport {
    pub snapshots: u64,
    pub packs: u64,
    pub live_blobs: u64,
    pub packs_deleted: u64,
    pub packs_repacked: u64,
    pub packs_written: u64,
    /// Bytes of live blobs copied into new packs.
    pub bytes_repacked: u64,
    /// Pack bytes removed minus pack bytes written.
    pub bytes_freed: u64,
    /// Unused bytes left in packs not worth repacking.
    pub bytes_unused_left: u64,
    /// Stale temp files of interrupted writes removed from `tmp/`.
    pub temp_files_removed: u64,
    pub dry_run: bool,
}

pub fn prune(repo: &Repo, opts: &PruneOptions) -> Result<PruneReport> {
    if !repo.holds_exclusive_lock() {
        return Err(Error::other("internal: prune without the exclusive lock"));
    }
    let mut report = PruneReport {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    // packs a killed backup wrote but did not index are judged like any other
    repo.rebuild_packs()?;
    mark(repo, &mut report)?;

    let usage = repo.index().pack_usage()?;
    report.packs = usage.len() as u64;
    // a pack the index knows but the storage lacks is damage, not garbage
    let on_disk: std::collections::HashSet<PackId> = repo.pack_files()?.into_iter().collect();
    if let Some(u) = usage
        .iter()
        .find(|u| u.live_blobs > 0 && !on_disk.contains(&u.pack))
    {
        return Err(Error::corrupt(format!(
            "pack {} holds {} blob(s) that snapshots reference, but it is missing",
            u.pack, u.live_blobs
        ))
        .with_hint(
            "run `coffre scrub --all` to see the damage; prune refuses to delete anything",
        ));
    }
    let mut delete: Vec<PackId> = Vec::new();
    let mut repack: Vec<(PackId, u64)> = Vec::new();
    let mut candidates = Vec::new();
    for u in &usage {
        if u.live_blobs == 0 {
            delete.push(u.pack);
        } else {
            // the header is not waste: only dead blob bytes count (else a
            // pack of tiny blobs would be rewritten by every prune)
            let unused = data_len(repo, u)?.saturating_sub(u.live_bytes);
            if unused as f64 > opts.max_unused * u.size as f64 {
                candidates.push((u.pack, u.size, unused));
            } else {
                report.bytes_unused_left += unused;
            }
        }
    }
    // the emptiest packs first: the most space for the least copying
    candidates.sort_by(|a, b| (b.2 * a.1).cmp(&(a.2 * b.1)).then(a.0.cmp(&b.0)));
    let mut budget = opts.max_repack.unwrap_or(u64::MAX);
    for (pack, size, unused) in candidates {
        if size - unused <= budget {
            budget -= size - unused;
            repack.push((pack, size));
        } else {
            report.bytes_unused_left += unused;
        }
    }
    report.packs_deleted = delete.len() as u64;
    report.packs_repacked = repack.len() as u64;
    let removed_bytes: u64 = usage
        .iter()
        .filter(|u| u.live_blobs == 0)
        .map(|u| u.size)
        .sum::<u64>()
        + repack.iter().map(|(_, s)| s).sum::<u64>();
    if opts.dry_run {
        report.bytes_repacked = usage
            .iter()
            .filter(|u| repack.iter().any(|(p, _)| *p == u.pack))
            .map(|u| u.live_bytes)
            .sum();
        report.bytes_freed = removed_bytes.saturating_sub(report.bytes_repacked);
        return Ok(report);
    }

    // copy the live blobs of the packs to repack into new packs
    let mut written = 0u64;
    let mut packer = crate::repo::Packer::default();
    let target = repo.config().pack_size as usize;
    let flush = |batch: crate::repo::PackBatch, report: &mut PruneReport, written: &mut u64| {
        let flushed = batch.write_relocating(repo)?;
        report.packs_written += 1;
        *written += flushed.size;
        Ok::<(), Error>(())
    };
    for (pack, _) in &repack {
        let entries = repo.index().blobs_in_pack(pack, true)?;
        let bytes = repo.storage().read(&pack_path(pack))?;
        for e in entries {
            let sealed = copy_verified(repo, pack, &bytes, &e)?;
            report.bytes_repacked += sealed.len() as u64;
            if let Some(batch) = packer.add(e.blob_type, e.id, e.raw_length, sealed, target) {
                flush(batch, &mut report, &mut written)?;
            }
        }
    }
    if let Some(batch) = packer.take() {
        flush(batch, &mut report, &mut written)?;
    }

    // forget, then delete, the old packs
    let mut gone: Vec<PackId> = delete;
    gone.extend(repack.iter().map(|(p, _)| *p));
    repo.check_lease()?;
    repo.index().remove_packs(&gone)?;
    for p in &gone {
        repo.check_lease()?;
        match repo.storage().remove(&pack_path(p)) {
            Err(e) if e.kind() != crate::error::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    report.bytes_freed = removed_bytes.saturating_sub(written);
    // temp files of writes that were killed (layout.md): an hour old at
    // least, so that no write of a process without a lock (init, key add)
    // is cut
    report.temp_files_removed = repo
        .storage()
        .remove_stale_tmp(std::time::Duration::from_secs(3600))?;
    Ok(report)
}

/// Where a pack's blob data ends. The index knows it from its blobs' rows,
/// unless the pack holds copies of blobs the index locates elsewhere (no row
/// points at them): then its header says, and copies stored after the last
/// indexed blob count as unused too (else no prune would ever remove them).
/// Such packs are rare (two backups that stored the same new chunk at once),
/// so reading their headers costs little.
fn data_len(repo: &Repo, u: &crate::index::PackUsage) -> Result<u64> {
    if u.indexed_blobs >= u.blobs {
        return Ok(u.data_len);
    }
    let (_, entries) = repo.read_pack_header(&u.pack)?;
    Ok(entries.iter().map(|e| e.length as u64).sum())
}

/// A live blob's sealed bytes from a pack being repacked, after checking
/// that they open: damage is never copied into a new pack.
fn copy_verified(repo: &Repo, pack: &PackId, bytes: &[u8], e: &PackEntry) -> Result<Vec<u8>> {
    let end = e.offset as usize + e.length as usize;
    let sealed = bytes.get(e.offset as usize..end).ok_or_else(|| {
        Error::corrupt(format!("pack {pack} is shorter than its index says"))
            .with_hint("run `coffre scrub --all`; prune refuses to run on a damaged repository")
    })?;
    let mut plain = Vec::new();
    repo.open_blob_into(e.blob_type, &e.id, sealed, e.raw_length, &mut plain)
        .map_err(|err| {
            Error::corrupt(format!(
                "{} {} in pack {pack}: {}",
                e.blob_type.name(),
                e.id,
                err.message()
            ))
            .with_hint("run `coffre scrub --all`; prune refuses to run on a damaged repository")
        })?;
    Ok(sealed.to_vec())
}

/// Put every blob some snapshot references into the live set.
fn mark(repo: &Repo, report: &mut PruneReport) -> Result<()> {
    let reader = repo.index_reader()?;
    repo.index().live_reset()?;
    // one transaction for the whole live set: it lives in a temporary table,
    // so this locks nothing other processes read
    repo.index().live_begin()?;
    let marked = mark_all(repo, &reader, report);
    repo.index().live_end(marked.is_ok())?;
    marked?;
    let missing = repo.index().live_missing(5)?;
    if !missing.is_empty() {
        return Err(Error::corrupt(format!(
            "snapshots reference {} blob(s) that no pack holds, e.g. {}",
            if missing.len() == 5 {
                "5 or more"
            } else {
                "some"
            },
            missing[0]
        ))
        .with_hint(
            "run `coffre scrub --all` to see the damage; prune refuses to delete anything",
        ));
    }
    report.live_blobs = repo.index().live_count()?;
    Ok(())
}

fn mark_all(repo: &Repo, reader: &Index, report: &mut PruneReport) -> Result<()> {
    // the snapshot files themselves, not the index's table: a listing or
    // read error stops prune, it is never "no snapshots"
    let mut ids = Vec::new();
    for name in repo.storage().list(SNAPSHOTS)? {
        if let Ok(id) = crate::format::SnapshotId::from_hex(&name) {
            ids.push(id);
        }
    }
    for id in ids {
        let snap = repo.load_snapshot(&id).map_err(|e| {
            e.context(format!("snapshot {id}"))
                .with_hint("prune refuses to run while a snapshot cannot be read")
        })?;
        report.snapshots += 1;
        for e in &snap.entries {
            let refuse = |err: Error| err.context(format!("snapshot {} entry {}", id, e.name));
            mark_content(repo, reader, &e.content()).map_err(refuse)?;
            if let Some(t) = &e.tree {
                mark_tree(repo, reader, t).map_err(refuse)?;
            }
        }
    }
    Ok(())
}

fn mark_content(repo: &Repo, reader: &Index, c: &Content) -> Result<()> {
    for id in &c.chunks {
        repo.index().live_add(id)?;
    }
    for list in &c.lists {
        if repo.index().live_add(list)? {
            let bytes = repo.read_blob(reader, ObjectType::ChunkList, list)?;
            for id in chunklist::decode(&bytes)? {
                repo.index().live_add(&id)?;
            }
        }
    }
    Ok(())
}

fn mark_tree(repo: &Repo, reader: &Index, id: &BlobId) -> Result<()> {
    // a tree already marked was walked whole: its subtrees too
    if !repo.index().live_add(id)? {
        return Ok(());
    }
    let tree = Tree::decode(&repo.read_blob(reader, ObjectType::Tree, id)?)?;
    for node in &tree.nodes {
        mark_content(repo, reader, &node.content())?;
        if let Some(sub) = &node.subtree {
            mark_tree(repo, reader, sub)?;
        }
    }
    Ok(())
}

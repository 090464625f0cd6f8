//! `check`: the repository's structure, without reading data chunks.
//!
//! Key files parse; every pack the index names exists with its recorded
//! size, its header opens and agrees with the index, and every pack file is
//! indexed; every snapshot decodes; every tree and chunk list a snapshot
//! reaches opens and decodes, and every chunk they name is indexed. Each
//! problem names the object and the snapshots and entries it affects.
//!
//! Trees and chunk lists shared between snapshots are opened once: the
//! clean ones are remembered in the index's on-disk set (as prune's live
//! set), the damaged ones in memory with what is wrong below them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::error::{ErrorKind, Result};
use crate::format::chunklist::{self, Content};
use crate::format::tree::Tree;
use crate::format::{BlobId, ObjectType, PackId, SnapshotId};
use crate::index::Index;
use crate::repo::{KEYS, Repo, SNAPSHOTS, pack_path};

/// The damage a scrub found — damaged packs and blobs — as objects with
/// the snapshot entries each affects (damage no snapshot reaches is listed
/// too, affecting nothing).
pub fn affected(
    repo: &Repo,
    bad_packs: &HashMap<PackId, String>,
    bad_blobs: &HashMap<BlobId, (ObjectType, String)>,
) -> Result<Vec<Damage>> {
    let mut found = Findings::default();
    for (p, why) in bad_packs {
        found.add(format!("pack {p}"), why.clone(), None);
    }
    for (id, (ty, why)) in bad_blobs {
        found.add(format!("{} {id}", ty.name()), why.clone(), None);
    }
    let mut report = CheckReport::default();
    check_snapshots(repo, bad_packs, bad_blobs, &mut report, &mut found)?;
    Ok(found.into_damage())
}

/// What a pack the index names but the storage lacks "is".
const MISSING: &str = "is missing";

/// One damaged or missing object.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Damage {
    /// "pack 1a2b…", "tree 3c4d…", "snapshot 5e6f…", "key file …"
    pub object: String,
    pub problem: String,
    /// "snapshot 5e6f… entry postgres/app", one per affected entry.
    pub affects: Vec<String>,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct CheckReport {
    pub keys: u64,
    pub packs: u64,
    pub snapshots: u64,
    pub trees: u64,
    pub lists: u64,
    pub chunks: u64,
    pub damage: Vec<Damage>,
}

/// What is wrong with an object, and which entries it affects.
#[derive(Default)]
struct Findings {
    by_object: BTreeMap<String, (String, BTreeSet<String>)>,
    /// Per snapshot, its damaged entries and the first problem of each.
    by_entry: BTreeMap<SnapshotId, BTreeMap<String, String>>,
    /// Snapshot objects that do not load, and why.
    unreadable: BTreeMap<SnapshotId, String>,
}

/// The snapshots `repair snapshots` has to deal with.
#[derive(Debug, Default)]
pub struct DamagedSnapshots {
    /// Per snapshot, its damaged entries and what is wrong below each.
    pub entries: BTreeMap<SnapshotId, BTreeMap<String, String>>,
    /// Snapshot objects that cannot be read at all.
    pub unreadable: BTreeMap<SnapshotId, String>,
    /// Packs the index names that the storage lacks.
    pub missing_packs: Vec<PackId>,
}

/// Every snapshot entry that cannot be restored whole, from the same walk
/// as `check` (no data chunks are read: lost and unindexed data, damaged
/// packs, trees and chunk lists).
pub fn damaged_snapshots(repo: &Repo) -> Result<DamagedSnapshots> {
    let mut report = CheckReport::default();
    let mut found = Findings::default();
    let bad_packs = check_packs(repo, &mut report, &mut found)?;
    check_snapshots(repo, &bad_packs, &HashMap::new(), &mut report, &mut found)?;
    let mut missing_packs: Vec<PackId> = bad_packs
        .iter()
        .filter(|(_, why)| why.as_str() == MISSING)
        .map(|(p, _)| *p)
        .collect();
    missing_packs.sort();
    Ok(DamagedSnapshots {
        entries: found.by_entry,
        unreadable: found.unreadable,
        missing_packs,
    })
}

impl Findings {
    fn into_damage(self) -> Vec<Damage> {
        self.by_object
            .into_iter()
            .map(|(object, (problem, affects))| Damage {
                object,
                problem,
                affects: affects.into_iter().collect(),
            })
            .collect()
    }

    fn add(&mut self, object: String, problem: String, affects: Option<String>) {
        let e = self
            .by_object
            .entry(object)
            .or_insert_with(|| (problem, BTreeSet::new()));
        if let Some(a) = affects {
            e.1.insert(a);
        }
    }
}

pub fn check(repo: &Repo) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    let mut found = Findings::default();
    check_keys(repo, &mut report, &mut found)?;
    let bad_packs = check_packs(repo, &mut report, &mut found)?;
    check_snapshots(repo, &bad_packs, &HashMap::new(), &mut report, &mut found)?;
    report.damage = found.into_damage();
    Ok(report)
}

fn check_keys(repo: &Repo, report: &mut CheckReport, found: &mut Findings) -> Result<()> {
    for name in repo.storage().list(KEYS)? {
        report.keys += 1;
        let shown = crate::format::label::shown(&name);
        let parsed = repo
            .storage()
            .read(&format!("{KEYS}/{name}"))
            .and_then(|b| crate::format::keyfile::KeyFile::parse(&b));
        match parsed {
            Ok(kf) if kf.id == name => {}
            Ok(kf) => found.add(
                format!("key file {shown}"),
                format!("names another key id ({})", kf.id),
                None,
            ),
            Err(e) => found.add(format!("key file {shown}"), e.message().to_string(), None),
        }
    }
    Ok(())
}

/// Check the packs; returns the damaged ones with what is wrong.
fn check_packs(
    repo: &Repo,
    report: &mut CheckReport,
    found: &mut Findings,
) -> Result<HashMap<PackId, String>> {
    let mut bad = HashMap::new();
    let indexed = repo.index().packs()?;
    let on_disk: std::collections::HashSet<PackId> = repo.pack_files()?.into_iter().collect();
    report.packs = on_disk.len() as u64;
    let known: std::collections::HashSet<PackId> = indexed.iter().map(|(p, _)| *p).collect();
    for p in on_disk.iter().filter(|p| !known.contains(p)) {
        found.add(
            format!("pack {p}"),
            "is not in the index (run `coffre repair index`)".into(),
            None,
        );
    }
    for (pack, size) in &indexed {
        let object = format!("pack {pack}");
        let real = match repo.storage().size(&pack_path(pack)) {
            Ok(s) => s,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                bad.insert(*pack, MISSING.to_string());
                continue;
            }
            Err(e) => return Err(e),
        };
        if real != *size {
            bad.insert(
                *pack,
                format!("is {real} bytes, the index says {size} (truncated or replaced)"),
            );
            continue;
        }
        let header = match repo.read_pack_header(pack) {
            Ok((_, entries)) => entries,
            Err(e) if e.kind() == ErrorKind::Corrupt => {
                bad.insert(*pack, format!("header: {}", e.message()));
                continue;
            }
            Err(e) => return Err(e),
        };
        let in_header: HashMap<BlobId, _> = header.iter().map(|e| (e.id, *e)).collect();
        for e in repo.index().blobs_in_pack(pack, false)? {
            match in_header.get(&e.id) {
                Some(h) if h.offset == e.offset && h.length == e.length => {}
                _ => {
                    found.add(
                        object.clone(),
                        format!(
                            "the index places {} {} in it, its header does not \
                             (run `coffre repair index`)",
                            e.blob_type.name(),
                            e.id
                        ),
                        None,
                    );
                    break;
                }
            }
        }
    }
    // every damaged pack is reported, also when no snapshot needs it
    for (p, problem) in &bad {
        found.add(format!("pack {p}"), problem.clone(), None);
    }
    Ok(bad)
}

/// Where a walk is: which snapshot entry reached the object.
struct Walk<'a> {
    repo: &'a Repo,
    reader: Index,
    bad_packs: &'a HashMap<PackId, String>,
    /// Blobs found damaged by a scrub: (kind, what).
    bad_blobs: &'a HashMap<BlobId, (ObjectType, String)>,
    /// Trees and lists found damaged (or with damage below), and what.
    bad: HashMap<BlobId, Vec<(String, String)>>,
}

fn check_snapshots(
    repo: &Repo,
    bad_packs: &HashMap<PackId, String>,
    bad_blobs: &HashMap<BlobId, (ObjectType, String)>,
    report: &mut CheckReport,
    found: &mut Findings,
) -> Result<()> {
    let mut w = Walk {
        repo,
        reader: repo.index_reader()?,
        bad_packs,
        bad_blobs,
        bad: HashMap::new(),
    };
    repo.index().live_reset()?;
    repo.index().live_begin()?;
    let walked = walk_all(&mut w, report, found);
    repo.index().live_end(walked.is_ok())?;
    walked
}

fn walk_all(w: &mut Walk<'_>, report: &mut CheckReport, found: &mut Findings) -> Result<()> {
    let mut ids = Vec::new();
    for name in w.repo.storage().list(SNAPSHOTS)? {
        if let Ok(id) = SnapshotId::from_hex(&name) {
            ids.push(id);
        }
    }
    for id in ids {
        report.snapshots += 1;
        let snap = match w.repo.load_snapshot(&id) {
            Ok(s) => s,
            Err(e) if matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::NotFound) => {
                found.add(
                    format!("snapshot {id}"),
                    e.message().to_string(),
                    Some(format!("snapshot {id} (all entries)")),
                );
                found.unreadable.insert(id, e.message().to_string());
                continue;
            }
            Err(e) => return Err(e),
        };
        for e in &snap.entries {
            let at = format!("snapshot {} entry {}", id.to_hex(), e.name);
            let mut problems = content(w, report, &e.content())?;
            if let Some(t) = &e.tree {
                problems.extend(tree(w, report, t)?);
            }
            if let Some((object, problem)) = problems.first() {
                found
                    .by_entry
                    .entry(id)
                    .or_default()
                    .insert(e.name.clone(), format!("{object} {problem}"));
            }
            for (object, problem) in problems {
                found.add(object, problem, Some(at.clone()));
            }
        }
    }
    Ok(())
}

impl Walk<'_> {
    /// Why blob `id` cannot be had: found damaged, not indexed, or in a
    /// damaged pack.
    fn unavailable(&self, ty: ObjectType, id: &BlobId) -> Result<Option<(String, String)>> {
        let kind = ty.name();
        if let Some((t, why)) = self.bad_blobs.get(id) {
            return Ok(Some((format!("{} {id}", t.name()), why.clone())));
        }
        Ok(match self.reader.lookup(id)? {
            None => Some((format!("{kind} {id}"), "is in no pack".to_string())),
            Some(loc) => self
                .bad_packs
                .get(&loc.pack)
                .map(|why| (format!("pack {}", loc.pack), why.clone())),
        })
    }

    /// Read a tree or chunk list, or say why it cannot be.
    fn read(
        &self,
        ty: ObjectType,
        id: &BlobId,
    ) -> Result<std::result::Result<Vec<u8>, (String, String)>> {
        let kind = ty.name();
        if let Some(p) = self.unavailable(ty, id)? {
            return Ok(Err(p));
        }
        match self.repo.read_blob(&self.reader, ty, id) {
            Ok(b) => Ok(Ok(b)),
            Err(e) if matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::NotFound) => {
                Ok(Err((format!("{kind} {id}"), e.message().to_string())))
            }
            Err(e) => Err(e),
        }
    }
}

/// Problems (object, what) in a content: unindexed chunks, bad lists.
fn content(
    w: &mut Walk<'_>,
    report: &mut CheckReport,
    c: &Content,
) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for id in &c.chunks {
        report.chunks += 1;
        out.extend(w.unavailable(ObjectType::Data, id)?);
    }
    for list in &c.lists {
        if let Some(p) = w.bad.get(list) {
            out.extend(p.iter().cloned());
            continue;
        }
        if !w.repo.index().live_add(list)? {
            continue;
        }
        report.lists += 1;
        let mut problems = Vec::new();
        match w.read(ObjectType::ChunkList, list)? {
            Ok(bytes) => match chunklist::decode(&bytes) {
                Ok(ids) => {
                    for id in ids {
                        report.chunks += 1;
                        problems.extend(w.unavailable(ObjectType::Data, &id)?);
                    }
                }
                Err(e) => problems.push((format!("chunk list {list}"), e.message().to_string())),
            },
            Err(p) => problems.push(p),
        }
        if !problems.is_empty() {
            w.bad.insert(*list, problems.clone());
            out.extend(problems);
        }
    }
    Ok(out)
}

fn tree(w: &mut Walk<'_>, report: &mut CheckReport, id: &BlobId) -> Result<Vec<(String, String)>> {
    if let Some(p) = w.bad.get(id) {
        return Ok(p.clone());
    }
    if !w.repo.index().live_add(id)? {
        return Ok(Vec::new());
    }
    report.trees += 1;
    let mut problems = Vec::new();
    match w.read(ObjectType::Tree, id)?.map(|b| Tree::decode(&b)) {
        Ok(Ok(t)) => {
            for node in &t.nodes {
                problems.extend(content(w, report, &node.content())?);
                if let Some(sub) = &node.subtree {
                    problems.extend(tree(w, report, sub)?);
                }
            }
        }
        Ok(Err(e)) => problems.push((format!("tree {id}"), e.message().to_string())),
        Err(p) => problems.push(p),
    }
    if !problems.is_empty() {
        w.bad.insert(*id, problems.clone());
    }
    Ok(problems)
}

//! Sync: copy a repository's objects to another storage (format-spec/sync.md).
//!
//! Only ciphertext moves: objects are copied byte for byte, never opened.
//! Order makes the copy consistent at every moment: config and keys first,
//! then the packs the copy lacks, and only then the snapshots that
//! reference them. Each copied object is read back and compared (size and
//! BLAKE3 of the bytes). Nothing is ever deleted on the copy. A local
//! high-water mark of the snapshots the copy held after the last sync
//! catches a copy that was rolled back or lost snapshots.

use std::collections::BTreeSet;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::pipeline::Progress;
use crate::repo::{CONFIG, KEYS, PACKS, Repo, SNAPSHOTS};
use crate::storage::Storage;

/// What a sync did.
#[derive(Debug, Default, Serialize)]
pub struct SyncReport {
    pub objects_sent: u64,
    pub bytes_sent: u64,
    /// Objects the copy already had.
    pub objects_present: u64,
    pub snapshots_sent: u64,
    /// Snapshots the copy holds after the sync.
    pub snapshots_remote: u64,
}

/// What the copy held after the last sync (kept locally, never synced).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct HighWater {
    pub target: String,
    pub snapshots: BTreeSet<String>,
}

/// Files of `dir` (one level) or of its two-hex-digit subdirectories (packs).
fn names(storage: &dyn Storage, dir: &str, nested: bool) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for n in storage.list(dir)? {
        if nested {
            for m in storage.list(&format!("{dir}/{n}"))? {
                out.push(format!("{dir}/{n}/{m}"));
            }
        } else {
            out.push(format!("{dir}/{n}"));
        }
    }
    Ok(out)
}

/// Copy one object and read it back; the bytes sent.
fn copy(src: &dyn Storage, dst: &dyn Storage, path: &str) -> Result<u64> {
    let bytes = src.read(path)?;
    dst.write_atomic(path, &[&bytes])?;
    let back = dst.read(path)?;
    if back.len() != bytes.len() || blake3::hash(&back) != blake3::hash(&bytes) {
        return Err(Error::corrupt(format!(
            "{path} reads back differently from the copy ({} of {} bytes)",
            back.len(),
            bytes.len()
        ))
        .with_hint("check the target storage; run the sync again"));
    }
    Ok(bytes.len() as u64)
}

/// Copy what `dst` lacks. `high_water`: what the copy held after the last
/// sync; a copy lacking any of those snapshots is refused.
pub fn sync(
    repo: &Repo,
    dst: &dyn Storage,
    high_water: &HighWater,
    jobs: usize,
    progress: &dyn Progress,
) -> Result<(SyncReport, HighWater)> {
    let src = repo.storage();
    let mut report = SyncReport::default();

    // the copy must be this repository (or empty)
    match dst.read(CONFIG) {
        Ok(theirs) => {
            let ours = src.read(CONFIG)?;
            if theirs != ours {
                return Err(Error::usage(
                    "the target holds another repository (its config differs)",
                )
                .with_hint("sync to an empty place, or to a copy of this repository"));
            }
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let remote_snaps: BTreeSet<String> = names(dst, SNAPSHOTS, false)?.into_iter().collect();
    let lost: Vec<&String> = high_water
        .snapshots
        .iter()
        .filter(|s| !remote_snaps.contains(&format!("{SNAPSHOTS}/{s}")))
        .collect();
    if !lost.is_empty() {
        return Err(Error::corrupt(format!(
            "the copy lacks {} snapshot(s) it held after the last sync (e.g. {}): it was \
             rolled back or snapshots were removed behind coffre's back",
            lost.len(),
            lost[0]
        ))
        .with_hint(
            "find out what happened to the copy before trusting it; `coffre sync \
             --accept-remote-state` syncs anyway (and sends the missing snapshots again)",
        ));
    }

    // config and keys first (small), then packs, then snapshots
    let mut plan: Vec<Vec<String>> = Vec::new();
    let mut first = vec![CONFIG.to_string()];
    first.extend(names(src, KEYS, false)?);
    plan.push(first);
    plan.push(names(src, PACKS, true)?);
    plan.push(names(src, SNAPSHOTS, false)?);
    for (step, paths) in plan.into_iter().enumerate() {
        let have: BTreeSet<String> = match step {
            0 => {
                let mut h: BTreeSet<String> = names(dst, KEYS, false)?.into_iter().collect();
                if dst.exists(CONFIG)? {
                    h.insert(CONFIG.to_string());
                }
                h
            }
            1 => names(dst, PACKS, true)?.into_iter().collect(),
            _ => remote_snaps.clone(),
        };
        let todo: Vec<String> = paths.into_iter().filter(|p| !have.contains(p)).collect();
        report.objects_present += have.len() as u64;
        copy_all(src, dst, &todo, jobs, progress, &mut report)?;
        if step == 2 {
            report.snapshots_sent = todo.len() as u64;
        }
    }
    let after: BTreeSet<String> = names(dst, SNAPSHOTS, false)?
        .into_iter()
        .filter_map(|p| p.strip_prefix(&format!("{SNAPSHOTS}/")).map(str::to_string))
        .collect();
    report.snapshots_remote = after.len() as u64;
    Ok((
        report,
        HighWater {
            target: high_water.target.clone(),
            snapshots: after,
        },
    ))
}

/// Copy `paths` with `jobs` threads; memory is bounded by `jobs` objects.
fn copy_all(
    src: &dyn Storage,
    dst: &dyn Storage,
    paths: &[String],
    jobs: usize,
    progress: &dyn Progress,
    report: &mut SyncReport,
) -> Result<()> {
    let next = Mutex::new(paths.iter());
    let totals = Mutex::new((0u64, 0u64));
    let failed: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| {
                loop {
                    if failed.lock().unwrap().is_some() {
                        return;
                    }
                    let Some(path) = next.lock().unwrap().next() else {
                        return;
                    };
                    match copy(src, dst, path) {
                        Ok(n) => {
                            progress.bytes(n);
                            let mut t = totals.lock().unwrap();
                            t.0 += 1;
                            t.1 += n;
                        }
                        Err(e) => {
                            *failed.lock().unwrap() = Some(e.context(format!("copying {path}")));
                            return;
                        }
                    }
                }
            });
        }
    });
    let (objects, bytes) = *totals.lock().unwrap();
    report.objects_sent += objects;
    report.bytes_sent += bytes;
    match failed.into_inner().unwrap() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

//! Sync: copy a repository's objects to another storage (format-spec/sync.md).
//!
//! Only ciphertext moves: objects are copied byte for byte, never opened.
//! Order makes the copy consistent at every moment: config and keys first,
//! then the packs the copy lacks, and only then the snapshots that
//! reference them. Each copied object is read back and compared (size and
//! BLAKE3 of the bytes). Nothing is deleted on the copy unless asked
//! (`--prune-remote`), and then only what this repository's own forget and
//! prune removed. A local high-water mark of the snapshots the copy held
//! after the last sync catches a copy that was rolled back or lost
//! snapshots.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::format::PackId;
use crate::pipeline::Progress;
use crate::repo::{CONFIG, KEYS, PACKS, Repo, SNAPSHOTS};
use crate::storage::{Storage, for_each_concurrently};

/// How a sync runs.
#[derive(Clone, Debug)]
pub struct SyncOptions {
    /// Objects copied at once.
    pub jobs: usize,
    /// Bytes per second sent at most (averaged over objects).
    pub bwlimit: Option<u64>,
    /// Share (0..=1) of the objects already on the copy to read back and
    /// compare with ours.
    pub verify: f64,
    /// Delete on the copy the snapshots this repository forgot and the
    /// packs its prune deleted.
    pub prune_remote: bool,
}

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
    /// Objects already on the copy that were read back and compared.
    pub objects_verified: u64,
    pub bytes_verified: u64,
    /// Objects found damaged or missing on the copy, and sent again.
    pub objects_repaired: Vec<String>,
    /// Snapshots on the copy that this repository never sent (another
    /// writer's, or injected there).
    pub snapshots_foreign: Vec<String>,
    pub snapshots_deleted: u64,
    pub packs_deleted: u64,
    pub seconds: f64,
}

/// What the copy held after the last sync (kept locally, never synced).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct HighWater {
    pub target: String,
    pub snapshots: BTreeSet<String>,
}

/// Paths of the objects under `dir` (`dir/name`, or `dir/xx/name` for packs).
fn names(storage: &dyn Storage, dir: &str) -> Result<BTreeSet<String>> {
    Ok(storage
        .list_files(dir)?
        .into_iter()
        .map(|n| format!("{dir}/{n}"))
        .collect())
}

/// A bandwidth cap shared by the copying threads: each object reserves
/// its bytes' worth of time and waits for its turn.
struct Limiter {
    rate: Option<u64>,
    next: Mutex<Instant>,
}

impl Limiter {
    fn new(rate: Option<u64>) -> Limiter {
        Limiter {
            rate: rate.filter(|r| *r > 0),
            next: Mutex::new(Instant::now()),
        }
    }

    fn take(&self, bytes: u64) {
        let Some(rate) = self.rate else { return };
        let start = {
            let mut next = self.next.lock().unwrap();
            let now = Instant::now();
            let start = (*next).max(now);
            *next = start + Duration::from_secs_f64(bytes as f64 / rate as f64);
            start
        };
        let now = Instant::now();
        if start > now {
            std::thread::sleep(start - now);
        }
    }
}

/// Copy one object and read it back; the bytes sent.
fn copy(src: &dyn Storage, dst: &dyn Storage, path: &str, limiter: &Limiter) -> Result<u64> {
    let bytes = src.read(path)?;
    let (len, hash) = (bytes.len(), blake3::hash(&bytes));
    limiter.take(len as u64);
    // handed over, so that one object is in memory at a time per job
    dst.write_owned(path, vec![bytes])?;
    let back = dst.read(path)?;
    if back.len() != len || blake3::hash(&back) != hash {
        return Err(Error::corrupt(format!(
            "{path} reads back differently from the copy ({} of {len} bytes)",
            back.len(),
        ))
        .with_hint("check the target storage; run the sync again"));
    }
    Ok(len as u64)
}

/// Read an object on the copy and compare it with ours. `Ok(false)`: it
/// is missing or differs.
fn same_on_copy(src: &dyn Storage, dst: &dyn Storage, path: &str) -> Result<(bool, u64)> {
    // one object in memory at a time
    let ours = {
        let b = src.read(path)?;
        (b.len(), blake3::hash(&b))
    };
    let theirs = match dst.read(path) {
        Ok(b) => (b.len(), blake3::hash(&b)),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok((false, 0)),
        Err(e) => return Err(e),
    };
    Ok((theirs == ours, theirs.0 as u64))
}

/// Copy what `dst` lacks. `high_water`: what the copy held after the last
/// sync; a copy lacking any of those snapshots is refused.
pub fn sync(
    repo: &Repo,
    dst: &dyn Storage,
    high_water: &HighWater,
    opts: &SyncOptions,
    progress: &dyn Progress,
) -> Result<(SyncReport, HighWater)> {
    let started = Instant::now();
    let src = repo.storage();
    let mut report = SyncReport::default();

    // the copy must be this repository (or empty)
    let copy_has_config = match dst.read(CONFIG) {
        Ok(theirs) => {
            let ours = src.read(CONFIG)?;
            if theirs != ours {
                return Err(Error::usage(
                    "the target holds another repository (its config differs)",
                )
                .with_hint("sync to an empty place, or to a copy of this repository"));
            }
            true
        }
        Err(e) if e.kind() == ErrorKind::NotFound => false,
        Err(e) => return Err(e),
    };
    let remote_snaps = names(dst, SNAPSHOTS)?;
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

    // what each side holds
    let mut ours_first = BTreeSet::from([CONFIG.to_string()]);
    ours_first.extend(names(src, KEYS)?);
    let mut theirs_first = names(dst, KEYS)?;
    if copy_has_config {
        theirs_first.insert(CONFIG.to_string());
    }
    let ours_packs = names(src, PACKS)?;
    let theirs_packs = names(dst, PACKS)?;
    let ours_snaps = names(src, SNAPSHOTS)?;
    let steps = [
        (ours_first, theirs_first),
        (ours_packs, theirs_packs),
        (ours_snaps, remote_snaps.clone()),
    ];

    // a sample of what is there is read back first: damaged or missing
    // objects join the objects to send
    let mut resend: BTreeSet<String> = BTreeSet::new();
    if opts.verify > 0.0 {
        let present: Vec<&String> = steps
            .iter()
            .flat_map(|(ours, theirs)| ours.intersection(theirs))
            .collect();
        let sample = sample(&present, opts.verify);
        let bad = Mutex::new(Vec::new());
        let verified = Mutex::new((0u64, 0u64));
        for_each_concurrently(&sample, opts.jobs, |path| {
            let (same, n) = same_on_copy(src, dst, path)?;
            let mut v = verified.lock().unwrap();
            v.0 += 1;
            v.1 += n;
            if !same {
                progress.warn(&format!(
                    "{path} is damaged or missing on the copy; sending it again"
                ));
                bad.lock().unwrap().push(path.to_string());
            }
            Ok(())
        })?;
        (report.objects_verified, report.bytes_verified) = verified.into_inner().unwrap();
        resend = bad.into_inner().unwrap().into_iter().collect();
        report.objects_repaired = resend.iter().cloned().collect();
    }

    let todo: Vec<Vec<String>> = steps
        .iter()
        .map(|(ours, theirs)| {
            ours.iter()
                .filter(|p| !theirs.contains(*p) || resend.contains(*p))
                .cloned()
                .collect()
        })
        .collect();
    for (i, (ours, _)) in steps.iter().enumerate() {
        report.objects_present += (ours.len() - todo[i].len()) as u64;
    }
    let mut total = 0;
    for p in todo.iter().flatten() {
        total += src.size(p)?;
    }
    progress.total(total);
    let count = todo.iter().map(Vec::len).sum::<usize>() as u64;
    let limiter = Limiter::new(opts.bwlimit);
    let sent = Mutex::new((0u64, 0u64));
    for (step, paths) in todo.iter().enumerate() {
        for_each_concurrently(paths, opts.jobs, |path| {
            let n =
                copy(src, dst, path, &limiter).map_err(|e| e.context(format!("copying {path}")))?;
            progress.bytes(n);
            let mut s = sent.lock().unwrap();
            s.0 += 1;
            s.1 += n;
            progress.objects(s.0, count);
            Ok(())
        })?;
        if step == 2 {
            report.snapshots_sent = paths.len() as u64;
        }
    }
    (report.objects_sent, report.bytes_sent) = sent.into_inner().unwrap();

    if opts.prune_remote {
        prune_remote(repo, dst, high_water, &steps[1].0, &steps[2].0, &mut report)?;
    }

    let after: BTreeSet<String> = names(dst, SNAPSHOTS)?
        .into_iter()
        .filter_map(|p| p.strip_prefix(&format!("{SNAPSHOTS}/")).map(str::to_string))
        .collect();
    report.snapshots_foreign = after
        .iter()
        .filter(|id| {
            !high_water.snapshots.contains(*id)
                && !steps[2].0.contains(&format!("{SNAPSHOTS}/{id}"))
        })
        .cloned()
        .collect();
    if let Some(first) = report.snapshots_foreign.first() {
        progress.warn(&format!(
            "the copy holds {} snapshot(s) this repository never sent (e.g. {first}): another \
             machine writes there, or they were put there behind coffre's back",
            report.snapshots_foreign.len()
        ));
    }
    report.snapshots_remote = after.len() as u64;
    report.seconds = started.elapsed().as_secs_f64();
    Ok((
        report,
        HighWater {
            target: high_water.target.clone(),
            snapshots: after,
        },
    ))
}

/// Apply this repository's forget and prune decisions to the copy:
/// snapshots the copy held after the last sync that this repository has
/// since forgotten, then packs this repository's prune deleted. Refused
/// when the copy holds snapshots this repository never had (another
/// writer's): their data could live in those packs.
fn prune_remote(
    repo: &Repo,
    dst: &dyn Storage,
    high_water: &HighWater,
    ours_packs: &BTreeSet<String>,
    ours_snaps: &BTreeSet<String>,
    report: &mut SyncReport,
) -> Result<()> {
    let theirs = names(dst, SNAPSHOTS)?;
    let mut forgotten = Vec::new();
    for path in theirs.difference(ours_snaps) {
        let id = path.strip_prefix(&format!("{SNAPSHOTS}/")).unwrap_or(path);
        if high_water.snapshots.contains(id) {
            forgotten.push(path.clone());
        } else {
            return Err(Error::usage(format!(
                "the copy holds snapshot {id}, which this repository never sent: another \
                 machine writes there, and its data may live in packs pruned here"
            ))
            .with_hint(
                "prune the copy itself (`coffre prune --repo TARGET`) instead of --prune-remote",
            ));
        }
    }
    // snapshots first: the copy stays consistent at every moment
    for path in &forgotten {
        dst.remove(path)?;
        report.snapshots_deleted += 1;
    }
    for path in names(dst, PACKS)?.difference(ours_packs) {
        let Some(id) = path
            .rsplit('/')
            .next()
            .and_then(|n| PackId::from_hex(n).ok())
        else {
            continue;
        };
        if repo.index().was_deleted(&id)? {
            dst.remove(path)?;
            report.packs_deleted += 1;
        }
    }
    dst.remove_stale_tmp(Duration::from_secs(3600))?;
    Ok(())
}

/// Every `1/fraction`-th object, from a random starting point (all of them
/// for 1.0, at least one when there are any).
fn sample<'a>(items: &[&'a String], fraction: f64) -> Vec<&'a String> {
    if items.is_empty() {
        return Vec::new();
    }
    let want = ((items.len() as f64 * fraction).ceil() as usize).clamp(1, items.len());
    let start = u64::from_le_bytes(crate::crypto::random_array()) as usize % items.len();
    (0..want)
        .map(|i| items[(start + i * items.len() / want) % items.len()])
        .collect()
}

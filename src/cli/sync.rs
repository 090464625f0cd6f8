//! `coffre sync [--to LOCATION]`: an encrypted copy of the repository
//! elsewhere (format-spec/sync.md).

use super::args::{Global, SyncArgs};
use super::progress::Bar;
use super::{open_locked, print_json};
use crate::error::{Error, ErrorKind, Result};
use crate::pipeline::{HighWater, SyncOptions, SyncReport};
use crate::plan::{Plan, SyncTarget};
use crate::repo::Repo;
use crate::storage::Location;

/// Where the high-water mark of a target is kept, in the local repository
/// (never synced: sync copies config, keys, packs and snapshots only).
fn high_water_path(target: &str) -> String {
    format!(
        "sync/{}.json",
        &blake3::hash(target.as_bytes()).to_hex()[..32]
    )
}

/// One target with its settings resolved (command line over plan).
pub struct Target {
    pub location: Location,
    pub opts: SyncOptions,
    pub accept_remote_state: bool,
}

impl Target {
    /// A plan's `[[sync]]` section.
    pub fn from_plan(t: &SyncTarget) -> Result<Target> {
        let bad = |e: String| Error::usage(format!("plan [[sync]] {}: {e}", t.to));
        Ok(Target {
            location: Location::parse(&t.to)?,
            opts: SyncOptions {
                jobs: t.jobs.unwrap_or(4),
                bwlimit: t
                    .bwlimit
                    .as_deref()
                    .map(super::args::parse_size)
                    .transpose()
                    .map_err(bad)?,
                verify: t
                    .verify
                    .as_deref()
                    .map(super::args::parse_share)
                    .transpose()
                    .map_err(bad)?
                    .unwrap_or(0.0),
                prune_remote: false,
            },
            accept_remote_state: false,
        })
    }
}

pub fn run(g: &Global, plan: Option<&Plan>, a: SyncArgs) -> Result<i32> {
    let mut targets = Vec::new();
    match &a.to {
        Some(to) => {
            // a plan target with the same location lends its settings
            let from_plan = plan
                .into_iter()
                .flat_map(|p| &p.sync_targets)
                .find(|t| t.to == *to);
            targets.push(match from_plan {
                Some(t) => Target::from_plan(t)?,
                None => Target::from_plan(&SyncTarget {
                    to: to.clone(),
                    after_backup: false,
                    jobs: None,
                    bwlimit: None,
                    verify: None,
                })?,
            });
        }
        None => {
            for t in plan.into_iter().flat_map(|p| &p.sync_targets) {
                targets.push(Target::from_plan(t)?);
            }
            if targets.is_empty() {
                return Err(Error::usage("sync needs a target").with_hint(
                    "pass --to LOCATION, or name targets in the plan's [[sync]] sections",
                ));
            }
        }
    }
    for t in &mut targets {
        if let Some(j) = a.jobs {
            t.opts.jobs = j;
        }
        if a.bwlimit.is_some() {
            t.opts.bwlimit = a.bwlimit;
        }
        if let Some(v) = a.verify {
            t.opts.verify = v;
        }
        t.opts.prune_remote = a.prune_remote;
        t.accept_remote_state = a.accept_remote_state;
    }
    let repo = open_locked(g, false, "sync")?;
    let mut reports = Vec::new();
    for t in &targets {
        let report = sync_to(g, &repo, t, a.json)?;
        reports.push((t.location.to_string(), report));
    }
    if a.json {
        for (target, report) in reports {
            let mut v = serde_json::to_value(&report).expect("serializes");
            v["target"] = target.into();
            print_json(&v)?;
        }
    }
    Ok(0)
}

/// Sync the open (and locked) repository to one target.
pub fn sync_to(g: &Global, repo: &Repo, t: &Target, json: bool) -> Result<SyncReport> {
    let label = t.location.canonical();
    if label == repo.location().canonical() {
        return Err(Error::usage("the target is this repository"));
    }
    if let Some(p) = t.location.local_path() {
        crate::storage::create_dir_private(p).map_err(|e| Error::io("creating", p, e))?;
    }
    let dst = crate::storage::open(&t.location)?;
    // readers and writers of the copy see a sync running; a prune there
    // waits (and --prune-remote deletes only under an exclusive lock)
    let _their_lock = crate::repo::lock::RepoLock::acquire(
        dst.clone(),
        t.opts.prune_remote,
        "sync (receiving)",
        g.lock_wait,
    )?;
    let hw_path = high_water_path(&label);
    let high_water = match repo.storage().read(&hw_path) {
        Ok(b) if !t.accept_remote_state => {
            serde_json::from_slice(&b).map_err(|e| Error::corrupt(format!("{hw_path}: {e}")))?
        }
        Ok(_) => HighWater::default(),
        Err(e) if e.kind() == ErrorKind::NotFound => HighWater::default(),
        Err(e) => return Err(e),
    };
    let high_water = HighWater {
        target: label.clone(),
        ..high_water
    };
    let bar = Bar::new(g.quiet || json, None, "sync");
    let result = crate::pipeline::sync(repo, dst.as_ref(), &high_water, &t.opts, &bar);
    bar.finish();
    let (report, after) = result.map_err(|e| e.context(format!("sync to {}", t.location)))?;
    let bytes = serde_json::to_vec_pretty(&after).expect("serializes");
    repo.storage().write_atomic(&hw_path, &[&bytes])?;
    if !json && !g.quiet {
        eprintln!(
            "synced to {}: {} object(s) sent ({}, {:.1} s), {} already there; the copy holds {} \
             snapshot(s){}{}",
            t.location,
            report.objects_sent,
            indicatif::HumanBytes(report.bytes_sent),
            report.seconds,
            report.objects_present,
            report.snapshots_remote,
            if report.objects_verified > 0 {
                format!(
                    "; {} object(s) read back ({}), {} sent again",
                    report.objects_verified,
                    indicatif::HumanBytes(report.bytes_verified),
                    report.objects_repaired.len()
                )
            } else {
                String::new()
            },
            if t.opts.prune_remote {
                format!(
                    "; deleted {} snapshot(s) and {} pack(s) there",
                    report.snapshots_deleted, report.packs_deleted
                )
            } else {
                String::new()
            }
        );
    }
    Ok(report)
}

//! `coffre prune`

use super::args::{Global, PruneArgs, PruneOpts};
use super::{open_locked, print_json};
use crate::error::Result;
use crate::pipeline::{PruneOptions, PruneReport};
use crate::repo::Repo;
use indicatif::HumanBytes;

pub fn run(g: &Global, a: PruneArgs) -> Result<i32> {
    let repo = open_locked(g, true, "prune")?;
    let report = prune(&repo, &a.opts, a.dry_run)?;
    if a.json {
        print_json(&serde_json::to_value(&report).expect("report serializes"))?;
    } else {
        print_report(&report);
    }
    Ok(0)
}

/// Prune with the command-line options (also for `forget --prune`).
pub fn prune(repo: &Repo, o: &PruneOpts, dry_run: bool) -> Result<PruneReport> {
    crate::pipeline::prune(
        repo,
        &PruneOptions {
            max_unused: o.max_unused,
            max_repack: o.max_repack,
            dry_run,
        },
    )
}

pub fn print_report(r: &PruneReport) {
    let would = if r.dry_run { "would " } else { "" };
    eprintln!(
        "{} snapshot(s) reference {} blob(s) in {} pack(s)",
        r.snapshots, r.live_blobs, r.packs
    );
    eprintln!(
        "{would}delete {} unused pack(s), {would}repack {} pack(s) ({} of live data copied into {} new pack(s))",
        r.packs_deleted,
        r.packs_repacked,
        HumanBytes(r.bytes_repacked),
        if r.dry_run {
            "new".to_string()
        } else {
            r.packs_written.to_string()
        }
    );
    eprintln!(
        "{} {}; {} unused left in packs not worth repacking",
        if r.dry_run { "would free" } else { "freed" },
        HumanBytes(r.bytes_freed),
        HumanBytes(r.bytes_unused_left)
    );
}

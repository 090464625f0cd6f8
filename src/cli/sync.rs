//! `coffre sync --to PATH`: an encrypted copy of the repository elsewhere.

use std::path::PathBuf;
use std::sync::Arc;

use super::args::{Global, SyncArgs};
use super::progress::Bar;
use super::{open_locked, print_json};
use crate::error::{Error, ErrorKind, Result};
use crate::pipeline::HighWater;
use crate::storage::{LocalStorage, Storage};

/// Where the high-water mark of a target is kept, in the local repository
/// (never synced: sync copies config, keys, packs and snapshots only).
fn high_water_path(target: &str) -> String {
    format!(
        "sync/{}.json",
        &blake3::hash(target.as_bytes()).to_hex()[..32]
    )
}

pub fn run(g: &Global, a: SyncArgs) -> Result<i32> {
    let repo = open_locked(g, false, "sync")?;
    let target = absolute(&a.to)?;
    if target == absolute(repo.root())? {
        return Err(Error::usage("the target is this repository"));
    }
    let label = target.display().to_string();
    let dst: Arc<dyn Storage> = Arc::new(LocalStorage::new(&target));
    crate::storage::create_dir_private(&target).map_err(|e| Error::io("creating", &target, e))?;
    // readers and writers of the copy see a sync running; a prune there waits
    let _their_lock =
        crate::repo::lock::RepoLock::acquire(dst.clone(), false, "sync (receiving)", g.lock_wait)?;
    let hw_path = high_water_path(&label);
    let high_water = match repo.storage().read(&hw_path) {
        Ok(b) if !a.accept_remote_state => {
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
    let bar = Bar::new(g.quiet || a.json, None, "sync");
    let result = crate::pipeline::sync(&repo, dst.as_ref(), &high_water, a.jobs, &bar);
    bar.finish();
    let (report, after) = result?;
    let bytes = serde_json::to_vec_pretty(&after).expect("serializes");
    repo.storage().write_atomic(&hw_path, &[&bytes])?;
    if a.json {
        print_json(&serde_json::to_value(&report).expect("serializes"))?;
    } else if !g.quiet {
        eprintln!(
            "synced to {label}: {} object(s) sent ({}), {} already there; the copy holds {} \
             snapshot(s)",
            report.objects_sent,
            indicatif::HumanBytes(report.bytes_sent),
            report.objects_present,
            report.snapshots_remote
        );
    }
    Ok(0)
}

fn absolute(p: &std::path::Path) -> Result<PathBuf> {
    std::path::absolute(p).map_err(|e| Error::io("resolving", p, e))
}

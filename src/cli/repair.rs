//! `coffre repair index | snapshots`

use super::args::{Global, RepairSnapshotsArgs};
use super::{open_locked, password, print_json, repo_location};
use crate::error::{Error, ErrorKind, Result};
use crate::format::snapshot::Failure;
use crate::repo::Repo;

/// The tag of a snapshot rewritten without its damaged entries.
pub const REPAIRED: &str = "repaired";

/// `coffre repair index`
pub fn index(g: &Global) -> Result<i32> {
    let location = repo_location(g)?;
    let repo = Repo::open_rebuilding_index(&location, || password::get(g), g.lock_wait)?;
    let packs = repo.index().packs()?.len();
    let snapshots = repo.index().snapshot_ids()?.len();
    eprintln!("rebuilt the index: {packs} pack(s), {snapshots} snapshot(s)");
    Ok(0)
}

/// `coffre repair snapshots [--apply]`: snapshots whose entries reference
/// lost or damaged data are listed; with `--apply` each is rewritten
/// without those entries (recorded as failed, the snapshot marked partial
/// and tagged `repaired`), or forgotten when no entry is left. Never
/// without being asked.
pub fn snapshots(g: &Global, a: RepairSnapshotsArgs) -> Result<i32> {
    let repo = open_locked(g, true, "repair snapshots")?;
    let damaged = crate::pipeline::damaged_snapshots(&repo)?;
    if a.apply && !damaged.missing_packs.is_empty() {
        // new backups must store that data again, not point at it
        repo.index().remove_packs(&damaged.missing_packs)?;
    }
    let mut report = Vec::new();
    for (id, entries) in &damaged.entries {
        let snap = repo.load_snapshot(id)?;
        let left = snap
            .entries
            .iter()
            .filter(|e| !entries.contains_key(&e.name))
            .count();
        let action = if left == 0 { "forget" } else { "rewrite" };
        let mut new_id = None;
        if a.apply {
            if left == 0 {
                repo.forget_snapshot(id)?;
            } else {
                let mut fixed = snap.clone();
                fixed.entries.retain(|e| !entries.contains_key(&e.name));
                for e in snap
                    .entries
                    .iter()
                    .filter(|e| entries.contains_key(&e.name))
                {
                    fixed.failed.push(Failure {
                        name: e.name.clone(),
                        kind: e
                            .meta
                            .get("kind")
                            .and_then(|k| k.as_str())
                            .unwrap_or(match e.kind {
                                crate::format::snapshot::EntryKind::Stream => "stream",
                                crate::format::snapshot::EntryKind::Tree => "tree",
                            })
                            .to_string(),
                        error: format!("damaged: {}", entries[&e.name]),
                    });
                }
                fixed.partial = true;
                if !fixed.tags.iter().any(|t| t == REPAIRED) {
                    fixed.tags.push(REPAIRED.into());
                }
                // the new object first: a crash leaves both, never neither
                new_id = Some(repo.write_snapshot(&fixed)?);
                repo.forget_snapshot(id)?;
            }
        }
        report.push((*id, entries.clone(), action, new_id));
    }
    if a.json {
        print_json(&serde_json::json!({
            "applied": a.apply,
            "snapshots": report.iter().map(|(id, entries, action, new_id)| serde_json::json!({
                "id": id.to_hex(),
                "damaged_entries": entries,
                "action": action,
                "new_id": new_id.map(|n| n.to_hex()),
            })).collect::<Vec<_>>(),
            "unreadable": damaged.unreadable.iter().map(|(id, why)| serde_json::json!({
                "id": id.to_hex(), "problem": why,
            })).collect::<Vec<_>>(),
        }))?;
    } else {
        for (id, entries, action, new_id) in &report {
            eprintln!("snapshot {}:", id.short());
            for (name, why) in entries {
                eprintln!("  entry {name}: {why}");
            }
            match (a.apply, new_id) {
                (false, _) if *action == "forget" => {
                    eprintln!("  would forget it (every entry is damaged)")
                }
                (false, _) => eprintln!("  would rewrite it without the damaged entries"),
                (true, Some(n)) => eprintln!(
                    "  rewritten as {} (partial, tagged {REPAIRED}); the old one is forgotten",
                    n.short()
                ),
                (true, None) => eprintln!("  forgotten: every entry was damaged"),
            }
        }
        for (id, why) in &damaged.unreadable {
            eprintln!(
                "snapshot {} cannot be read ({why}); coffre leaves it alone: remove \
                 snapshots/{} by hand if no copy of the repository has it intact",
                id.short(),
                id.to_hex()
            );
        }
        if report.is_empty() && damaged.unreadable.is_empty() {
            eprintln!("no snapshot references lost or damaged data");
        } else if !a.apply && !report.is_empty() {
            eprintln!(
                "nothing changed; `coffre repair snapshots --apply` does it (restore the \
                 damaged entries from another snapshot or an off-site copy first, if you can)"
            );
        }
    }
    let damage_left = (!a.apply && !report.is_empty()) || !damaged.unreadable.is_empty();
    if damage_left {
        return Err(Error::new(
            ErrorKind::Corrupt,
            "the repository holds damaged snapshots (listed above)",
        ));
    }
    Ok(0)
}

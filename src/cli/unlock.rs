//! `coffre unlock`: remove stale repository locks.

use super::args::{Global, UnlockArgs};
use super::{open_repo, print_json};
use crate::error::Result;

pub fn run(g: &Global, a: UnlockArgs) -> Result<i32> {
    let repo = open_repo(g)?;
    let removed = crate::repo::lock::unlock(repo.storage(), a.all)?;
    let left = crate::repo::lock::list(repo.storage())?;
    if a.json {
        print_json(&serde_json::json!({
            "removed": removed,
            "held": left.iter().map(|(_, l)| l.describe()).collect::<Vec<_>>(),
        }))?;
        return Ok(0);
    }
    for l in &removed {
        eprintln!("removed {l}");
    }
    for (_, l) in &left {
        eprintln!("still held (its holder keeps it fresh): {}", l.describe());
    }
    if removed.is_empty() && left.is_empty() {
        eprintln!("no locks");
    } else if !left.is_empty() {
        eprintln!(
            "a held lock expires if its holder stops refreshing it; `coffre unlock --all` \
             removes it anyway (only when you know that process is gone)"
        );
    }
    Ok(0)
}

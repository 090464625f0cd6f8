//! `coffre check`: the repository's structure, reading no data chunks.

use super::args::{CheckArgs, Global};
use super::{open_locked, print_json};
use crate::error::Result;

/// Exit code when something is damaged (as scrub).
const DAMAGED: i32 = 14;

pub fn run(g: &Global, a: CheckArgs) -> Result<i32> {
    let repo = open_locked(g, false, "check")?;
    let report = crate::pipeline::check(&repo)?;
    let code = if report.damage.is_empty() { 0 } else { DAMAGED };
    if a.json {
        print_json(&serde_json::to_value(&report).expect("report serializes"))?;
        return Ok(code);
    }
    for d in &report.damage {
        eprintln!("damaged: {} {}", d.object, d.problem);
        for a in &d.affects {
            eprintln!("  affects {a}");
        }
    }
    eprintln!(
        "check: {} key file(s), {} pack(s), {} snapshot(s), {} tree(s), {} chunk list(s), {} chunk reference(s): {}",
        report.keys,
        report.packs,
        report.snapshots,
        report.trees,
        report.lists,
        report.chunks,
        if report.damage.is_empty() {
            "no damage".to_string()
        } else {
            format!(
                "{} damaged object(s); `coffre scrub --all` reads the data too",
                report.damage.len()
            )
        }
    );
    Ok(code)
}

//! `coffre drill`: the monthly restore test of a runbook, as one command.

use super::args::{DrillArgs, Global};
use super::list::choose;
use super::progress::Bar;
use super::{open_locked, print_json};
use crate::adapters::drill::{self, DrillOptions};
use crate::error::{Error, Result};
use crate::plan::Plan;

/// Exit code of a drill that ran but failed (a step failed or counts differ).
pub const EXIT_DRILL_FAILED: i32 = 1;

pub fn run(g: &Global, plan: Option<&Plan>, a: DrillArgs) -> Result<i32> {
    let repo = open_locked(g, false, "drill")?;
    let (id, _) = choose(&repo, &a.select)?;
    let snap = repo.load_snapshot(&id)?;
    let entries = match a.select.filter.name.as_deref() {
        Some(n) => crate::adapters::entries_of(&snap, n),
        None if snap.entries.len() == 1 => vec![&snap.entries[0]],
        None => {
            return Err(
                Error::usage(format!("snapshot {} holds several entries", id.short()))
                    .with_hint("choose one with --only NAME (see `coffre ls`)"),
            );
        }
    };
    if entries.is_empty() {
        return Err(Error::not_found(format!(
            "snapshot {} has no entry {:?}",
            id.short(),
            a.select.filter.name.as_deref().unwrap_or("")
        )));
    }
    let password = a
        .to_password_file
        .as_deref()
        .map(super::restore::read_password_file)
        .transpose()?;
    let mut all_passed = true;
    let mut damaged = false;
    let mut json = Vec::new();
    for e in entries {
        let source_name = crate::adapters::source_of(e);
        let opts = DrillOptions {
            server: a.to.as_deref(),
            password: password.clone(),
            query: a.query.as_deref(),
            source: plan.and_then(|p| p.source(source_name)),
        };
        let bar = Bar::new(g.quiet || a.json, Some(e.size), "drill");
        let t0 = std::time::Instant::now();
        let report = drill::run(&repo, e, &opts, &bar);
        bar.finish();
        let report = report?;
        let passed = report.passed();
        damaged |= report.steps.iter().any(|s| s.damaged);
        all_passed &= passed;
        let secs = t0.elapsed().as_secs_f64();
        if a.json {
            json.push(serde_json::json!({
                "snapshot": id.to_hex(),
                "entry": e.name,
                "kind": crate::adapters::target::entry_kind(e).as_str(),
                "passed": passed,
                "seconds": secs,
                "report": report,
            }));
            continue;
        }
        eprintln!(
            "drill of {} from snapshot {} ({}):",
            e.name,
            id.short(),
            snap.time
        );
        for s in &report.steps {
            eprintln!(
                "  {} {:<48} {:>7.2} s{}",
                if s.ok { "ok  " } else { "FAIL" },
                s.name,
                s.ms as f64 / 1000.0,
                if s.detail.is_empty() {
                    String::new()
                } else {
                    format!("  {}", s.detail)
                }
            );
        }
        if e.meta.contains_key("row_counts") && report.mismatches.is_empty() && passed {
            eprintln!("  ok   row counts match the backup");
        }
        for m in &report.mismatches {
            eprintln!("  FAIL row count differs: {m}");
        }
        if let Some(q) = &report.query_output {
            eprintln!("  query output:");
            for l in q.lines() {
                eprintln!("    {l}");
            }
        }
        eprintln!(
            "drill {}: {} in {secs:.1} s",
            if passed { "PASSED" } else { "FAILED" },
            e.name
        );
    }
    if a.json {
        print_json(&serde_json::Value::Array(json))?;
    }
    Ok(if all_passed {
        0
    } else if damaged {
        crate::ErrorKind::Corrupt.exit_code()
    } else {
        EXIT_DRILL_FAILED
    })
}

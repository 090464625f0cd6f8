//! `coffre forget`: apply a retention policy to each series of snapshots
//! (src/series.rs): a policy never weighs one series against another.

use super::args::{ForgetArgs, Global};
use super::{local_time, open_locked, print_json, rfc3339};
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::retention::{Candidate, Policy, apply};
use crate::series::Series;

pub fn run(g: &Global, plan: Option<&Plan>, a: ForgetArgs) -> Result<i32> {
    let given = Policy {
        keep_last: a.keep_last,
        keep_hourly: a.keep_hourly,
        keep_daily: a.keep_daily,
        keep_weekly: a.keep_weekly,
        keep_monthly: a.keep_monthly,
        keep_yearly: a.keep_yearly,
        keep_within: a.keep_within.clone(),
        keep_tag: a.keep_tag.clone(),
    };
    // the command line's policy, or the plan's for the plan's series
    let (policy, scope): (Policy, Option<Vec<String>>) = if !given.is_empty() {
        (given, None)
    } else if let Some((p, plan)) = plan.and_then(|p| p.retention.clone().map(|r| (r, p))) {
        (
            p,
            Some(plan.sources.iter().map(|s| s.name.clone()).collect()),
        )
    } else {
        return Err(Error::usage("no retention policy given").with_hint(
            "pass e.g. --keep-daily 7 --keep-weekly 4, --keep-last 30 or --keep-within 30d, \
             or put a [retention] section in the plan (coffre.toml)",
        ));
    };
    policy.validate()?;
    let repo = open_locked(g, a.prune && !a.dry_run, "forget")?;
    let rows = repo.index().snapshots()?;
    let series = crate::series::group(&rows);
    let in_scope = |s: &Series| {
        a.host.as_ref().is_none_or(|h| *h == s.host)
            && a.name.as_ref().is_none_or(|n| s.names.contains(n))
            && scope.as_ref().is_none_or(|names| {
                s.names.iter().all(|n| {
                    names
                        .iter()
                        .any(|m| n == m || n.strip_suffix(".globals") == Some(m))
                })
            })
    };
    let offset = *chrono::Local::now().offset();
    let mut report = Vec::new();
    let mut doomed = Vec::new();
    for (s, snaps) in series.iter().filter(|(s, _)| in_scope(s)) {
        let cands: Vec<Candidate> = snaps
            .iter()
            .map(|r| Candidate {
                time_ns: r.time_ns,
                tags: r.tags.clone(),
            })
            .collect();
        let decisions = apply(&policy, &cands, offset, a.force);
        let mut keep = Vec::new();
        let mut forget = Vec::new();
        for (r, d) in snaps.iter().zip(decisions) {
            if d.keep {
                keep.push((*r, d.reasons));
            } else {
                forget.push(*r);
                doomed.push(r.id);
            }
        }
        report.push((s.clone(), keep, forget));
    }

    if !a.json {
        eprintln!("policy: {}", policy.describe());
        for (s, keep, forget) in &report {
            eprintln!(
                "\n{}: keep {}, forget {}",
                s.label(),
                keep.len(),
                forget.len()
            );
            let mut lines: Vec<(i64, String)> = keep
                .iter()
                .map(|(r, why)| {
                    (
                        r.time_ns,
                        format!(
                            "  keep    {}  {}  {}",
                            r.id.short(),
                            local_time(r.time_ns),
                            why.join(", ")
                        ),
                    )
                })
                .chain(forget.iter().map(|r| {
                    (
                        r.time_ns,
                        format!("  forget  {}  {}", r.id.short(), local_time(r.time_ns)),
                    )
                }))
                .collect();
            lines.sort_by_key(|l| std::cmp::Reverse(l.0));
            for (_, l) in lines {
                eprintln!("{l}");
            }
        }
    }
    let mut pruned = None;
    if !a.dry_run {
        for id in &doomed {
            repo.forget_snapshot(id)?;
        }
        if !a.json {
            eprintln!("\nforgot {} snapshot(s)", doomed.len());
        }
        if a.prune {
            let r = super::prune::prune(&repo, &a.prune_opts, false)?;
            if !a.json {
                super::prune::print_report(&r);
            }
            pruned = Some(r);
        }
    } else if !a.json {
        eprintln!(
            "\ndry run: {} snapshot(s) would be forgotten; nothing changed",
            doomed.len()
        );
    }
    if a.json {
        let v: Vec<_> = report
            .iter()
            .map(|(s, keep, forget)| {
                serde_json::json!({
                    "host": s.host,
                    "names": s.names,
                    "pre_restore": s.safety,
                    "keep": keep.iter().map(|(r, why)| serde_json::json!({
                        "id": r.id.to_hex(), "time": rfc3339(r.time_ns), "reasons": why,
                    })).collect::<Vec<_>>(),
                    "forget": forget.iter().map(|r| serde_json::json!({
                        "id": r.id.to_hex(), "time": rfc3339(r.time_ns),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        print_json(&serde_json::json!({
            "policy": policy.describe(),
            "dry_run": a.dry_run,
            "series": v,
            "forgotten": if a.dry_run { 0 } else { doomed.len() },
            "prune": pruned,
        }))?;
    }
    Ok(0)
}

//! `coffre health`: what a monitoring system needs to know, from the index
//! alone (no data is read): per series the age and size of the newest
//! snapshot, the scrub coverage and damage found, free space. Exit 0 ok,
//! 1 warning, 2 critical (the Nagios convention); `--prometheus FILE`
//! writes the same as metrics for node_exporter's textfile collector.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use super::args::{Global, HealthArgs};
use super::{open_repo, print_json, rfc3339};
use crate::error::{Error, Result};
use crate::series::Series;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    Warning,
    Critical,
}

impl Status {
    fn code(self) -> i32 {
        self as i32
    }
}

#[derive(Debug, Serialize)]
struct Finding {
    status: Status,
    what: String,
    message: String,
}

#[derive(Debug, Serialize)]
struct SeriesHealth {
    series: String,
    host: String,
    names: Vec<String>,
    snapshots: usize,
    newest: String,
    newest_unix: i64,
    age_seconds: i64,
    size: u64,
    previous_size: Option<u64>,
    partial: bool,
}

#[derive(Debug, Serialize)]
struct ScrubHealth {
    packs: u64,
    verified_within_window: u64,
    coverage: f64,
    last_verified: Option<String>,
    last_verified_unix: Option<i64>,
    damaged_packs: u64,
}

#[derive(Debug, Serialize)]
struct DiskHealth {
    free_bytes: u64,
    total_bytes: u64,
    free_ratio: f64,
}

pub fn run(g: &Global, a: HealthArgs) -> Result<i32> {
    let repo = open_repo(g)?;
    let now_ns = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
    let rows = repo.index().snapshots()?;
    let mut findings = Vec::new();
    let mut series = Vec::new();
    for (s, snaps) in crate::series::group(&rows) {
        if s.safety || a.name.as_ref().is_some_and(|n| !s.names.contains(n)) {
            continue;
        }
        series.push(series_health(&s, &snaps, now_ns, &a, &mut findings));
    }
    if series.is_empty() {
        findings.push(Finding {
            status: Status::Critical,
            what: "snapshots".into(),
            message: match &a.name {
                Some(n) => format!("no snapshot with an entry {n}"),
                None => "the repository holds no snapshot".into(),
            },
        });
    }
    let scrub = scrub_health(&repo, now_ns, &a, &mut findings)?;
    // a remote's free space is not ours to measure
    let disk = match repo.location().local_path() {
        Some(root) => Some(disk_health(root, &a, &mut findings)?),
        None => None,
    };
    let status = findings
        .iter()
        .map(|f| f.status)
        .max()
        .unwrap_or(Status::Ok);
    if let Some(file) = &a.prometheus {
        write_prometheus(file, status, &series, &scrub, disk.as_ref())?;
    }
    if a.json {
        print_json(&serde_json::json!({
            "status": status,
            "findings": findings,
            "series": series,
            "scrub": scrub,
            "disk": disk,
        }))?;
    } else {
        for s in &series {
            eprintln!(
                "{}: newest {} ({} ago), {}, {} snapshot(s)",
                s.series,
                super::local_time(s.newest_unix * 1_000_000_000),
                human_age(s.age_seconds),
                indicatif::HumanBytes(s.size),
                s.snapshots
            );
        }
        eprintln!(
            "scrub: {:.0}% of {} packs verified within {} days{}{}",
            scrub.coverage * 100.0,
            scrub.packs,
            a.scrub_days,
            scrub
                .last_verified
                .as_ref()
                .map(|t| format!(", last {t}"))
                .unwrap_or_else(|| ", never".into()),
            if scrub.damaged_packs > 0 {
                format!(", {} damaged pack(s)", scrub.damaged_packs)
            } else {
                String::new()
            }
        );
        if let Some(disk) = &disk {
            eprintln!(
                "disk: {} free of {} ({:.0}%)",
                indicatif::HumanBytes(disk.free_bytes),
                indicatif::HumanBytes(disk.total_bytes),
                disk.free_ratio * 100.0
            );
        }
        for f in &findings {
            eprintln!(
                "{}: {}: {}",
                match f.status {
                    Status::Ok => "ok",
                    Status::Warning => "WARNING",
                    Status::Critical => "CRITICAL",
                },
                f.what,
                f.message
            );
        }
        eprintln!(
            "health: {}",
            match status {
                Status::Ok => "OK",
                Status::Warning => "WARNING",
                Status::Critical => "CRITICAL",
            }
        );
    }
    Ok(status.code())
}

fn human_age(secs: i64) -> String {
    let secs = secs.max(0);
    if secs < 3600 {
        format!("{}m", secs / 60)
    } else if secs < 86400 * 2 {
        format!("{}h{:02}m", secs / 3600, secs % 3600 / 60)
    } else {
        format!("{}d{:02}h", secs / 86400, secs % 86400 / 3600)
    }
}

fn series_health(
    s: &Series,
    snaps: &[&crate::index::SnapshotRow],
    now_ns: i64,
    a: &HealthArgs,
    findings: &mut Vec<Finding>,
) -> SeriesHealth {
    let size = |r: &crate::index::SnapshotRow| r.entries.iter().map(|e| e.2).sum::<u64>();
    let newest = snaps.last().expect("a series has snapshots");
    let previous = snaps.len().checked_sub(2).map(|i| size(snaps[i]));
    let age = (now_ns - newest.time_ns) / 1_000_000_000;
    let label = s.label();
    if age > a.max_age.as_secs() as i64 {
        findings.push(Finding {
            status: Status::Critical,
            what: label.clone(),
            message: format!(
                "the newest snapshot is {} old (more than {})",
                human_age(age),
                human_age(a.max_age.as_secs() as i64)
            ),
        });
    }
    if let Some(prev) = previous
        && (size(newest) as f64) < a.min_size_ratio * prev as f64
    {
        findings.push(Finding {
            status: Status::Warning,
            what: label.clone(),
            message: format!(
                "the newest snapshot is {} against {} before (below {:.0}%)",
                indicatif::HumanBytes(size(newest)),
                indicatif::HumanBytes(prev),
                a.min_size_ratio * 100.0
            ),
        });
    }
    if !newest.failed.is_empty() {
        findings.push(Finding {
            status: Status::Warning,
            what: label.clone(),
            message: format!(
                "the newest snapshot is partial: {} failed",
                newest.failed.join(", ")
            ),
        });
    }
    SeriesHealth {
        series: label,
        host: s.host.clone(),
        names: s.names.clone(),
        snapshots: snaps.len(),
        newest: rfc3339(newest.time_ns),
        newest_unix: newest.time_ns / 1_000_000_000,
        age_seconds: age,
        size: size(newest),
        previous_size: previous,
        partial: !newest.failed.is_empty(),
    }
}

fn scrub_health(
    repo: &crate::repo::Repo,
    now_ns: i64,
    a: &HealthArgs,
    findings: &mut Vec<Finding>,
) -> Result<ScrubHealth> {
    let packs = repo.index().pack_verification()?;
    let damaged = repo.index().packs_failing_verification()?;
    let window = now_ns - i64::from(a.scrub_days) * 86_400 * 1_000_000_000;
    let within = packs
        .values()
        .filter(|(_, when)| when.is_some_and(|t| t >= window))
        .count() as u64;
    let total = packs.len() as u64;
    let coverage = if total == 0 {
        1.0
    } else {
        within as f64 / total as f64
    };
    let last = packs.values().filter_map(|(_, w)| *w).max();
    if damaged > 0 {
        findings.push(Finding {
            status: Status::Critical,
            what: "scrub".into(),
            message: format!(
                "{damaged} pack(s) failed their last verification; `coffre scrub --all` names \
                 what they affect"
            ),
        });
    }
    if coverage + 1e-9 < a.min_coverage {
        findings.push(Finding {
            status: Status::Warning,
            what: "scrub".into(),
            message: format!(
                "{within} of {total} packs verified within {} days ({:.0}%, want {:.0}%); run \
                 `coffre scrub --subset 1/7` nightly",
                a.scrub_days,
                coverage * 100.0,
                a.min_coverage * 100.0
            ),
        });
    }
    Ok(ScrubHealth {
        packs: total,
        verified_within_window: within,
        coverage,
        last_verified: last.map(rfc3339),
        last_verified_unix: last.map(|t| t / 1_000_000_000),
        damaged_packs: damaged,
    })
}

fn disk_health(root: &Path, a: &HealthArgs, findings: &mut Vec<Finding>) -> Result<DiskHealth> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(root.as_os_str().as_bytes())
        .map_err(|_| Error::usage("the repository path holds a NUL byte"))?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid NUL-terminated path and st a valid out-pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(Error::io(
            "measuring free space of",
            root,
            std::io::Error::last_os_error(),
        ));
    }
    let unit = st.f_frsize as u64;
    let free = st.f_bavail as u64 * unit;
    let total = st.f_blocks as u64 * unit;
    let ratio = if total == 0 {
        1.0
    } else {
        free as f64 / total as f64
    };
    if ratio < a.min_free {
        findings.push(Finding {
            status: if ratio < a.min_free / 2.0 {
                Status::Critical
            } else {
                Status::Warning
            },
            what: "disk".into(),
            message: format!(
                "{} free at the repository ({:.1}%)",
                indicatif::HumanBytes(free),
                ratio * 100.0
            ),
        });
    }
    Ok(DiskHealth {
        free_bytes: free,
        total_bytes: total,
        free_ratio: ratio,
    })
}

/// A label value with `\`, `"` and newlines escaped (exposition format).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn write_prometheus(
    file: &Path,
    status: Status,
    series: &[SeriesHealth],
    scrub: &ScrubHealth,
    disk: Option<&DiskHealth>,
) -> Result<()> {
    let mut m = String::new();
    let mut metric = |name: &str, help: &str, kind: &str, samples: Vec<(String, String)>| {
        m += &format!("# HELP {name} {help}\n# TYPE {name} {kind}\n");
        for (labels, value) in samples {
            m += &format!("{name}{labels} {value}\n");
        }
    };
    let per_series = |f: &dyn Fn(&SeriesHealth) -> String| {
        series
            .iter()
            .map(|s| {
                (
                    format!(
                        "{{series=\"{}\",host=\"{}\"}}",
                        label(&s.names.join("+")),
                        label(&s.host)
                    ),
                    f(s),
                )
            })
            .collect::<Vec<_>>()
    };
    metric(
        "coffre_snapshot_last_success_timestamp_seconds",
        "Time of the newest snapshot of the series.",
        "gauge",
        per_series(&|s| s.newest_unix.to_string()),
    );
    metric(
        "coffre_snapshot_last_size_bytes",
        "Bytes in the newest snapshot of the series.",
        "gauge",
        per_series(&|s| s.size.to_string()),
    );
    metric(
        "coffre_snapshots",
        "Snapshots of the series.",
        "gauge",
        per_series(&|s| s.snapshots.to_string()),
    );
    metric(
        "coffre_snapshot_last_partial",
        "1 if the newest snapshot of the series is partial.",
        "gauge",
        per_series(&|s| (s.partial as u8).to_string()),
    );
    let one = |v: String| vec![(String::new(), v)];
    metric(
        "coffre_scrub_last_timestamp_seconds",
        "Time a pack was last verified by scrub (0: never).",
        "gauge",
        one(scrub.last_verified_unix.unwrap_or(0).to_string()),
    );
    metric(
        "coffre_scrub_coverage_ratio",
        "Share of packs verified within the scrub window.",
        "gauge",
        one(format!("{}", scrub.coverage)),
    );
    metric(
        "coffre_scrub_damaged_packs",
        "Packs that failed their last verification.",
        "gauge",
        one(scrub.damaged_packs.to_string()),
    );
    if let Some(disk) = disk {
        metric(
            "coffre_repository_free_bytes",
            "Free bytes on the repository's file system.",
            "gauge",
            one(disk.free_bytes.to_string()),
        );
    }
    metric(
        "coffre_health_status",
        "0 ok, 1 warning, 2 critical.",
        "gauge",
        one(status.code().to_string()),
    );
    // atomically: node_exporter must never read half a file
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty());
    let dir = dir.unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".coffre-health-")
        .tempfile_in(dir)
        .map_err(|e| Error::io("creating a temp file in", dir, e))?;
    tmp.write_all(m.as_bytes())
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(|e| Error::io("writing", tmp.path(), e))?;
    // metrics carry no secret, and the collector runs as another user
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))
        .map_err(|e| Error::io("setting the mode of", tmp.path(), e))?;
    tmp.persist(file)
        .map_err(|e| Error::io("replacing", file, e.error))?;
    Ok(())
}

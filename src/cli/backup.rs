//! `coffre backup`: one entry from stdin, a command or a path; or, without
//! `--name`, every source of the plan into one snapshot.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

use super::args::{BackupArgs, Global};
use super::progress::Bar;
use super::{EXIT_INCOMPLETE, open_locked, print_json};
use crate::adapters::{self, parent_for, redact_argv, stream_command};
use crate::error::{Error, Result};
use crate::format::SnapshotId;
use crate::format::snapshot::Snapshot;
use crate::pipeline::{BackupSession, Progress};
use crate::plan::Plan;

enum Input {
    Stdin,
    Command(Vec<OsString>),
    Path(PathBuf),
}

pub fn run(g: &Global, plan: Option<&Plan>, a: BackupArgs) -> Result<i32> {
    let Some(name) = a.name.clone() else {
        return run_plan(g, plan, a);
    };
    let input = match (a.stdin, a.paths.len(), a.command.is_empty()) {
        (true, 0, true) => Input::Stdin,
        (false, 0, false) => Input::Command(a.command.clone()),
        (false, 1, true) => Input::Path(PathBuf::from(&a.paths[0])),
        (false, 0, true) => {
            return Err(Error::usage("nothing to back up")
                .with_hint("give a PATH, --stdin, or `-- COMMAND ARGS…`"));
        }
        (false, n, true) if n > 1 => {
            return Err(Error::usage("give one path per entry")
                .with_hint("back up each path under its own --name, or list them in a plan"));
        }
        _ => {
            return Err(Error::usage(
                "give only one of PATH, --stdin and `-- COMMAND`",
            ));
        }
    };
    crate::format::snapshot::check_entry_name(&name)?;
    let repo = open_locked(g, false, "backup")?;
    repo.set_verify_all(a.verify_all);
    let bar = Bar::new(g.quiet || a.json, None, "backup");
    let mut session = BackupSession::new(&repo, &bar);
    let host = a.host.clone().unwrap_or_else(crate::repo::host_name);
    let warn = |m: &str| bar.warn(m);
    let result = match &input {
        Input::Stdin => {
            let mut stdin = crate::adapters::sniff::Sniff::new(std::io::stdin());
            let r = session
                .stream(&name, &mut stdin, None, Default::default())
                .map(|_| ());
            if r.is_ok() {
                adapters::warn_if_compressed(&name, &stdin.head, &warn);
            }
            r
        }
        Input::Command(argv) => {
            let mut cmd = Command::new(&argv[0]);
            cmd.args(&argv[1..]);
            stream_command(
                &mut session,
                &name,
                cmd,
                Some(redact_argv(argv)),
                Default::default(),
                &warn,
            )
            .map(|_| ())
        }
        Input::Path(p) => {
            let parent = if a.no_parent {
                None
            } else {
                parent_for(&repo, &name, p, &host)?
            };
            session
                .tree(&name, p, parent.as_ref().map(|(id, e)| (*id, e)))
                .map(|_| ())
        }
    };
    bar.finish();
    result?;
    let warnings = session.warnings();
    let (id, snap) = session.commit(a.tags.clone(), Some(host))?;
    let code = report(g, &a, &id, &snap, warnings)?;
    sync_after(g, plan, &repo, &a, &id)?;
    Ok(code)
}

/// Every selected source of the plan into one snapshot. A failing source
/// fails the run (nothing is committed) unless `--allow-partial`.
fn run_plan(g: &Global, plan: Option<&Plan>, a: BackupArgs) -> Result<i32> {
    if a.stdin || !a.paths.is_empty() || !a.command.is_empty() {
        return Err(Error::usage("--stdin, a PATH or a COMMAND needs --name")
            .with_hint("name the entry with --name, or run the plan's sources without them"));
    }
    let plan = plan.ok_or_else(|| {
        Error::usage("nothing to back up: no --name and no plan")
            .with_hint("give --name with a PATH, --stdin or `-- COMMAND`, or a plan with --config (or ./coffre.toml)")
    })?;
    let sources = plan.select(&a.only)?;
    if sources.is_empty() {
        return Err(Error::usage(format!(
            "the plan {} has no sources",
            plan.file.display()
        )));
    }
    let repo = open_locked(g, false, "backup")?;
    repo.set_verify_all(a.verify_all);
    let bar = Bar::new(g.quiet || a.json, None, "backup");
    let mut session = BackupSession::new(&repo, &bar);
    let host = a.host.clone().unwrap_or_else(crate::repo::host_name);
    let warn = |m: &str| bar.warn(m);
    for src in sources {
        if let Err(e) = adapters::backup(&mut session, src, &host, &warn) {
            if !a.allow_partial {
                bar.finish();
                return Err(e.with_hint(
                    "nothing was committed; fix the source, skip it with --only, or pass --allow-partial",
                ));
            }
            bar.warn(&format!("{e}"));
            // a failed source contributes nothing, not the entries it made
            // before failing (a files source's first paths, a database
            // whose globals then failed)
            let made: Vec<String> = session
                .entries()
                .iter()
                .filter(|en| en.name == src.name || adapters::source_of(en) == src.name)
                .map(|en| en.name.clone())
                .collect();
            for n in made {
                session.discard(&n);
            }
            session.record_failure(&src.name, src.kind.as_str(), e.to_string());
        }
    }
    bar.finish();
    if session.entries().is_empty() {
        return Err(Error::new(
            crate::ErrorKind::CommandFailed,
            "every source failed; no snapshot was made",
        ));
    }
    let warnings = session.warnings();
    let (id, snap) = session.commit(a.tags.clone(), Some(host))?;
    let code = report(g, &a, &id, &snap, warnings)?;
    sync_after(g, Some(plan), &repo, &a, &id)?;
    Ok(code)
}

/// Sync to the plan's targets marked `after-backup` (unless --no-sync).
/// A failed sync fails the command; the snapshot stays saved here.
fn sync_after(
    g: &Global,
    plan: Option<&Plan>,
    repo: &crate::repo::Repo,
    a: &BackupArgs,
    id: &SnapshotId,
) -> Result<()> {
    if a.no_sync {
        return Ok(());
    }
    for t in plan
        .into_iter()
        .flat_map(|p| &p.sync_targets)
        .filter(|t| t.after_backup)
    {
        let target = super::sync::Target::from_plan(t)?;
        if let Err(e) = super::sync::sync_to(g, repo, &target, a.json) {
            eprintln!(
                "coffre: snapshot {} is saved here, but the sync to {} failed",
                id.short(),
                target.location
            );
            return Err(e.with_hint("run `coffre sync` once the target is reachable again"));
        }
    }
    Ok(())
}

fn report(
    g: &Global,
    a: &BackupArgs,
    id: &SnapshotId,
    snap: &Snapshot,
    warnings: u64,
) -> Result<i32> {
    if a.json {
        let entry_json = |e: &crate::format::snapshot::Entry| {
            let s = &e.stats;
            serde_json::json!({
                "name": e.name,
                "kind": e.kind,
                "size": e.size,
                "bytes_read": s.bytes_read,
                "bytes_new": s.bytes_new,
                "bytes_stored": s.bytes_stored,
                "chunks_new": s.chunks_new,
                "chunks_reused": s.chunks_reused,
                "files": s.files,
                "files_unchanged": s.files_unchanged,
                "duration_ms": s.duration_ms,
                "meta": e.meta,
            })
        };
        // the first entry's figures stay at the top level for one-entry runs
        let mut top = entry_json(&snap.entries[0]);
        let obj = top.as_object_mut().expect("an object");
        obj.remove("size");
        obj.remove("meta");
        obj.insert("snapshot".into(), id.to_hex().into());
        obj.insert("time".into(), snap.time.clone().into());
        obj.insert("warnings".into(), warnings.into());
        obj.insert("partial".into(), snap.partial.into());
        obj.insert("failed".into(), serde_json::json!(snap.failed));
        obj.insert(
            "entries".into(),
            snap.entries.iter().map(entry_json).collect(),
        );
        print_json(&top)?;
    }
    if !g.quiet {
        use indicatif::HumanBytes;
        for e in &snap.entries {
            let s = &e.stats;
            let secs = (s.duration_ms as f64 / 1000.0).max(0.001);
            eprintln!(
                "snapshot {} saved: {} {}, {} new ({} stored), {:.1} s, {}/s",
                id.short(),
                e.name,
                HumanBytes(e.size),
                HumanBytes(s.bytes_new),
                HumanBytes(s.bytes_stored),
                secs,
                HumanBytes((s.bytes_read as f64 / secs) as u64)
            );
        }
    }
    if snap.partial {
        let names: Vec<&str> = snap.failed.iter().map(|f| f.name.as_str()).collect();
        eprintln!(
            "coffre: snapshot {} is partial: {} failed (exit {EXIT_INCOMPLETE})",
            id.short(),
            names.join(", ")
        );
        return Ok(EXIT_INCOMPLETE);
    }
    if warnings > 0 {
        eprintln!(
            "coffre: {warnings} problem(s) while reading; the snapshot is incomplete (exit {EXIT_INCOMPLETE})"
        );
        return Ok(EXIT_INCOMPLETE);
    }
    Ok(0)
}

//! `coffre restore` and `coffre dump`

use std::process::{Command, Stdio};

use super::args::{DumpArgs, Global, RestoreArgs};
use super::list::choose;
use super::open_locked;
use super::progress::Bar;
use crate::error::{Error, ErrorKind, Result};
use crate::format::snapshot::{Entry, EntryKind};
use crate::pipeline::{RestoreOptions, restore_stream, restore_tree};
use crate::plan::Plan;
use crate::repo::Repo;

fn pick_entry<'s>(
    snap: &'s crate::format::snapshot::Snapshot,
    name: Option<&str>,
    id: &str,
) -> Result<&'s Entry> {
    match name {
        Some(n) => snap
            .entry(n)
            .ok_or_else(|| Error::not_found(format!("snapshot {id} has no entry {n:?}"))),
        None if snap.entries.len() == 1 => Ok(&snap.entries[0]),
        None => Err(Error::usage(format!("snapshot {id} holds several entries"))
            .with_hint("choose one with --name (see `coffre ls`)")),
    }
}

pub fn dump(g: &Global, a: DumpArgs) -> Result<i32> {
    let repo = open_locked(g, false, "dump")?;
    let (id, _) = choose(&repo, &a.select)?;
    let snap = repo.load_snapshot(&id)?;
    let e = pick_entry(&snap, a.select.filter.name.as_deref(), &id.short())?;
    if e.kind != EntryKind::Stream {
        return Err(
            Error::usage(format!("entry {:?} is a directory tree", e.name))
                .with_hint("use `coffre restore --target DIR` for trees"),
        );
    }
    let bar = Bar::new(g.quiet, Some(e.size), "dump");
    // chunks are large: write them straight to fd 1, past std's line buffering
    let _lock = std::io::stdout().lock();
    // SAFETY: fd 1 is open for the life of the process; ManuallyDrop keeps it open.
    let mut out = std::mem::ManuallyDrop::new(unsafe {
        <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(1)
    });
    let r = restore_stream(&repo, &e.content(), &mut *out, &bar);
    bar.finish();
    r?;
    Ok(0)
}

pub fn restore(g: &Global, plan: Option<&Plan>, a: RestoreArgs) -> Result<i32> {
    if a.target.is_none() && !a.into {
        return restore_to(g, plan, a);
    }
    if a.into && a.command.is_empty() {
        return Err(Error::usage("--into needs a command after `--`")
            .with_hint("e.g. --into -- pg_restore -d app_copy"));
    }
    if !a.into && !a.command.is_empty() {
        return Err(Error::usage("a command after `--` needs --into"));
    }
    if !a.into && a.target.is_none() {
        return Err(Error::usage("nowhere to restore to")
            .with_hint("pass --target PATH or --into -- COMMAND"));
    }
    let repo = open_locked(g, false, "restore")?;
    let (id, _) = choose(&repo, &a.select)?;
    let snap = repo.load_snapshot(&id)?;
    let e = pick_entry(&snap, a.select.filter.name.as_deref(), &id.short())?;
    let bar = Bar::new(g.quiet, Some(e.size), "restore");
    let result = match (e.kind, a.into) {
        (EntryKind::Stream, true) => into_command(&repo, e, &a.command, &bar),
        (EntryKind::Stream, false) => {
            to_file(&repo, e, a.target.as_ref().unwrap(), a.overwrite, &bar)
        }
        (EntryKind::Tree, true) => Err(Error::usage(format!(
            "entry {:?} is a directory tree; --into takes streams",
            e.name
        ))),
        (EntryKind::Tree, false) => restore_tree(
            &repo,
            e.tree.as_ref().unwrap(),
            e.root.as_ref(),
            a.target.as_ref().unwrap(),
            &RestoreOptions {
                overwrite: a.overwrite,
            },
            &bar,
        ),
    };
    bar.finish();
    let n = result?;
    if !g.quiet {
        eprintln!(
            "restored {} ({} bytes) from snapshot {}",
            e.name,
            n,
            id.short()
        );
    }
    Ok(0)
}

/// Write a stream entry to a file: a temp file beside it, fsync, rename.
fn to_file(
    repo: &Repo,
    e: &Entry,
    target: &std::path::Path,
    overwrite: bool,
    bar: &Bar,
) -> Result<u64> {
    if !target.is_dir() && target.exists() && !overwrite {
        return Err(Error::usage(format!("{} exists", target.display()))
            .with_hint("pass --overwrite to replace it"));
    }
    crate::adapters::target::write_file(repo, e, target, false, bar)
}

/// Pipe a stream entry into a command; its failure is our failure.
fn into_command(repo: &Repo, e: &Entry, argv: &[std::ffi::OsString], bar: &Bar) -> Result<u64> {
    let program = argv[0].to_string_lossy().into_owned();
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|err| {
            Error::new(
                ErrorKind::CommandFailed,
                format!("cannot run {program:?}: {err}"),
            )
        })?;
    let mut stdin = child.stdin.take().expect("piped");
    let written = restore_stream(repo, &e.content(), &mut stdin, bar);
    drop(stdin);
    let status = child
        .wait()
        .map_err(|err| Error::other(format!("waiting for {program}: {err}")))?;
    if !status.success() {
        return Err(Error::new(
            ErrorKind::CommandFailed,
            format!("{program} failed ({status}) while restoring {}", e.name),
        ));
    }
    match written {
        Err(err) if err.is_broken_pipe() => Err(Error::new(
            ErrorKind::CommandFailed,
            format!("{program} stopped reading before the end of {}", e.name),
        )),
        other => other,
    }
}

/// A password file's first line.
pub(super) fn read_password_file(p: &std::path::Path) -> Result<crate::adapters::secret::Secret> {
    crate::adapters::secret::read_first_line(p)
        .map_err(|e| Error::usage(format!("cannot read {}: {e}", p.display())))
}

/// Ask on the terminal; false when there is none.
fn confirm(question: &str) -> Result<bool> {
    use std::io::{BufRead, IsTerminal};
    if !std::io::stdin().is_terminal() && !std::io::stderr().is_terminal() {
        return Ok(false);
    }
    let Ok(tty) = std::fs::File::open("/dev/tty") else {
        return Ok(false);
    };
    eprint!("{question} [y/N] ");
    let mut line = String::new();
    std::io::BufReader::new(tty)
        .read_line(&mut line)
        .map_err(|e| Error::other(format!("reading the answer: {e}")))?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

/// `restore --to` (or to the plan source the entry came from): show the
/// plan, confirm, take a safety snapshot of what will be replaced, restore,
/// compare row counts.
fn restore_to(g: &Global, plan: Option<&Plan>, a: RestoreArgs) -> Result<i32> {
    use crate::adapters::target::{Resolved, resolve};
    let repo = open_locked(g, false, "restore")?;
    let (id, _) = choose(&repo, &a.select)?;
    let snap = repo.load_snapshot(&id)?;
    let entries: Vec<&Entry> = match a.select.filter.name.as_deref() {
        Some(n) => {
            let v = crate::adapters::entries_of(&snap, n);
            if v.is_empty() {
                return Err(Error::not_found(format!(
                    "snapshot {} has no entry {n:?}",
                    id.short()
                ))
                .with_hint("see its entries with `coffre ls`"));
            }
            v
        }
        None if snap.entries.len() == 1 => vec![&snap.entries[0]],
        None => {
            return Err(
                Error::usage(format!("snapshot {} holds several entries", id.short()))
                    .with_hint("choose one with --only NAME (see `coffre ls`)"),
            );
        }
    };
    let password = a
        .to_password_file
        .as_deref()
        .map(read_password_file)
        .transpose()?;
    let pg = crate::adapters::postgres::PgRestore {
        replace: a.replace,
        jobs: a.jobs.max(1),
        tables: a.tables.clone(),
        no_owner: false,
    };
    // --path: the entry narrowed to one file or directory of its tree, going
    // back to that path under the entry's original location by default
    let narrowed: Vec<Entry> = match &a.path {
        None => Vec::new(),
        Some(p) => {
            if entries.len() != 1 || entries[0].kind != EntryKind::Tree {
                return Err(Error::usage("--path needs exactly one tree entry")
                    .with_hint("choose it with --only NAME"));
            }
            vec![crate::pipeline::narrow_entry(&repo, entries[0], p)?]
        }
    };
    let default_to = match (
        &a.path,
        &a.to,
        entries.first().and_then(|e| e.path.as_ref()),
    ) {
        (Some(p), None, Some(root)) if entries[0].root.is_some() => Some(
            std::path::Path::new(root.as_os())
                .join(p)
                .to_string_lossy()
                .into_owned(),
        ),
        _ => None,
    };
    let entries: Vec<&Entry> = if narrowed.is_empty() {
        entries
    } else {
        narrowed.iter().collect()
    };
    let to_arg = a.to.clone().or(default_to);
    let mut plans: Vec<(&Entry, Resolved, bool)> = Vec::new();
    for e in &entries {
        let source_name = crate::adapters::source_of(e);
        let source = plan.and_then(|p| p.source(source_name));
        // several entries (a files source with several paths) go under --to
        let to = match (&to_arg, entries.len()) {
            (Some(t), 1) => Some(t.clone()),
            (Some(t), _) => Some(
                std::path::Path::new(t)
                    .join(e.name.rsplit('/').next().unwrap_or(&e.name))
                    .to_string_lossy()
                    .into_owned(),
            ),
            (None, _) => None,
        };
        let source = if to.is_none() && entries.len() > 1 {
            None
        } else {
            source
        };
        let r = resolve(e, to.as_deref(), source, password.clone(), pg.clone())?;
        let exists = r.target.exists()?;
        plans.push((e, r, exists));
    }
    let destructive = plans.iter().any(|(_, _, x)| *x);
    let safety = destructive && !a.no_safety_snapshot && !a.dry_run;
    eprintln!("restore plan:");
    eprintln!("  snapshot  {} from {}", id.short(), snap.time);
    for (e, r, exists) in &plans {
        let consistent = e
            .meta
            .get("consistent_at")
            .and_then(serde_json::Value::as_str)
            .map(|t| format!(", consistent at {t}"))
            .unwrap_or_default();
        eprintln!(
            "  entry     {} ({}, {} bytes{consistent})",
            e.name,
            crate::adapters::target::entry_kind(e).as_str(),
            e.size
        );
        eprintln!(
            "  target    {}{}",
            r.target.describe(),
            if *exists {
                " (exists: will be replaced)"
            } else {
                " (new)"
            }
        );
        let mut n = 1;
        if safety && *exists {
            eprintln!("  step {n}    safety snapshot of the target, tagged pre-restore");
            n += 1;
        }
        for s in r.target.steps(e, *exists) {
            eprintln!("  step {n}    {s}");
            n += 1;
        }
    }
    if a.dry_run {
        let bar = Bar::new(
            g.quiet,
            Some(plans.iter().map(|p| p.0.size).sum()),
            "verify",
        );
        for (e, _, _) in &plans {
            let n = crate::pipeline::verify_entry(&repo, e, &bar)?;
            bar.finish();
            eprintln!(
                "dry run: every chunk of {} is present and authentic ({n} bytes); nothing was changed",
                e.name
            );
        }
        return Ok(0);
    }
    if destructive && !a.yes && !confirm("Replace the target(s) above?")? {
        return Err(
            Error::usage("the restore replaces existing data and was not confirmed").with_hint(
                "review the plan above, then run again with --yes (or answer y on a terminal)",
            ),
        );
    }
    if safety {
        let bar = Bar::new(g.quiet, None, "safety snapshot");
        let mut session = crate::pipeline::BackupSession::new(&repo, &bar);
        let host = crate::repo::host_name();
        let warn = |m: &str| crate::pipeline::Progress::warn(&bar, m);
        for (e, r, exists) in &plans {
            if *exists {
                let source = crate::adapters::source_of(e).to_string();
                let made = crate::adapters::backup(&mut session, &r.safety, &host, &warn);
                // the safety entry answers to the same --only as the entry it saves
                if let Some(en) = session.entry_mut(&r.safety.name) {
                    en.meta.insert("source".into(), source.into());
                }
                made.map_err(|e| {
                    e.context("taking the safety snapshot (nothing was restored)")
                        .with_hint(
                            "fix the problem, or pass --no-safety-snapshot to restore without one",
                        )
                })?;
            }
        }
        bar.finish();
        let (sid, _) = session.commit(vec![crate::select::PRE_RESTORE.into()], Some(host))?;
        eprintln!(
            "safety snapshot {} saved (tag pre-restore): `coffre restore {} --only NAME` undoes this restore",
            sid.short(),
            sid.short()
        );
    }
    let mut code = 0;
    for (e, r, _) in &plans {
        let bar = Bar::new(g.quiet, Some(e.size), "restore");
        let outcome = r.target.restore(&repo, e, &bar);
        bar.finish();
        let outcome = outcome.map_err(|err| err.context(format!("restoring {}", e.name)))?;
        for n in &outcome.notes {
            eprintln!("{}: {n}", e.name);
        }
        if outcome.mismatches.is_empty() {
            if e.meta.contains_key("row_counts") && a.tables.is_empty() {
                eprintln!("{}: row counts match the backup", e.name);
            }
        } else {
            for m in &outcome.mismatches {
                eprintln!("{}: row count differs: {m}", e.name);
            }
            code = super::EXIT_INCOMPLETE;
        }
    }
    if code != 0 {
        eprintln!("coffre: restored, but row counts differ from the backup (exit {code})");
    }
    Ok(code)
}

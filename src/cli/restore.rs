//! `coffre restore` and `coffre dump`

use std::io::Write;
use std::process::{Command, Stdio};

use super::args::{DumpArgs, Global, RestoreArgs};
use super::list::choose;
use super::open_repo;
use super::progress::Bar;
use crate::error::{Error, ErrorKind, Result};
use crate::format::snapshot::{Entry, EntryKind};
use crate::pipeline::{RestoreOptions, restore_stream, restore_tree};
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
    let repo = open_repo(g)?;
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

pub fn restore(g: &Global, a: RestoreArgs) -> Result<i32> {
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
    let repo = open_repo(g)?;
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
    if target.is_dir() {
        return Err(Error::usage(format!(
            "{} is a directory; a stream restores to a file",
            target.display()
        )));
    }
    if target.exists() && !overwrite {
        return Err(Error::usage(format!("{} exists", target.display()))
            .with_hint("pass --overwrite to replace it"));
    }
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".coffre-restore-")
        .tempfile_in(&dir)
        .map_err(|e| Error::io("creating a temp file in", &dir, e))?;
    let n = {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
        let n = restore_stream(repo, &e.content(), &mut w, bar)?;
        w.flush().map_err(|err| Error::io("writing", target, err))?;
        n
    };
    tmp.as_file()
        .sync_all()
        .map_err(|err| Error::io("writing", target, err))?;
    tmp.persist(target)
        .map_err(|err| Error::io("renaming into", target, err.error))?;
    crate::storage::sync_dir(&dir).map_err(|err| Error::io("syncing", &dir, err))?;
    Ok(n)
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

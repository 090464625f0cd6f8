//! `coffre backup`

use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::args::{BackupArgs, Global};
use super::progress::Bar;
use super::{EXIT_INCOMPLETE, open_repo, print_json};
use crate::error::{Error, ErrorKind, Result};
use crate::format::SnapshotId;
use crate::format::snapshot::{Entry, EntryKind};
use crate::pipeline::BackupSession;
use crate::repo::Repo;
use crate::select::Filter;

enum Input {
    Stdin,
    Command(Vec<std::ffi::OsString>),
    Path(PathBuf),
}

/// Remove what looks like a secret from a command line before it is stored:
/// `--password=…`, `-pSECRET` (mysql style), and passwords inside URLs.
pub fn redact_argv(argv: &[std::ffi::OsString]) -> Vec<String> {
    let mut out = Vec::new();
    let mut hide_next = false;
    for a in argv {
        let a = a.to_string_lossy().into_owned();
        if hide_next {
            out.push("***".into());
            hide_next = false;
            continue;
        }
        let lower = a.to_ascii_lowercase();
        if lower == "--password" || lower == "--pass" {
            hide_next = true;
            out.push(a);
        } else if let Some(eq) = a
            .find('=')
            .filter(|_| lower.starts_with("--pass") || lower.contains("password="))
        {
            out.push(format!("{}=***", &a[..eq]));
        } else if a.starts_with("-p") && a.len() > 2 && !a.starts_with("--") {
            out.push("-p***".into());
        } else if let Some(redacted) = redact_url(&a) {
            out.push(redacted);
        } else {
            out.push(a);
        }
    }
    out
}

fn redact_url(a: &str) -> Option<String> {
    let scheme_end = a.find("://")?;
    let rest = &a[scheme_end + 3..];
    let at = rest.find('@')?;
    let userinfo = &rest[..at];
    let colon = userinfo.find(':')?;
    Some(format!(
        "{}{}:***{}",
        &a[..scheme_end + 3],
        &userinfo[..colon],
        &rest[at..]
    ))
}

fn parent_for(
    repo: &Repo,
    name: &str,
    path: &std::path::Path,
    host: &str,
) -> Result<Option<(SnapshotId, Entry)>> {
    let rows = repo.index().snapshots()?;
    let f = Filter {
        name: Some(name.to_string()),
        tags: Vec::new(),
        host: Some(host.to_string()),
    };
    let abs = crate::pipeline::normalize_root(path)?;
    for row in rows.iter().rev().filter(|r| f.matches(r)) {
        let snap = match repo.load_snapshot(&row.id) {
            Ok(s) => s,
            Err(_) => continue,
        };
        if let Some(e) = snap.entry(name)
            && e.kind == EntryKind::Tree
            && e.path.as_ref().map(|p| p.as_os()) == Some(abs.as_os_str())
        {
            return Ok(Some((row.id, e.clone())));
        }
    }
    Ok(None)
}

pub fn run(g: &Global, a: BackupArgs) -> Result<i32> {
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
                .with_hint("back up each path under its own --name"));
        }
        _ => {
            return Err(Error::usage(
                "give only one of PATH, --stdin and `-- COMMAND`",
            ));
        }
    };
    crate::format::snapshot::check_entry_name(&a.name)?;
    let repo = open_repo(g)?;
    let bar = Bar::new(g.quiet || a.json, None, "backup");
    let mut session = BackupSession::new(&repo, &bar);
    let host = a.host.clone().unwrap_or_else(crate::repo::host_name);
    let result = match &input {
        Input::Stdin => {
            let mut stdin = std::io::stdin();
            session
                .stream(&a.name, &mut stdin, None, Default::default())
                .map(|_| ())
        }
        Input::Command(argv) => run_command(&mut session, &a.name, argv),
        Input::Path(p) => {
            let parent = if a.no_parent {
                None
            } else {
                parent_for(&repo, &a.name, p, &host)?
            };
            session
                .tree(&a.name, p, parent.as_ref().map(|(id, e)| (*id, e)))
                .map(|_| ())
        }
    };
    bar.finish();
    result?;
    let warnings = session.warnings();
    let (id, snap) = session.commit(a.tags.clone(), Some(host))?;
    let e = &snap.entries[0];
    let s = &e.stats;
    if a.json {
        print_json(&serde_json::json!({
            "snapshot": id.to_hex(),
            "time": snap.time,
            "name": e.name,
            "kind": e.kind,
            "bytes_read": s.bytes_read,
            "bytes_new": s.bytes_new,
            "bytes_stored": s.bytes_stored,
            "chunks_new": s.chunks_new,
            "chunks_reused": s.chunks_reused,
            "files": s.files,
            "files_unchanged": s.files_unchanged,
            "duration_ms": s.duration_ms,
            "warnings": warnings,
        }))?;
    }
    if !g.quiet {
        use indicatif::HumanBytes;
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
    if warnings > 0 {
        eprintln!(
            "coffre: {warnings} problem(s) while reading; the snapshot is incomplete (exit {EXIT_INCOMPLETE})"
        );
        return Ok(EXIT_INCOMPLETE);
    }
    Ok(0)
}

/// Run `argv` without a shell and store its stdout. No snapshot unless it
/// exits 0 and printed something.
fn run_command(
    session: &mut BackupSession<'_>,
    name: &str,
    argv: &[std::ffi::OsString],
) -> Result<()> {
    let program = argv[0].to_string_lossy().into_owned();
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| {
            Error::new(
                ErrorKind::CommandFailed,
                format!("cannot run {program:?}: {e}"),
            )
            .with_hint("check that the command exists and is on PATH")
        })?;
    let mut stdout = child.stdout.take().expect("piped");
    let stored = session.stream(
        name,
        &mut stdout,
        Some(redact_argv(argv)),
        Default::default(),
    );
    drop(stdout);
    if stored.is_err() {
        let _ = child.kill();
    }
    let status = child
        .wait()
        .map_err(|e| Error::other(format!("waiting for {program}: {e}")))?;
    if !status.success() {
        use std::os::unix::process::ExitStatusExt;
        let how = match (status.code(), status.signal()) {
            (Some(c), _) => format!("exited with status {c}"),
            (None, Some(s)) => format!("was killed by signal {s}"),
            _ => "failed".into(),
        };
        return Err(Error::new(
            ErrorKind::CommandFailed,
            format!("{program} {how}; no snapshot was made"),
        ));
    }
    stored.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted() {
        let argv: Vec<std::ffi::OsString> = [
            "mysqldump",
            "-psecret",
            "--password=hunter2",
            "--password",
            "x",
            "postgresql://app:pw@db/app",
            "-Fc",
            "--port=5",
        ]
        .iter()
        .map(Into::into)
        .collect();
        let out = redact_argv(&argv).join(" ");
        assert!(
            !out.contains("secret") && !out.contains("hunter2") && !out.contains(":pw@"),
            "{out}"
        );
        assert!(
            out.contains("postgresql://app:***@db/app")
                && out.contains("-Fc")
                && out.contains("--port=5"),
            "{out}"
        );
    }
}

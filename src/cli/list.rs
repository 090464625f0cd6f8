//! `coffre snapshots` and `coffre ls`

use std::path::Path;

use indicatif::HumanBytes;

use super::args::{Global, LsArgs, SnapshotsArgs};
use super::{filter, local_time, open_repo, print_json, rfc3339};
use crate::error::{Error, Result};
use crate::format::snapshot::EntryKind;
use crate::format::tree::{NodeKind, Tree};
use crate::format::{BlobId, SnapshotId};
use crate::format::{ObjectType, label};
use crate::index::SnapshotRow;
use crate::repo::Repo;

pub fn snapshots(g: &Global, a: SnapshotsArgs) -> Result<i32> {
    let repo = open_repo(g)?;
    let f = filter(&a.filter);
    let rows: Vec<SnapshotRow> = repo
        .index()
        .snapshots()?
        .into_iter()
        .filter(|r| f.matches(r))
        .collect();
    if a.json {
        let v: Vec<_> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "id": r.id.to_hex(),
                    "time": rfc3339(r.time_ns),
                    "host": r.host,
                    "user": r.user,
                    "tags": r.tags,
                    "partial": !r.failed.is_empty(),
                    "failed": r.failed,
                    "entries": r.entries.iter().map(|(n, k, s)| serde_json::json!({"name": n, "kind": k, "size": s})).collect::<Vec<_>>(),
                })
            })
            .collect();
        return print_json(&serde_json::Value::Array(v)).map(|_| 0);
    }
    outln!(
        "{:<8}  {:<19}  {:<16}  {:<16}  ENTRIES",
        "ID",
        "TIME",
        "HOST",
        "TAGS"
    );
    for r in &rows {
        let entries: Vec<String> = r
            .entries
            .iter()
            .map(|(n, k, s)| format!("{n} ({k}, {})", HumanBytes(*s)))
            .collect();
        let partial = if r.failed.is_empty() {
            String::new()
        } else {
            format!("  PARTIAL, failed: {}", r.failed.join(", "))
        };
        outln!(
            "{:<8}  {:<19}  {:<16}  {:<16}  {}{partial}",
            r.id.short(),
            local_time(r.time_ns),
            r.host,
            r.tags.join(","),
            entries.join(", ")
        );
    }
    eprintln!("{} snapshot(s)", rows.len());
    Ok(0)
}

/// The load error of a snapshot object named by `spec` (an id or prefix)
/// that is in the storage but not in the index because it does not load.
fn unreadable_snapshot(repo: &Repo, spec: &str) -> Result<Option<crate::Error>> {
    let spec = spec.to_ascii_lowercase();
    if spec.len() < 4 || !spec.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    for name in repo.storage().list(crate::repo::SNAPSHOTS)? {
        if let (true, Ok(id)) = (
            name.starts_with(&spec),
            crate::format::SnapshotId::from_hex(&name),
        ) && let Err(e) = repo.load_snapshot(&id)
        {
            return Ok(Some(e));
        }
    }
    Ok(None)
}

/// Resolve the snapshot the user asked for, printing which one was chosen.
pub fn choose(repo: &Repo, sel: &super::args::SelectArgs) -> Result<(SnapshotId, i64)> {
    let at = sel
        .at
        .as_deref()
        .map(crate::select::parse_time)
        .transpose()?;
    let rows = repo.index().snapshots()?;
    let row = match crate::select::select(&rows, &sel.snapshot, at, &filter(&sel.filter)) {
        Ok(r) => r,
        Err(e) if e.kind() == crate::error::ErrorKind::NotFound => {
            // a snapshot file that exists but did not load is damage, not absence
            return Err(unreadable_snapshot(repo, &sel.snapshot)?.unwrap_or(e));
        }
        Err(e) => return Err(e),
    };
    let gap = at.map(|t| {
        let mins = (t - row.time_ns) / 60_000_000_000;
        format!(" ({}h{:02} before --at)", mins / 60, mins % 60)
    });
    eprintln!(
        "using snapshot {} from {}{}",
        row.id.short(),
        local_time(row.time_ns),
        gap.unwrap_or_default()
    );
    Ok((row.id, row.time_ns))
}

fn mode_string(kind: NodeKind, mode: u32) -> String {
    let t = match kind {
        NodeKind::Dir => 'd',
        NodeKind::File => '-',
        NodeKind::Symlink => 'l',
        NodeKind::Fifo => 'p',
    };
    let mut s = String::from(t);
    for (i, c) in "rwxrwxrwx".chars().enumerate() {
        s.push(if mode & (0o400 >> i) != 0 { c } else { '-' });
    }
    s
}

fn list_tree(
    repo: &Repo,
    index: &crate::index::Index,
    id: &BlobId,
    prefix: &Path,
    json: &mut Option<Vec<serde_json::Value>>,
) -> Result<()> {
    let tree = Tree::decode(&repo.read_blob(index, ObjectType::Tree, id)?)?;
    for n in &tree.nodes {
        let path = prefix.join(n.name.as_os());
        let mtime = crate::cli::local_time(n.mtime_ns);
        match json {
            Some(v) => v.push(serde_json::json!({
                "path": path.to_string_lossy(),
                "type": n.kind,
                "mode": n.mode,
                "uid": n.uid,
                "gid": n.gid,
                "size": n.size,
                "mtime": rfc3339(n.mtime_ns),
                "target": n.target.as_ref().map(|t| t.lossy()),
            })),
            None => {
                // names come from wherever the files came from (an uploads
                // directory: from the web); shown escaped, one per line
                let target = n
                    .target
                    .as_ref()
                    .map(|t| format!(" -> {}", label::shown(&t.lossy())))
                    .unwrap_or_default();
                outln!(
                    "{} {:>5} {:>5} {:>12} {} {}{}",
                    mode_string(n.kind, n.mode),
                    n.uid,
                    n.gid,
                    n.size,
                    mtime,
                    label::shown(&path.to_string_lossy()),
                    target
                );
            }
        }
        if let Some(sub) = &n.subtree {
            list_tree(repo, index, sub, &path, json)?;
        }
    }
    Ok(())
}

pub fn ls(g: &Global, a: LsArgs) -> Result<i32> {
    let repo = open_repo(g)?;
    let (id, _) = choose(&repo, &a.select)?;
    let snap = repo.load_snapshot(&id)?;
    let mut json = if a.json { Some(Vec::new()) } else { None };
    let entries: Vec<_> = match &a.select.filter.name {
        Some(n) => vec![snap.entry(n).ok_or_else(|| {
            Error::not_found(format!("snapshot {} has no entry {n:?}", id.short()))
        })?],
        None => snap.entries.iter().collect(),
    };
    let index = repo.index_reader()?;
    for e in entries {
        if a.select.filter.name.is_none() {
            match &mut json {
                Some(v) => v.push(serde_json::json!({
                    "name": e.name, "kind": e.kind, "size": e.size, "started": e.started, "finished": e.finished,
                    "command": e.command, "path": e.path.as_ref().map(|p| p.lossy()), "stats": e.stats, "meta": e.meta,
                })),
                None => {
                    let kind = match e.kind {
                        EntryKind::Stream => "stream",
                        EntryKind::Tree => "tree",
                    };
                    let described = e.meta.get("kind").and_then(|k| k.as_str()).map(|k| {
                        let at = e
                            .meta
                            .get("url")
                            .or_else(|| e.meta.get("path"))
                            .and_then(|v| v.as_str())
                            .unwrap_or("");
                        format!("{k} {at}")
                    });
                    let from = described
                        .or_else(|| e.command.as_ref().map(|c| c.join(" ")))
                        .or_else(|| e.path.as_ref().map(|p| p.lossy()))
                        .unwrap_or_else(|| "stdin".into());
                    outln!(
                        "{:<24} {:<6} {:>12}  {}",
                        e.name,
                        kind,
                        HumanBytes(e.size).to_string(),
                        label::shown(&from)
                    );
                }
            }
        } else if let Some(tree) = &e.tree {
            list_tree(&repo, &index, tree, Path::new(""), &mut json)?;
        } else {
            outln!("{} (stream, {} bytes)", e.name, e.size);
        }
    }
    if json.is_none() && a.select.filter.name.is_none() {
        for f in &snap.failed {
            outln!("{:<24} FAILED  {}", f.name, f.error);
        }
    }
    if let Some(v) = json {
        print_json(&serde_json::Value::Array(v))?;
    }
    Ok(0)
}

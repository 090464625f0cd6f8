//! `coffre sync --to PATH`: an encrypted copy, consistent at every moment,
//! incremental, resumable, that never deletes and notices a rollback.

mod common;

use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn sync(r: &TestRepo, to: &Path, extra: &[&str]) -> std::process::Output {
    let mut a = vec!["sync", "--to", to.to_str().unwrap(), "--json"];
    a.extend_from_slice(extra);
    r.run(&a)
}

fn sync_ok(r: &TestRepo, to: &Path) -> Value {
    let o = sync(r, to, &[]);
    assert_ok(&o);
    parse_json_line(&o)
}

/// `coffre --repo REMOTE ARGS` with the same password.
fn on(r: &TestRepo, remote: &Path, args: &[&str]) -> std::process::Output {
    let mut c = bare_cmd();
    c.env("COFFRE_REPO", remote)
        .env("COFFRE_PASSWORD", &r.password)
        .args(args);
    output_within(c, Duration::from_secs(120))
}

fn files_under(dir: &Path) -> usize {
    walk(dir).into_iter().filter(|p| p.is_file()).count()
}

#[test]
fn a_synced_copy_restores_everything_after_the_local_repository_is_gone() {
    let r = TestRepo::small_chunks();
    let db = random_bytes(3 << 20, 1);
    let vol = r.path("vol");
    fs::create_dir_all(vol.join("sub")).unwrap();
    fs::write(vol.join("a.bin"), random_bytes(700_000, 2)).unwrap();
    fs::write(vol.join("sub/b.txt"), "b\n".repeat(5000)).unwrap();
    r.backup_bytes("db", &db, &[]);
    r.backup_path("vol", &vol);
    let remote = r.path("offsite");

    let v = sync_ok(&r, &remote);
    assert!(u64_of(&v, "objects_sent") >= 4, "{v}");
    assert_eq!(u64_of(&v, "snapshots_remote"), 2);
    // nothing new: nothing sent
    let v = sync_ok(&r, &remote);
    assert_eq!(u64_of(&v, "objects_sent"), 0, "{v}");
    // one more night: only the new objects go
    let db2 = [&db[..], &random_bytes(200_000, 3)[..]].concat();
    r.backup_bytes("db", &db2, &[]);
    let v = sync_ok(&r, &remote);
    assert_eq!(u64_of(&v, "snapshots_sent"), 1, "{v}");
    assert!(u64_of(&v, "bytes_sent") < 1_500_000, "only new data: {v}");

    // the copy holds nothing readable without the key
    for f in walk(&remote).into_iter().filter(|p| p.is_file()) {
        let bytes = fs::read(&f).unwrap();
        assert!(
            !bytes.windows(16).any(|w| w == &db[1000..1016]),
            "{} holds plaintext",
            f.display()
        );
    }

    // the local disk is gone: restore from the copy
    fs::remove_dir_all(&r.repo).unwrap();
    let o = on(&r, &remote, &["dump", "latest", "--name", "db"]);
    assert_ok(&o);
    assert!(o.stdout == db2, "the newest db from the copy");
    let target = r.path("restored");
    let o = on(
        &r,
        &remote,
        &[
            "restore",
            "latest",
            "--name",
            "vol",
            "--target",
            target.to_str().unwrap(),
        ],
    );
    assert_ok(&o);
    assert_trees_equal(&vol, &find_dir(&target, "vol"), CompareOpts::all());
    assert_ok(&on(&r, &remote, &["check"]));
}

fn find_dir(root: &Path, name: &str) -> std::path::PathBuf {
    if root.file_name().is_some_and(|n| n == name) {
        return root.to_path_buf();
    }
    walk(root)
        .into_iter()
        .find(|p| p.is_dir() && p.file_name().is_some_and(|n| n == name))
        .unwrap_or_else(|| root.to_path_buf())
}

#[test]
fn a_killed_sync_leaves_a_consistent_copy_and_the_rerun_sends_only_the_rest() {
    let r = TestRepo::small_chunks();
    let data = random_bytes(24 << 20, 4);
    r.backup_bytes("db", &data, &[]);
    let local_objects = r.pack_files().len() + 1;
    let remote = r.path("offsite");
    let mut c = r.cmd();
    c.args(["sync", "--to", remote.to_str().unwrap(), "--jobs", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    let start = Instant::now();
    // kill it once some packs arrived, before all did
    loop {
        let n = if remote.join("packs").exists() {
            files_under(&remote.join("packs"))
        } else {
            0
        };
        if n >= 3 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "sync too slow");
        assert!(
            child.try_wait().unwrap().is_none(),
            "sync finished before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let arrived = files_under(&remote.join("packs"));
    assert!(
        arrived < local_objects,
        "killed mid-way: {arrived} packs there"
    );
    // consistent at every moment: no snapshot before its packs
    assert!(
        !remote.join("snapshots").exists() || files_under(&remote.join("snapshots")) == 0,
        "a snapshot arrived before its packs"
    );

    let v = sync_ok(&r, &remote);
    assert_eq!(
        u64_of(&v, "objects_sent") as usize,
        local_objects - arrived,
        "only what was missing is sent: {v}"
    );
    let o = on(&r, &remote, &["dump", "latest", "--name", "db"]);
    assert_ok(&o);
    assert!(o.stdout == data);
    assert_ok(&on(&r, &remote, &["scrub", "--all"]));
}

#[test]
fn a_rolled_back_copy_is_refused_and_nothing_is_ever_deleted_there() {
    let r = TestRepo::small_chunks();
    r.backup_bytes("db", &random_bytes(1 << 20, 5), &[]);
    let remote = r.path("offsite");
    sync_ok(&r, &remote);
    let old_copy = r.path("offsite-monday");
    copy_dir(&remote, &old_copy);
    r.backup_bytes("db", &random_bytes(1 << 20, 6), &[]);
    sync_ok(&r, &remote);

    // forget locally: the copy keeps its history
    assert_ok(&r.run(&["forget", "--keep-last", "1", "--prune"]));
    let v = sync_ok(&r, &remote);
    assert_eq!(u64_of(&v, "snapshots_remote"), 2, "sync never deletes: {v}");

    // someone puts Monday's state back: coffre notices
    fs::remove_dir_all(&remote).unwrap();
    copy_dir(&old_copy, &remote);
    let o = sync(&r, &remote, &[]);
    assert_code(&o, 14);
    assert!(stderr_of(&o).contains("rolled back"), "{}", stderr_of(&o));
    let o = sync(&r, &remote, &["--accept-remote-state"]);
    assert_ok(&o);

    // a target holding another repository is refused
    let other = TestRepo::small_chunks();
    let o = sync(&r, &other.repo, &[]);
    assert_code(&o, 2);
    assert!(
        stderr_of(&o).contains("another repository"),
        "{}",
        stderr_of(&o)
    );
}

#[test]
fn damage_on_the_copy_is_found_by_scrubbing_it() {
    let r = TestRepo::small_chunks();
    r.backup_bytes("db", &random_bytes(1 << 20, 7), &[]);
    let remote = r.path("offsite");
    sync_ok(&r, &remote);
    let pack = walk(&remote.join("packs"))
        .into_iter()
        .find(|p| p.is_file())
        .unwrap();
    let mut b = fs::read(&pack).unwrap();
    b[50] ^= 1;
    fs::write(&pack, b).unwrap();
    let o = on(&r, &remote, &["scrub", "--all"]);
    assert_code(&o, 14);
    let name = pack.file_name().unwrap().to_string_lossy().into_owned();
    assert!(stderr_of(&o).contains(&name), "{}", stderr_of(&o));
    // the local repository is untouched and still fine
    assert_ok(&r.run(&["scrub", "--all"]));
}

fn copy_dir(from: &Path, to: &Path) {
    let o = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .output()
        .unwrap();
    assert!(o.status.success());
}

/// `--bwlimit` holds the average upload rate under the cap (a lower bound
/// on the time: the limiter can only make a sync slower, never faster).
#[test]
fn bwlimit_caps_the_upload_rate() {
    let r = TestRepo::small_chunks();
    r.backup_bytes("db", &random_bytes(3 << 20, 91), &[]);
    let remote = r.path("offsite");
    let started = Instant::now();
    let o = sync(&r, &remote, &["--bwlimit", "1M", "--jobs", "4"]);
    assert_ok(&o);
    let sent = u64_of(&parse_json_line(&o), "bytes_sent");
    assert!(sent > 3_000_000, "{sent}");
    // the first object goes at once; the rest wait their turn
    let floor = Duration::from_secs_f64((sent - (1 << 20)) as f64 / (1 << 20) as f64 * 0.9);
    assert!(
        started.elapsed() >= floor,
        "{sent} bytes in {:?}, under the 1 MiB/s cap would take at least {floor:?}",
        started.elapsed()
    );
}

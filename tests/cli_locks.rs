//! Repository locks (format-spec/locks.md): who holds them, stale ones, and
//! the lease a backup must still hold when it commits.

mod common;

use std::fs;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn this_host() -> String {
    let o = Command::new("hostname").output().unwrap();
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

/// Put a lock file into the repository as another process would.
fn plant_lock(r: &TestRepo, name: &str, exclusive: bool, host: &str, pid: u32, expires: i64) {
    let dir = r.repo.join("locks");
    fs::create_dir_all(&dir).unwrap();
    let body = serde_json::json!({
        "version": 1, "exclusive": exclusive, "command": "prune", "host": host,
        "user": "ops", "pid": pid, "pid_start": 1, "created": "2026-11-21T03:00:00Z",
        "expires": expires,
    });
    fs::write(dir.join(name), body.to_string()).unwrap();
}

fn lock_files(r: &TestRepo) -> Vec<String> {
    match fs::read_dir(r.repo.join("locks")) {
        Ok(d) => d
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

const FOREIGN: &str = "0123456789abcdef0123456789abcdef";

#[test]
fn a_live_exclusive_lock_blocks_a_backup_and_says_who_holds_it() {
    let r = TestRepo::init(&[]);
    plant_lock(&r, FOREIGN, true, "elsewhere", 999, now_ms() + 600_000);
    let o = r.run_with_stdin(&["backup", "--name", "x", "--stdin"], b"data\n");
    assert_code(&o, 12);
    let err = stderr_of(&o);
    assert!(
        err.contains("pid 999 on elsewhere") && err.contains("coffre prune"),
        "{err}"
    );
    assert!(err.contains("coffre unlock"), "{err}");
    assert!(r.snapshot_ids().is_empty());
    assert_eq!(lock_files(&r), [FOREIGN], "the refused backup left no lock");

    // unlock leaves a lock that is still being refreshed
    let o = r.run(&["unlock"]);
    assert_ok(&o);
    assert!(stderr_of(&o).contains("still held"), "{}", stderr_of(&o));
    assert_code(
        &r.run_with_stdin(&["backup", "--name", "x", "--stdin"], b"data\n"),
        12,
    );
    // --all removes it
    assert_ok(&r.run(&["unlock", "--all"]));
    assert!(lock_files(&r).is_empty());
    let o = r.run_with_stdin(&["backup", "--name", "x", "--stdin"], b"data\n");
    assert_ok(&o);
    assert_eq!(r.snapshot_ids().len(), 1);
    assert!(
        lock_files(&r).is_empty(),
        "a finished backup releases its lock"
    );
}

#[test]
fn shared_locks_coexist_and_stale_locks_do_not_block() {
    let r = TestRepo::init(&[]);
    // a live shared lock (another backup running elsewhere): no conflict
    plant_lock(&r, FOREIGN, false, "elsewhere", 999, now_ms() + 600_000);
    assert_ok(&r.run_with_stdin(&["backup", "--name", "x", "--stdin"], b"1\n"));
    assert_eq!(lock_files(&r), [FOREIGN]);
    fs::remove_file(r.repo.join("locks").join(FOREIGN)).unwrap();

    // an expired exclusive lock of another host: its holder lost its lease
    plant_lock(&r, FOREIGN, true, "elsewhere", 999, now_ms() - 1000);
    assert_ok(&r.run_with_stdin(&["backup", "--name", "x", "--stdin"], b"2\n"));
    let o = r.run(&["unlock"]);
    assert_ok(&o);
    assert!(stderr_of(&o).contains("removed"), "{}", stderr_of(&o));
    assert!(lock_files(&r).is_empty());

    // an exclusive lock of a process of this host that is gone: cleared
    let mut gone = Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    plant_lock(&r, FOREIGN, true, &this_host(), pid, now_ms() + 600_000);
    let o = r.run_with_stdin(&["backup", "--name", "x", "--stdin"], b"3\n");
    assert_ok(&o);
    assert!(
        stderr_of(&o).contains("process is gone"),
        "{}",
        stderr_of(&o)
    );
    assert!(lock_files(&r).is_empty());
    assert_eq!(r.snapshot_ids().len(), 3);
}

#[test]
fn a_backup_frozen_past_its_lease_commits_nothing() {
    let r = TestRepo::init(&[]);
    let mut c = r.cmd();
    c.env("COFFRE_LOCK_LEASE_SECS", "2")
        .args(["backup", "--name", "frozen", "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&random_bytes(3 << 20, 7)).unwrap();
    // wait until it holds its lock, then freeze it past its lease
    let start = std::time::Instant::now();
    while lock_files(&r).is_empty() {
        assert!(start.elapsed() < Duration::from_secs(30), "no lock taken");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    std::thread::sleep(Duration::from_millis(3500));
    assert!(
        Command::new("kill")
            .args(["-CONT", &pid])
            .status()
            .unwrap()
            .success()
    );
    stdin.write_all(b"the end\n").unwrap();
    drop(stdin);
    let o = child.wait_with_output().unwrap();
    assert_code(&o, 12);
    assert!(stderr_of(&o).contains("lock ran out"), "{}", stderr_of(&o));
    assert!(r.snapshot_ids().is_empty(), "nothing committed");
    // the repository is fine for the next backup
    let o = r.run_with_stdin(&["backup", "--name", "after", "--stdin"], b"ok\n");
    assert_ok(&o);
    assert_eq!(r.dump(&["latest", "--name", "after"]), b"ok\n");
}

/// The storage is not trusted (format-spec/threat-model.md): a planted lock
/// file must not put an escape sequence on the user's terminal, an
/// unreadable one must not be taken for no lock, and `unlock --all`, which
/// the error tells the user to run, must remove both kinds.
#[test]
fn planted_and_unreadable_lock_files_block_unprinted_and_unlock_all_removes_them() {
    const GARBAGE: &str = "fedcba9876543210fedcba9876543210";
    let r = TestRepo::init(&[]);
    let dir = r.repo.join("locks");
    fs::create_dir_all(&dir).unwrap();
    let body = serde_json::json!({
        "version": 1, "exclusive": true, "command": "prune\u{1b}]0;pwned\u{7}\u{1b}[2J",
        "host": "elsewhere", "user": "ops", "pid": 999, "pid_start": 1,
        "created": "2026-11-21T03:00:00Z", "expires": now_ms() + 600_000,
    });
    fs::write(dir.join(FOREIGN), body.to_string()).unwrap();
    let no_escape = |o: &std::process::Output| {
        assert!(
            !o.stderr.contains(&0x1b) && !o.stdout.contains(&0x1b),
            "an escape sequence reached the terminal: {o:?}"
        )
    };

    let o = r.run_with_stdin(&["backup", "--name", "x", "--stdin"], b"data\n");
    assert_code(&o, 14);
    no_escape(&o);
    let err = stderr_of(&o);
    assert!(
        err.contains(&format!(
            "lock file locks/{FOREIGN} its command holds a control character"
        )) && err.contains("coffre unlock --all"),
        "{err}"
    );
    assert!(r.snapshot_ids().is_empty());

    // plain unlock cannot tell whose it is: it stays, and is named
    fs::write(dir.join(GARBAGE), b"\x1b[31mnot a lock").unwrap();
    let o = r.run(&["unlock"]);
    assert_code(&o, 14);
    no_escape(&o);
    let mut left = lock_files(&r);
    left.sort();
    assert_eq!(left, [FOREIGN, GARBAGE]);

    let o = r.run(&["unlock", "--all"]);
    assert_ok(&o);
    no_escape(&o);
    let err = stderr_of(&o);
    for name in [FOREIGN, GARBAGE] {
        assert!(
            err.contains(&format!("removed the unreadable lock file locks/{name}")),
            "{err}"
        );
    }
    assert!(lock_files(&r).is_empty());
    assert_ok(&r.run_with_stdin(&["backup", "--name", "x", "--stdin"], b"data\n"));
    assert_eq!(r.snapshot_ids().len(), 1);
}

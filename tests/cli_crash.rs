//! Crash safety: a backup killed with SIGKILL at any point leaves every
//! earlier snapshot intact, adds no snapshot, and does not stop the next
//! backup from working.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;

/// Start `coffre backup -n NAME --stdin` fed by a thread that writes up to
/// `total` pseudo-random bytes in 256 KiB blocks until told to stop.
fn start_fed_backup(
    r: &TestRepo,
    name: &str,
    total: u64,
) -> (Child, Arc<AtomicBool>, std::thread::JoinHandle<u64>) {
    let mut c = r.cmd();
    c.args(["backup", "-n", name, "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let feeder = std::thread::spawn(move || {
        let mut rng = XorShift::new(0xfeed);
        let mut block = vec![0u8; 256 * 1024];
        let mut sent = 0u64;
        while sent < total && !stop2.load(Ordering::Relaxed) {
            rng.fill(&mut block);
            if stdin.write_all(&block).is_err() {
                break;
            }
            sent += block.len() as u64;
            std::thread::sleep(Duration::from_millis(2));
        }
        sent
    });
    (child, stop, feeder)
}

fn kill_and_reap(child: &mut Child) {
    // Child::kill sends SIGKILL to this child only
    child.kill().expect("SIGKILL coffre");
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(9),
        "coffre should have died by SIGKILL: {status:?}"
    );
}

/// The first snapshot, unchanged, and nothing else.
fn check_only_first(r: &TestRepo, first_id: &str, first: &[u8]) {
    let snaps = r.snapshots(&[]);
    let ids: Vec<&str> = snaps.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![first_id], "exactly the first snapshot is listed");
    assert_eq!(r.snapshot_files().len(), 1);
    assert_eq!(
        r.dump(&["--name", "db"]),
        first,
        "first snapshot restores byte for byte"
    );
    let out = r.path("first.restored");
    let _ = fs::remove_file(&out);
    let o = r.run(&[
        OsStr::new("restore"),
        OsStr::new(first_id),
        OsStr::new("--name"),
        OsStr::new("db"),
        OsStr::new("--target"),
        out.as_os_str(),
    ]);
    assert_ok(&o);
    assert_eq!(fs::read(&out).unwrap(), first);
}

/// Kill a 200 MiB backup after it has written a few packs.
fn kill_mid_backup(r: &TestRepo) {
    let packs_before = r.pack_files().len();
    let (mut child, stop, feeder) = start_fed_backup(r, "db", 200 << 20);
    let t0 = Instant::now();
    loop {
        let now = r.pack_files().len();
        if now >= packs_before + 4 {
            break;
        }
        if let Some(st) = child.try_wait().unwrap() {
            panic!("the backup ended before it could be killed: {st:?}");
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "no new packs after 120 s ({now} packs)"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    kill_and_reap(&mut child);
    stop.store(true, Ordering::Relaxed);
    let sent = feeder.join().unwrap();
    assert!(sent < 200 << 20, "killed mid-way (sent {sent} bytes)");
    assert!(
        r.pack_files().len() > packs_before,
        "the killed run wrote packs"
    );
}

#[test]
fn sigkill_during_backup_keeps_earlier_snapshot() {
    let r = TestRepo::small_chunks();
    let first = random_bytes(3 << 20, 1);
    let j = r.backup_bytes("db", &first, &[]);
    let first_id = j["snapshot"].as_str().unwrap().to_string();

    kill_mid_backup(&r);
    check_only_first(&r, &first_id, &first);

    // a new backup works afterwards, and both snapshots restore
    let second = random_bytes(5 << 20, 2);
    let j2 = r.backup_bytes("db", &second, &[]);
    assert_ne!(j2["snapshot"].as_str().unwrap(), first_id);
    assert_eq!(r.dump(&["--name", "db"]), second);
    assert_eq!(r.dump(&["latest~1", "--name", "db"]), first);
    assert_eq!(r.snapshots(&[]).len(), 2);
    // and a repeat of the first data stores nothing new
    let j3 = r.backup_bytes("db", &first, &[]);
    assert_eq!(u64_of(&j3, "chunks_new"), 0, "{j3}");
}

#[test]
fn sigkill_then_index_deleted_still_restores() {
    let r = TestRepo::small_chunks();
    let first = random_bytes(2 << 20, 3);
    let j = r.backup_bytes("db", &first, &[]);
    let first_id = j["snapshot"].as_str().unwrap().to_string();
    kill_mid_backup(&r);
    // what the index error hints say to do; the -wal/-shm files of the
    // killed process may still be there
    fs::remove_file(r.repo.join("index/index.sqlite")).unwrap();
    check_only_first(&r, &first_id, &first);
    let second = random_bytes(1 << 20, 4);
    r.backup_bytes("db", &second, &[]);
    assert_eq!(r.dump(&["--name", "db"]), second);
    assert_eq!(r.dump(&["latest~1", "--name", "db"]), first);
}

/// Kill backups at many different moments (including around the commit):
/// every snapshot that is listed afterwards restores exactly, none is
/// half-there, and a final backup works.
#[test]
fn sigkill_at_any_moment_never_leaves_a_broken_snapshot() {
    let r = TestRepo::small_chunks();
    let base = random_bytes(1 << 20, 5);
    let j = r.backup_bytes("base", &base, &[]);
    let base_id = j["snapshot"].as_str().unwrap().to_string();

    let mut inputs = Vec::new();
    for i in 0..10u64 {
        let data = random_bytes((3 << 20) + i as usize * 1000, 100 + i);
        let input = r.path(&format!("input-{i}"));
        fs::write(&input, &data).unwrap();
        let name = format!("run/{i}");
        let mut c = r.cmd();
        c.args(["backup", "-n", &name, "--stdin"])
            .stdin(fs::File::open(&input).unwrap())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = c.spawn().unwrap();
        std::thread::sleep(Duration::from_millis(15 * i));
        let _ = child.kill();
        let _ = child.wait();
        inputs.push((name, data));
    }

    let snaps = r.snapshots(&[]);
    eprintln!("{} of 10 killed backups had finished", snaps.len() - 1);
    assert_eq!(snaps[0]["id"], base_id.as_str());
    assert_eq!(r.snapshot_files().len(), snaps.len());
    for s in &snaps {
        let id = s["id"].as_str().unwrap();
        let name = s["entries"][0]["name"].as_str().unwrap();
        let want = if name == "base" {
            &base
        } else {
            &inputs.iter().find(|(n, _)| n == name).unwrap().1
        };
        let o = r.run(&["dump", id]);
        assert_ok(&o);
        assert!(
            o.stdout == *want,
            "snapshot {id} ({name}) does not restore exactly"
        );
    }
    let fin = random_bytes(2 << 20, 999);
    r.backup_bytes("final", &fin, &[]);
    assert_eq!(r.dump(&["--name", "final"]), fin);
    assert_eq!(r.dump(&["--name", "base"]), base);
}

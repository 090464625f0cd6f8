//! Peak memory stays under the 100 MiB on incompressible input:
//! every chunk is stored whole, so the chunks in flight, the sealed blobs
//! and the packs waiting to be written are as large as they get. Measured
//! as the child's peak resident set (`ru_maxrss`), not by timing anything.

mod common;

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const LIMIT_KIB: i64 = 100 << 10;
/// Enough input for the pipeline to reach its steady state several times
/// over (packs are 8 MiB, chunks up to 8 MiB); more only costs disk.
const INPUT: usize = 256 << 20;

/// Start `cmd` with stdout discarded and stdin as given.
fn start(cmd: &mut Command, stdin: Stdio) -> Child {
    cmd.stdin(stdin)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn coffre")
}

/// Wait for `child`; returns whether it succeeded and its peak RSS in KiB.
/// `wait4` reaps it as `Child::wait` would, and reports its own rusage (not
/// the largest of all children so far, as `getrusage` would). A run longer
/// than five minutes is a hang: it is killed and fails the test.
fn finish(mut child: Child) -> (bool, i64) {
    let limit = Duration::from_secs(300);
    let started = Instant::now();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        let rc = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if rc == pid {
            break;
        }
        assert_eq!(rc, 0, "wait4: {}", std::io::Error::last_os_error());
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("coffre did not finish within {limit:?} (hang?)");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    (ok, usage.ru_maxrss)
}

#[test]
fn backup_scrub_and_restore_of_incompressible_data_stay_under_100_mib() {
    let t0 = Instant::now();
    // the default chunk and pack sizes; the small KDF keeps Argon2's own
    // 64 MiB out of the measurement, so what is measured is the pipeline
    let r = TestRepo::init(&[]);
    let mut backup = start(
        r.cmd().args(["backup", "--name", "noise", "--stdin"]),
        Stdio::piped(),
    );
    let mut pipe = backup.stdin.take().unwrap();
    let mut rng = XorShift::new(7);
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..INPUT >> 20 {
        rng.fill(&mut block);
        pipe.write_all(&block).expect("feeding the backup");
    }
    drop(pipe);
    let (ok, rss) = finish(backup);
    assert!(ok, "the backup failed");
    assert!(
        rss <= LIMIT_KIB,
        "backup of {} MiB of noise peaked at {} MiB",
        INPUT >> 20,
        rss >> 10
    );

    let (ok, scrub_rss) = finish(start(r.cmd().args(["scrub", "--all"]), Stdio::null()));
    assert!(ok, "the scrub failed");
    assert!(
        scrub_rss <= LIMIT_KIB,
        "scrub peaked at {} MiB",
        scrub_rss >> 10
    );

    let (ok, dump_rss) = finish(start(
        r.cmd().args(["dump", "--name", "noise", "latest"]),
        Stdio::null(),
    ));
    assert!(ok, "the restore failed");
    assert!(
        dump_rss <= LIMIT_KIB,
        "restore peaked at {} MiB",
        dump_rss >> 10
    );
    eprintln!(
        "peak RSS: backup {} MiB, scrub {} MiB, restore {} MiB ({:?})",
        rss >> 10,
        scrub_rss >> 10,
        dump_rss >> 10,
        t0.elapsed()
    );
}

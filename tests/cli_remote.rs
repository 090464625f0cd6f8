//! Remote repositories and off-site sync against real servers on loopback:
//! OpenSSH's sshd (SFTP) and s3s-fs (an S3 protocol server), both started
//! by the tests (tests/common/servers.rs). Every remote keeps its objects
//! as files on this machine, so a test can look at what the server holds,
//! corrupt it or roll it back.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::servers::{Azurite, S3Server, Sshd};
use common::*;
use serde_json::Value;

// held only to keep the server running until the remote is dropped
#[allow(dead_code)]
enum Server {
    S3(S3Server),
    Azure(Azurite),
    Sftp(Sshd, tempfile::TempDir),
}

/// A remote place for a repository: its URL, the environment a client
/// needs, and where its objects are on this machine's disk.
struct Remote {
    /// Stops the server when the remote is dropped.
    _server: Server,
    url: String,
    /// Where the server keeps the repository's files: one file per object
    /// (S3, SFTP) or, with `exact: false`, the server's own data files.
    disk: PathBuf,
    exact: bool,
    env: Vec<(String, String)>,
}

impl Remote {
    fn s3(server: S3Server, prefix: &str) -> Remote {
        let url = format!("s3://{}/{prefix}", server.bucket());
        let disk = server.object_path(prefix);
        let env = server.env();
        Remote {
            _server: Server::S3(server),
            url,
            disk,
            exact: true,
            env,
        }
    }

    fn azure(server: Azurite, prefix: &str) -> Remote {
        let url = format!("azblob://{}/{prefix}", server.container());
        let disk = server.data_dir();
        let env = server.env();
        Remote {
            _server: Server::Azure(server),
            url,
            disk,
            exact: false,
            env,
        }
    }

    fn sftp(sshd: Sshd) -> Remote {
        let tmp = tempfile::Builder::new()
            .prefix("coffre-sftp-")
            .tempdir()
            .unwrap();
        // OpenDAL runs the `ssh` on PATH: this one checks the server's key
        // against the test's known_hosts instead of ~/.ssh/known_hosts
        let bin = tmp.path().join("bin");
        fs::create_dir(&bin).unwrap();
        let ssh = bin.join("ssh");
        fs::write(
            &ssh,
            format!(
                "#!/bin/sh\nexec /usr/bin/ssh -F /dev/null -o IdentitiesOnly=yes \
                 -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes \"$@\"\n",
                sshd.known_hosts().display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&ssh, fs::Permissions::from_mode(0o755)).unwrap();
        let disk = tmp.path().join("offsite/app");
        let url = sshd.url(&disk);
        let mut env = sshd.ssh_env();
        env.push((
            "PATH".into(),
            format!(
                "{}:{}",
                bin.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        ));
        env.push((
            "COFFRE_SSH_KEY".into(),
            sshd.key_file().to_str().unwrap().into(),
        ));
        Remote {
            _server: Server::Sftp(sshd, tmp),
            url,
            disk,
            exact: true,
            env,
        }
    }

    /// `coffre` with the remote's environment, `r`'s password and a cache
    /// directory of the caller's choosing (a fresh one is a new machine).
    fn cmd(&self, r: &TestRepo, cache: &Path) -> Command {
        let mut c = bare_cmd();
        c.env("COFFRE_PASSWORD", &r.password)
            .env("COFFRE_CACHE_DIR", cache)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    /// `coffre --repo REMOTE ARGS`.
    fn on(&self, r: &TestRepo, cache: &Path, args: &[&str]) -> Output {
        self.on_with_stdin(r, cache, args, Stdio::null())
    }

    /// `coffre --repo REMOTE ARGS` reading `stdin`.
    fn on_with_stdin(
        &self,
        r: &TestRepo,
        cache: &Path,
        args: &[&str],
        stdin: impl Into<Stdio>,
    ) -> Output {
        let mut c = self.cmd(r, cache);
        c.arg("--repo").arg(&self.url).args(args).stdin(stdin);
        output_within(c, Duration::from_secs(180))
    }

    /// `coffre --repo LOCAL sync --to REMOTE --json EXTRA`.
    fn sync(&self, r: &TestRepo, extra: &[&str]) -> Output {
        let mut c = self.cmd(r, &r.path("cache"));
        c.env("COFFRE_REPO", &r.repo)
            .args(["sync", "--to", &self.url, "--json"])
            .args(extra);
        output_within(c, Duration::from_secs(180))
    }

    #[track_caller]
    fn sync_ok(&self, r: &TestRepo, extra: &[&str]) -> Value {
        let o = self.sync(r, extra);
        assert_ok(&o);
        parse_json_line(&o)
    }

    /// The repository's object files on the server's disk (no locks, no
    /// temp files).
    fn objects(&self) -> Vec<PathBuf> {
        walk(&self.disk)
            .into_iter()
            .filter(|p| p.is_file())
            .filter(|p| {
                let rel = p.strip_prefix(&self.disk).unwrap();
                !rel.starts_with("locks") && !rel.starts_with("tmp")
            })
            .collect()
    }
}

fn backup_db_and_volume(r: &TestRepo) -> (Vec<u8>, PathBuf) {
    let db = random_bytes(3 << 20, 11);
    let vol = r.path("vol");
    fs::create_dir_all(vol.join("sub/empty")).unwrap();
    fs::write(vol.join("a.bin"), random_bytes(900_000, 12)).unwrap();
    fs::write(vol.join("sub/b.txt"), "uploads\n".repeat(20_000)).unwrap();
    std::os::unix::fs::symlink("../a.bin", vol.join("sub/link")).unwrap();
    r.backup_bytes("postgres/app", &db, &[]);
    r.backup_path("uploads", &vol);
    (db, vol)
}

/// Back up, sync, grow, sync again, lose the local disk, restore from the
/// remote byte for byte; the remote never holds plaintext.
fn offsite_round_trip(remote: &Remote) {
    let r = TestRepo::small_chunks();
    let (db, vol) = backup_db_and_volume(&r);

    let v = remote.sync_ok(&r, &[]);
    assert!(u64_of(&v, "objects_sent") >= 4, "{v}");
    assert_eq!(u64_of(&v, "snapshots_remote"), 2, "{v}");
    if remote.exact {
        let on_remote = remote.objects().len();
        assert_eq!(u64_of(&v, "objects_sent") as usize, on_remote, "{v}");
    }

    // nothing new, nothing sent
    let v = remote.sync_ok(&r, &[]);
    assert_eq!(u64_of(&v, "objects_sent"), 0, "{v}");
    // the next night: only what is new goes
    let db2 = [&db[..], &random_bytes(300_000, 13)[..]].concat();
    r.backup_bytes("postgres/app", &db2, &[]);
    let v = remote.sync_ok(&r, &[]);
    assert_eq!(u64_of(&v, "snapshots_sent"), 1, "{v}");
    assert!(u64_of(&v, "bytes_sent") < 1_500_000, "only new data: {v}");

    // the server holds nothing readable
    for f in remote.objects() {
        let bytes = fs::read(&f).unwrap();
        for needle in [
            &db2[5000..5016],
            &b"uploads\nuploads\n"[..],
            b"postgres/app",
        ] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} holds plaintext",
                f.display()
            );
        }
    }

    // the local disk is gone; a new machine (empty cache) restores
    fs::remove_dir_all(&r.repo).unwrap();
    let cache = r.path("new-machine-cache");
    let o = remote.on(&r, &cache, &["snapshots", "--json"]);
    assert_ok(&o);
    let snaps: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 3, "{snaps}");
    let o = remote.on(&r, &cache, &["dump", "latest", "--name", "postgres/app"]);
    assert_ok(&o);
    assert!(o.stdout == db2, "the newest dump, byte for byte");
    let o = remote.on(&r, &cache, &["dump", "latest~1", "--name", "postgres/app"]);
    assert_ok(&o);
    assert!(o.stdout == db, "the older dump, byte for byte");
    let target = r.path("restored");
    let o = remote.on(
        &r,
        &cache,
        &[
            "restore",
            "latest",
            "--name",
            "uploads",
            "--target",
            target.to_str().unwrap(),
        ],
    );
    assert_ok(&o);
    assert_trees_equal(&vol, &target, CompareOpts::all());
    // and the remote checks clean
    let o = remote.on(&r, &cache, &["check"]);
    assert_ok(&o);
}

#[test]
fn sync_to_s3_then_restore_from_it_after_the_local_disk_is_gone() {
    offsite_round_trip(&Remote::s3(S3Server::start(), "offsite/app"));
}

/// One of OpenDAL's other services, unchanged: Azure Blob Storage, against
/// Microsoft's own emulator.
#[test]
fn sync_to_azure_blob_then_restore_from_it_after_the_local_disk_is_gone() {
    offsite_round_trip(&Remote::azure(Azurite::start(), "offsite/app"));
}

#[test]
fn sync_to_sftp_then_restore_from_it_after_the_local_disk_is_gone() {
    offsite_round_trip(&Remote::sftp(Sshd::start()));
}

const BACKUP_DB: [&str; 4] = ["backup", "--name", "db", "--stdin"];

#[test]
fn a_repository_can_live_on_s3_and_be_shared_by_two_machines() {
    let remote = Remote::s3(S3Server::start(), "app");
    let r = TestRepo::init(&[]); // only for its password and scratch space
    let (a, b) = (r.path("cache-a"), r.path("cache-b"));
    let mut c = remote.cmd(&r, &a);
    c.arg("--repo")
        .arg(&remote.url)
        .arg("init")
        .args(FAST_KDF)
        .args(["--chunk-size", "64", "--pack-size", "1"]);
    assert_ok(&output_within(c, Duration::from_secs(60)));
    // init refuses a place that holds one
    let mut c = remote.cmd(&r, &a);
    c.arg("--repo").arg(&remote.url).arg("init").args(FAST_KDF);
    assert_code(&output_within(c, Duration::from_secs(60)), 2);

    let data = random_bytes(2 << 20, 21);
    let src = r.path("in.bin");
    fs::write(&src, &data).unwrap();
    let o = remote.on_with_stdin(&r, &a, &BACKUP_DB, fs::File::open(&src).unwrap());
    assert_ok(&o);

    // machine B sees it, restores it and adds its own
    let o = remote.on(&r, &b, &["dump", "latest", "--name", "db"]);
    assert_ok(&o);
    assert!(o.stdout == data);
    let more = [&data[..], &random_bytes(500_000, 22)[..]].concat();
    fs::write(&src, &more).unwrap();
    let o = remote.on_with_stdin(
        &r,
        &b,
        &["backup", "--name", "db", "--stdin", "--json"],
        fs::File::open(&src).unwrap(),
    );
    assert_ok(&o);
    assert!(
        u64_of(&parse_json_line(&o), "bytes_new") < 1_500_000,
        "B deduplicates against what A stored"
    );
    // A's cached index catches up with B's packs
    let o = remote.on(&r, &a, &["dump", "latest", "--name", "db"]);
    assert_ok(&o);
    assert!(o.stdout == more);
    // B forgets and prunes A's snapshot; A must not deduplicate against
    // the packs that went (its next backup restores byte for byte)
    let o = remote.on(
        &r,
        &b,
        &[
            "forget",
            "--keep-last",
            "1",
            "--prune",
            "--max-unused",
            "0%",
        ],
    );
    assert_ok(&o);
    let o = remote.on_with_stdin(&r, &a, &BACKUP_DB, fs::File::open(&src).unwrap());
    assert_ok(&o);
    let o = remote.on(&r, &a, &["check"]);
    assert_ok(&o);
    let o = remote.on(&r, &b, &["dump", "latest", "--name", "db"]);
    assert_ok(&o);
    assert!(o.stdout == more);
}

#[test]
fn a_killed_sync_resumes_and_sends_only_what_is_missing() {
    let remote = Remote::s3(S3Server::start(), "kill");
    let r = TestRepo::small_chunks();
    r.backup_bytes("db", &random_bytes(12 << 20, 31), &[]);
    let local_objects = walk(&r.repo)
        .into_iter()
        .filter(|p| {
            let rel = p.strip_prefix(&r.repo).unwrap();
            p.is_file()
                && ["config", "keys", "packs", "snapshots"]
                    .iter()
                    .any(|d| rel.starts_with(d))
        })
        .count();

    // 2 MiB/s: about six seconds; killed after two
    let mut c = remote.cmd(&r, &r.path("cache"));
    c.env("COFFRE_REPO", &r.repo)
        .args([
            "sync",
            "--to",
            &remote.url,
            "--bwlimit",
            "2M",
            "--jobs",
            "2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    child.kill().unwrap();
    child.wait().unwrap();
    let arrived = remote.objects();
    assert!(
        !arrived.is_empty() && arrived.len() < local_objects,
        "killed mid-way: {} of {local_objects}",
        arrived.len()
    );
    assert!(
        !arrived
            .iter()
            .any(|p| p.starts_with(remote.disk.join("snapshots"))),
        "no snapshot before its packs"
    );

    let v = remote.sync_ok(&r, &[]);
    assert_eq!(
        u64_of(&v, "objects_sent") as usize,
        local_objects - arrived.len(),
        "only the missing objects are sent: {v}"
    );
    assert_eq!(remote.objects().len(), local_objects);
    let o = remote.on(&r, &r.path("fresh"), &["check"]);
    assert_ok(&o);
}

#[test]
fn a_rolled_back_sftp_copy_is_refused() {
    let remote = Remote::sftp(Sshd::start());
    let r = TestRepo::small_chunks();
    r.backup_bytes("db", &random_bytes(1 << 20, 41), &[]);
    remote.sync_ok(&r, &[]);
    let old = r.path("old-copy");
    copy_dir(&remote.disk, &old);
    r.backup_bytes("db", &random_bytes(1 << 20, 42), &[]);
    remote.sync_ok(&r, &[]);

    // the server is restored from an old backup of itself
    fs::remove_dir_all(&remote.disk).unwrap();
    copy_dir(&old, &remote.disk);
    let o = remote.sync(&r, &[]);
    assert_code(&o, 14);
    assert!(stderr_of(&o).contains("rolled back"), "{}", stderr_of(&o));
    // asked to, it sends the newer snapshot again
    let v = remote.sync_ok(&r, &["--accept-remote-state"]);
    assert_eq!(u64_of(&v, "snapshots_remote"), 2, "{v}");
}

#[test]
fn a_corrupted_object_on_s3_is_named_by_scrub_and_repaired_by_verify() {
    let remote = Remote::s3(S3Server::start(), "rot");
    let r = TestRepo::small_chunks();
    let data = random_bytes(3 << 20, 51);
    r.backup_bytes("db", &data, &[]);
    remote.sync_ok(&r, &[]);
    let pack = remote
        .objects()
        .into_iter()
        .find(|p| p.starts_with(remote.disk.join("packs")))
        .unwrap();
    let name = pack.file_name().unwrap().to_str().unwrap().to_string();
    let mut bytes = fs::read(&pack).unwrap();
    bytes[100] ^= 0x40;
    fs::write(&pack, &bytes).unwrap();

    let cache = r.path("scrub-cache");
    let o = remote.on(&r, &cache, &["scrub", "--all"]);
    assert_code(&o, 14);
    assert!(stderr_of(&o).contains(&name), "{}", stderr_of(&o));

    // a sync that reads back everything finds it and sends it again
    let v = remote.sync_ok(&r, &["--verify", "100%"]);
    let repaired = v["objects_repaired"].as_array().unwrap();
    assert_eq!(repaired.len(), 1, "{v}");
    assert!(repaired[0].as_str().unwrap().ends_with(&name), "{v}");
    let o = remote.on(&r, &cache, &["scrub", "--all"]);
    assert_ok(&o);
    let o = remote.on(&r, &cache, &["dump", "latest", "--name", "db"]);
    assert_ok(&o);
    assert!(o.stdout == data);

    // a snapshot injected on the server: reported by sync, named by check,
    // never listed or restored
    let fake = "ab".repeat(32);
    let snap = fs::read(
        remote
            .objects()
            .into_iter()
            .find(|p| p.starts_with(remote.disk.join("snapshots")))
            .unwrap(),
    )
    .unwrap();
    fs::write(remote.disk.join("snapshots").join(&fake), &snap).unwrap();
    let v = remote.sync_ok(&r, &[]);
    assert_eq!(v["snapshots_foreign"], serde_json::json!([fake]), "{v}");
    let o = remote.on(&r, &cache, &["check"]);
    assert_code(&o, 14);
    assert!(stderr_of(&o).contains(&fake), "{}", stderr_of(&o));
    let o = remote.on(&r, &cache, &["snapshots", "--json"]);
    assert_ok(&o);
    assert!(!stdout_of(&o).contains(&fake));
}

#[test]
fn prune_remote_applies_local_forget_and_prune_and_nothing_else() {
    let remote = Remote::s3(S3Server::start(), "prune");
    let r = TestRepo::small_chunks();
    r.backup_bytes("db", &random_bytes(2 << 20, 61), &[]);
    let last = random_bytes(2 << 20, 62);
    r.backup_bytes("db", &last, &[]);
    remote.sync_ok(&r, &[]);
    let o = r.run(&[
        "forget",
        "--keep-last",
        "1",
        "--prune",
        "--max-unused",
        "0%",
    ]);
    assert_ok(&o);

    // by default the copy keeps everything
    let v = remote.sync_ok(&r, &[]);
    assert_eq!(u64_of(&v, "snapshots_remote"), 2, "{v}");
    let before = remote.objects().len();
    let v = remote.sync_ok(&r, &["--prune-remote"]);
    assert_eq!(u64_of(&v, "snapshots_deleted"), 1, "{v}");
    assert!(u64_of(&v, "packs_deleted") >= 1, "{v}");
    assert_eq!(u64_of(&v, "snapshots_remote"), 1, "{v}");
    assert!(remote.objects().len() < before);
    let cache = r.path("c2");
    let o = remote.on(&r, &cache, &["check"]);
    assert_ok(&o);
    let o = remote.on(&r, &cache, &["dump", "latest", "--name", "db"]);
    assert_ok(&o);
    assert!(o.stdout == last);
}

#[test]
fn a_plan_backup_syncs_after_committing() {
    let remote = Remote::s3(S3Server::start(), "plan");
    let r = TestRepo::small_chunks();
    let vol = r.path("vol");
    fs::create_dir_all(&vol).unwrap();
    fs::write(vol.join("f"), random_bytes(100_000, 71)).unwrap();
    let plan = r.path("coffre.toml");
    fs::write(
        &plan,
        format!(
            "[repository]\npath = {}\n\n[[source]]\nname = \"uploads\"\nkind = \"files\"\n\
             paths = [{}]\n\n[[sync]]\nto = \"{}\"\nafter-backup = true\nverify = \"10%\"\n",
            lit(&r.repo),
            lit(&vol),
            remote.url
        ),
    )
    .unwrap();
    let mut c = remote.cmd(&r, &r.path("cache"));
    c.arg("--config").arg(&plan).arg("backup");
    let o = output_within(c, Duration::from_secs(120));
    assert_ok(&o);
    assert!(stderr_of(&o).contains("synced to"), "{}", stderr_of(&o));
    let o = remote.on(&r, &r.path("c2"), &["ls", "latest", "--name", "uploads"]);
    assert_ok(&o);
    assert!(stdout_of(&o).contains('f'), "{}", stdout_of(&o));

    // the target unreachable: the snapshot is saved here, the command fails
    let env = remote.env.clone();
    drop(remote);
    let mut c = bare_cmd();
    c.env("COFFRE_PASSWORD", &r.password)
        .envs(env)
        .env("COFFRE_CACHE_DIR", r.path("cache"))
        .env("COFFRE_RETRIES", "1")
        .env("COFFRE_RETRY_MIN_MS", "10")
        .arg("--config")
        .arg(&plan)
        .arg("backup");
    let o = output_within(c, Duration::from_secs(120));
    assert!(!o.status.success());
    assert!(stderr_of(&o).contains("is saved here"), "{}", stderr_of(&o));
    assert_eq!(r.snapshot_ids().len(), 2);
}

/// A proxy in front of the S3 server that answers the first `fail_first`
/// connections (or all of them) with `status` and closes them.
struct FlakyProxy {
    port: u16,
}

impl FlakyProxy {
    fn start(upstream: u16, fail_first: usize, status: &'static str) -> FlakyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(AtomicUsize::new(0));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut client) = conn else { return };
                let n = seen.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    if n < fail_first {
                        // read the request head, answer, hang up
                        let mut buf = [0u8; 65536];
                        let _ = client.set_read_timeout(Some(Duration::from_millis(200)));
                        let _ = client.read(&mut buf);
                        let _ = client.write_all(
                            format!(
                                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            )
                            .as_bytes(),
                        );
                        return;
                    }
                    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                        return;
                    };
                    let (mut c2, mut s2) =
                        (client.try_clone().unwrap(), server.try_clone().unwrap());
                    let up = std::thread::spawn(move || {
                        let _ = std::io::copy(&mut c2, &mut s2);
                        let _ = s2.shutdown(std::net::Shutdown::Write);
                    });
                    let (mut s3, mut c3) = (server, client);
                    let _ = std::io::copy(&mut s3, &mut c3);
                    let _ = c3.shutdown(std::net::Shutdown::Write);
                    let _ = up.join();
                });
            }
        });
        FlakyProxy { port }
    }
}

#[test]
fn transient_errors_are_retried_and_persistent_ones_fail_loudly() {
    let server = S3Server::start();
    let upstream = server.port();
    let remote = Remote::s3(server, "flaky");
    let r = TestRepo::small_chunks();
    let data = random_bytes(2 << 20, 81);
    r.backup_bytes("db", &data, &[]);

    // throttled and unavailable answers on the first connections: retried
    let proxy = FlakyProxy::start(upstream, 6, "503 Service Unavailable");
    let mut c = remote.cmd(&r, &r.path("cache"));
    c.env("COFFRE_REPO", &r.repo)
        .env(
            "AWS_ENDPOINT_URL",
            format!("http://127.0.0.1:{}", proxy.port),
        )
        .env("COFFRE_RETRY_MIN_MS", "20")
        .args(["sync", "--to", &remote.url, "--json"]);
    let o = output_within(c, Duration::from_secs(120));
    assert_ok(&o);
    assert!(stderr_of(&o).contains("retry"), "{}", stderr_of(&o));
    let o = remote.on(&r, &r.path("c2"), &["dump", "latest", "--name", "db"]);
    assert_ok(&o);
    assert!(o.stdout == data);

    // a server that keeps failing: a clear error, never "no snapshots"
    let broken = FlakyProxy::start(upstream, usize::MAX, "500 Internal Server Error");
    let started = Instant::now();
    for args in [&["snapshots"][..], &["dump", "latest", "--name", "db"][..]] {
        let mut c = remote.cmd(&r, &r.path("c3"));
        c.env(
            "AWS_ENDPOINT_URL",
            format!("http://127.0.0.1:{}", broken.port),
        )
        .env("COFFRE_RETRIES", "2")
        .env("COFFRE_RETRY_MIN_MS", "20")
        .arg("--repo")
        .arg(&remote.url)
        .args(args);
        let o = output_within(c, Duration::from_secs(120));
        assert_code(&o, 1);
        assert!(stderr_of(&o).contains("HTTP 500"), "{}", stderr_of(&o));
        assert!(o.stdout.is_empty());
    }
    let mut c = remote.cmd(&r, &r.path("cache"));
    c.env("COFFRE_REPO", &r.repo)
        .env(
            "AWS_ENDPOINT_URL",
            format!("http://127.0.0.1:{}", broken.port),
        )
        .env("COFFRE_RETRIES", "2")
        .env("COFFRE_RETRY_MIN_MS", "20")
        .args(["sync", "--to", &remote.url]);
    let o = output_within(c, Duration::from_secs(120));
    assert_code(&o, 1);
    assert!(started.elapsed() < Duration::from_secs(100));
    // the remote is still whole
    let o = remote.on(&r, &r.path("c4"), &["check"]);
    assert_ok(&o);
}

fn copy_dir(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

/// The issue's own example: a database dumped by a plan that syncs to S3
/// after each backup; the local repository is lost; the state as of a
/// given time is restored from S3 straight into a new PostgreSQL database.
#[test]
fn a_database_restores_from_s3_as_of_a_time_straight_into_postgres() {
    use common::servers::PgCluster;
    let pg = PgCluster::start();
    pg.psql("postgres", "CREATE DATABASE app;");
    pg.psql(
        "app",
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 20000) g;",
    );
    let state = |db: &str| pg.psql(db, "SELECT count(*), sum(hashtext(v)) FROM t;");
    let tuesday = state("app");
    let remote = Remote::s3(S3Server::start(), "pg");
    let r = TestRepo::small_chunks();
    let pass = secret_file(&r.path("pg.pass"), &pg.password);
    let plan = r.path("coffre.toml");
    fs::write(
        &plan,
        format!(
            "[repository]\npath = {}\n\n[[source]]\nname = 'postgres/app'\nkind = 'postgres'\n\
             url = '{}'\npassword-file = {}\nbin-dir = {}\n\n[[sync]]\nto = '{}'\n\
             after-backup = true\n",
            lit(&r.repo),
            pg.url("app"),
            lit(&pass),
            lit(&pg.bin),
            remote.url
        ),
    )
    .unwrap();
    let backup = || {
        let mut c = remote.cmd(&r, &r.path("cache"));
        c.arg("--config").arg(&plan).arg("backup");
        assert_ok(&output_within(c, Duration::from_secs(120)));
    };
    backup();
    std::thread::sleep(Duration::from_millis(1100));
    let at = chrono_free_local_now();
    std::thread::sleep(Duration::from_millis(1100));
    pg.psql("app", "DELETE FROM t WHERE id > 100;");
    backup();
    assert_ne!(state("app"), tuesday);

    fs::remove_dir_all(&r.repo).unwrap();
    let mut c = remote.cmd(&r, &r.path("new-machine"));
    c.arg("--config")
        .arg(&plan)
        .arg("--repo")
        .arg(&remote.url)
        .args(["restore", "--at", &at, "--only", "postgres/app", "--to"])
        .arg(pg.url("app_copy"))
        .arg("--to-password-file")
        .arg(&pass)
        .arg("--yes");
    let o = output_within(c, Duration::from_secs(180));
    assert_ok(&o);
    assert_eq!(state("app_copy"), tuesday, "{}", stderr_of(&o));
}

/// Local time as `YYYY-MM-DD HH:MM:SS` (what `--at` takes), from `date`.
fn chrono_free_local_now() -> String {
    let o = Command::new("date")
        .arg("+%Y-%m-%d %H:%M:%S")
        .output()
        .unwrap();
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

/// A repository created on SFTP; a backup that outlives several lock
/// leases commits (its lock file is rewritten in place on the server,
/// which SFTP can only do atomically with the posix-rename extension).
#[test]
fn a_long_backup_on_sftp_keeps_its_lock_alive() {
    let remote = Remote::sftp(Sshd::start());
    let r = TestRepo::init(&[]);
    let cache = r.path("cache");
    let mut c = remote.cmd(&r, &cache);
    c.arg("--repo").arg(&remote.url).arg("init").args(FAST_KDF);
    assert_ok(&output_within(c, Duration::from_secs(60)));
    let mut c = remote.cmd(&r, &cache);
    c.env("COFFRE_LOCK_LEASE_SECS", "2")
        .arg("--repo")
        .arg(&remote.url)
        .args([
            "backup",
            "--name",
            "slow",
            "--",
            "sh",
            "-c",
            "sleep 5; echo done",
        ]);
    let o = output_within(c, Duration::from_secs(60));
    assert_ok(&o);
    let o = remote.on(&r, &r.path("other"), &["dump", "latest", "--name", "slow"]);
    assert_ok(&o);
    assert_eq!(o.stdout, b"done\n");
    // nothing left behind: no lock, no temp file
    let left: Vec<PathBuf> = walk(&remote.disk)
        .into_iter()
        .filter(|p| p.is_file())
        .filter(|p| {
            p.starts_with(remote.disk.join("locks")) || p.starts_with(remote.disk.join("tmp"))
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

//! Shared helpers for the CLI integration tests: a throwaway repository,
//! running the `coffre` binary, deterministic test data, and a recursive
//! comparison of two directory trees.

#![allow(dead_code)]

pub mod servers;

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

pub const PASSWORD: &str = "correct horse battery staple";

/// `'…'`: a TOML literal string (no escapes; our temp paths have no quote).
pub fn lit(p: &Path) -> String {
    let s = p.to_str().expect("UTF-8 path");
    assert!(!s.contains('\''), "{s}");
    format!("'{s}'")
}

/// A 0600 file holding `secret` and a newline.
pub fn secret_file(path: &Path, secret: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    fs::write(path, format!("{secret}\n")).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
    path.to_path_buf()
}

/// Small Argon2 parameters: tests must not spend their time in the KDF.
pub const FAST_KDF: [&str; 6] = [
    "--kdf-memory",
    "8",
    "--kdf-iterations",
    "1",
    "--kdf-parallelism",
    "1",
];

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_coffre")
}

/// A `coffre` command with a clean environment: no repository, no password
/// source unless the caller adds one, stdin null.
pub fn bare_cmd() -> Command {
    let mut c = Command::new(bin());
    for var in [
        "COFFRE_REPO",
        "COFFRE_PASSWORD",
        "COFFRE_PASSWORD_FILE",
        "COFFRE_PASSWORD_COMMAND",
        "COFFRE_NEW_PASSWORD",
        "COFFRE_NEW_PASSWORD_FILE",
    ] {
        c.env_remove(var);
    }
    c.stdin(Stdio::null());
    c
}

/// Run a command to completion, failing the test if it takes longer than
/// `limit` (a hang is a bug: it is killed and reported).
pub fn output_within(mut cmd: Command, limit: Duration) -> Output {
    cmd.stdout(Stdio::piped());
    finish_within(cmd, limit)
}

/// Like [`output_within`], but stdout goes wherever `cmd` already sends it
/// (the returned `stdout` is empty).
pub fn finish_within(mut cmd: Command, limit: Duration) -> Output {
    cmd.stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn coffre");
    let out_pipe = child.stdout.take();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(mut p) = out_pipe {
            let _ = p.read_to_end(&mut v);
        }
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err_pipe.read_to_end(&mut v);
        v
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {limit:?} (hang?)");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    }
}

pub fn stderr_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Assert the exit code, showing stderr on failure.
#[track_caller]
pub fn assert_code(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "expected exit {code}, got {:?}\nstderr:\n{}\nstdout ({} bytes):\n{}",
        o.status,
        stderr_of(o),
        o.stdout.len(),
        String::from_utf8_lossy(&o.stdout[..o.stdout.len().min(2000)])
    );
}

#[track_caller]
pub fn assert_ok(o: &Output) {
    assert_code(o, 0)
}

/// A repository in a fresh temp dir, plus a scratch area next to it.
pub struct TestRepo {
    pub tmp: TempDir,
    pub repo: PathBuf,
    pub password: String,
}

impl TestRepo {
    /// `coffre init` with fast KDF parameters and `extra` options.
    pub fn init(extra: &[&str]) -> TestRepo {
        let tmp = tempfile::Builder::new()
            .prefix("coffre-it-")
            .tempdir()
            .expect("tempdir");
        let repo = tmp.path().join("repo");
        let r = TestRepo {
            tmp,
            repo,
            password: PASSWORD.to_string(),
        };
        let mut c = r.cmd();
        c.arg("init").args(FAST_KDF).args(extra);
        let o = output_within(c, Duration::from_secs(60));
        assert_ok(&o);
        r
    }

    /// Chunks of 16..64..256 KiB and 1 MiB packs: many chunks from small inputs.
    pub fn small_chunks() -> TestRepo {
        Self::init(&["--chunk-size", "64", "--pack-size", "1"])
    }

    /// A path in the scratch area (not inside the repository).
    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// `coffre` with this repository and password in the environment.
    pub fn cmd(&self) -> Command {
        let mut c = bare_cmd();
        c.env("COFFRE_REPO", &self.repo)
            .env("COFFRE_PASSWORD", &self.password);
        c
    }

    /// Run `coffre ARGS` (stdin null) and return its output.
    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        let mut c = self.cmd();
        c.args(args);
        output_within(c, Duration::from_secs(300))
    }

    /// Run `coffre ARGS` (stdin null); a run longer than `limit` is killed
    /// and fails the test.
    pub fn run_within<S: AsRef<OsStr>>(&self, args: &[S], limit: Duration) -> Output {
        let mut c = self.cmd();
        c.args(args);
        output_within(c, limit)
    }

    /// Run `coffre ARGS` with stdin read from `file`.
    pub fn run_with_stdin_file<S: AsRef<OsStr>>(&self, args: &[S], file: &Path) -> Output {
        let mut c = self.cmd();
        c.args(args)
            .stdin(File::open(file).expect("open stdin file"));
        output_within(c, Duration::from_secs(300))
    }

    /// Run `coffre ARGS` with `data` as stdin (via a file, so no pipe deadlock).
    pub fn run_with_stdin<S: AsRef<OsStr>>(&self, args: &[S], data: &[u8]) -> Output {
        let f = tempfile::NamedTempFile::new_in(self.tmp.path()).unwrap();
        fs::write(f.path(), data).unwrap();
        self.run_with_stdin_file(args, f.path())
    }

    /// Run `coffre ARGS` with stdout written to the file `out` (created).
    pub fn run_stdout_to<S: AsRef<OsStr>>(&self, args: &[S], out: &Path) -> Output {
        let mut c = self.cmd();
        c.args(args)
            .stdout(File::create(out).expect("create output file"));
        finish_within(c, Duration::from_secs(300))
    }

    /// `backup -n NAME --stdin --json` of `data`; returns the JSON summary.
    #[track_caller]
    pub fn backup_bytes(&self, name: &str, data: &[u8], extra: &[&str]) -> Value {
        let mut args = vec!["backup", "-n", name, "--stdin", "--json"];
        args.extend_from_slice(extra);
        let o = self.run_with_stdin(&args, data);
        assert_ok(&o);
        parse_json_line(&o)
    }

    /// `backup -n NAME --json PATH`; asserts exit 0 and returns the summary.
    #[track_caller]
    pub fn backup_path(&self, name: &str, path: &Path) -> Value {
        let mut c = self.cmd();
        c.args(["backup", "-n", name, "--json"]).arg(path);
        let o = output_within(c, Duration::from_secs(300));
        assert_ok(&o);
        parse_json_line(&o)
    }

    /// `restore --name NAME --target TARGET [EXTRA]` of the latest snapshot;
    /// returns the output, for the caller to check.
    pub fn restore_to(&self, name: &str, target: &Path, extra: &[&str]) -> Output {
        let mut c = self.cmd();
        c.args(["restore", "--name", name, "--target"])
            .arg(target)
            .args(extra);
        output_within(c, Duration::from_secs(300))
    }

    /// `snapshots --json [ARGS]`
    #[track_caller]
    pub fn snapshots(&self, args: &[&str]) -> Vec<Value> {
        let mut a = vec!["snapshots", "--json"];
        a.extend_from_slice(args);
        let o = self.run(&a);
        assert_ok(&o);
        let v: Value = serde_json::from_slice(&o.stdout).expect("snapshots --json is JSON");
        v.as_array().expect("an array").clone()
    }

    pub fn snapshot_ids(&self) -> Vec<String> {
        self.snapshots(&[])
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    }

    /// `dump ARGS`; asserts success and returns stdout.
    #[track_caller]
    pub fn dump(&self, args: &[&str]) -> Vec<u8> {
        let mut a = vec!["dump"];
        a.extend_from_slice(args);
        let o = self.run(&a);
        assert_ok(&o);
        o.stdout
    }

    /// All pack files of the repository.
    pub fn pack_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for d in fs::read_dir(self.repo.join("packs")).unwrap() {
            let d = d.unwrap().path();
            for f in fs::read_dir(&d).unwrap() {
                out.push(f.unwrap().path());
            }
        }
        out.sort();
        out
    }

    /// The repository, opened by the test process itself (through the
    /// library) under a shared lock: for what the command line does not show.
    pub fn open(&self) -> coffre::repo::Repo {
        let location = coffre::storage::Location::parse(self.repo.to_str().unwrap()).unwrap();
        let password = self.password.clone();
        coffre::repo::Repo::open_locked(
            &location,
            move || Ok(zeroize::Zeroizing::new(password)),
            false,
            "test",
            Duration::ZERO,
        )
        .expect("open the repository")
    }

    /// How many copies of each blob the pack files hold, by their headers.
    pub fn stored_copies(&self) -> std::collections::BTreeMap<coffre::format::BlobId, usize> {
        let repo = self.open();
        let mut out = std::collections::BTreeMap::new();
        for p in repo.pack_files().unwrap() {
            let (_, entries) = repo.read_pack_header(&p).unwrap();
            for e in entries {
                *out.entry(e.id).or_insert(0) += 1;
            }
        }
        out
    }

    pub fn snapshot_files(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = fs::read_dir(self.repo.join("snapshots"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        out.sort();
        out
    }
}

/// The single JSON line a `--json` command printed on stdout.
#[track_caller]
pub fn parse_json_line(o: &Output) -> Value {
    let text = stdout_of(o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "expected one JSON line on stdout: {text:?}");
    serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("bad JSON {text:?}: {e}"))
}

pub fn u64_of(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing or not a number in {v}"))
}

/// Deterministic pseudo-random bytes (xorshift64*).
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let last = self.next_u64().to_le_bytes();
        let n = rest.len();
        rest.copy_from_slice(&last[..n]);
    }
}

pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; n];
    XorShift::new(seed).fill(&mut v);
    v
}

/// Write `n` bytes to `w`: alternating blocks of random data and compressible
/// text (log-like lines with counters), deterministic for `seed`.
pub fn write_mixed(w: &mut dyn Write, n: u64, seed: u64) {
    let mut rng = XorShift::new(seed);
    let mut left = n;
    let mut block = vec![0u8; 1 << 20];
    let mut line_no = 0u64;
    while left > 0 {
        let len = (((rng.next_u64() % (3 << 20)) + 4096).min(left)) as usize;
        let random = rng.next_u64().is_multiple_of(2);
        let mut todo = len;
        while todo > 0 {
            let n = todo.min(block.len());
            if random {
                rng.fill(&mut block[..n]);
            } else {
                let mut i = 0;
                while i < n {
                    line_no += 1;
                    let line = format!(
                        "2026-11-21T03:00:{:02}Z INFO request id={line_no} user={} status=200 bytes={}\n",
                        line_no % 60,
                        line_no % 977,
                        (line_no * 7919) % 100_000
                    );
                    let b = line.as_bytes();
                    let k = b.len().min(n - i);
                    block[i..i + k].copy_from_slice(&b[..k]);
                    i += k;
                }
            }
            w.write_all(&block[..n]).unwrap();
            todo -= n;
        }
        left -= len as u64;
    }
}

/// Compare two files byte for byte without loading them whole; returns the
/// offset of the first difference (or of the shorter file's end).
pub fn first_difference(a: &Path, b: &Path) -> Option<u64> {
    let mut fa = std::io::BufReader::with_capacity(1 << 20, File::open(a).unwrap());
    let mut fb = std::io::BufReader::with_capacity(1 << 20, File::open(b).unwrap());
    let mut ba = vec![0u8; 1 << 20];
    let mut bb = vec![0u8; 1 << 20];
    let mut off = 0u64;
    loop {
        let na = read_full(&mut fa, &mut ba);
        let nb = read_full(&mut fb, &mut bb);
        let n = na.min(nb);
        if let Some(i) = (0..n).find(|&i| ba[i] != bb[i]) {
            return Some(off + i as u64);
        }
        if na != nb {
            return Some(off + n as u64);
        }
        if na == 0 {
            return None;
        }
        off += na as u64;
    }
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]).unwrap() {
            0 => break,
            k => n += k,
        }
    }
    n
}

#[track_caller]
pub fn assert_same_file(expected: &Path, got: &Path) {
    let (le, lg) = (
        fs::metadata(expected).unwrap().len(),
        fs::metadata(got).unwrap().len(),
    );
    if let Some(off) = first_difference(expected, got) {
        panic!(
            "{} differs from {} at byte {off} (lengths {le} and {lg})",
            got.display(),
            expected.display()
        );
    }
}

/// What to compare besides type, contents and symlink targets.
#[derive(Clone, Copy)]
pub struct CompareOpts {
    pub mode: bool,
    pub mtime: bool,
    pub owner: bool,
}

impl CompareOpts {
    pub fn all() -> Self {
        CompareOpts {
            mode: true,
            mtime: true,
            owner: true,
        }
    }
}

fn kind_of(md: &fs::Metadata) -> &'static str {
    let ft = md.file_type();
    if ft.is_symlink() {
        "symlink"
    } else if ft.is_dir() {
        "dir"
    } else if ft.is_file() {
        "file"
    } else if ft.is_fifo() {
        "fifo"
    } else if ft.is_socket() {
        "socket"
    } else {
        "device"
    }
}

/// Compare the trees at `a` (the source) and `b` (the restore) recursively:
/// type, permission bits, mtime (ns, files, dirs, symlinks), owner,
/// symlink target, file contents, and the set of names. `a` and `b`
/// themselves are compared too. Returns every difference found.
pub fn compare_trees(a: &Path, b: &Path, opts: CompareOpts) -> Vec<String> {
    let mut diffs = Vec::new();
    compare_node(a, b, Path::new("."), opts, &mut diffs);
    diffs
}

fn compare_node(a: &Path, b: &Path, rel: &Path, opts: CompareOpts, diffs: &mut Vec<String>) {
    let ma = match fs::symlink_metadata(a) {
        Ok(m) => m,
        Err(e) => {
            diffs.push(format!("{}: source unreadable: {e}", rel.display()));
            return;
        }
    };
    let mb = match fs::symlink_metadata(b) {
        Ok(m) => m,
        Err(e) => {
            diffs.push(format!("{:?}: missing in restore: {e}", rel));
            return;
        }
    };
    let (ka, kb) = (kind_of(&ma), kind_of(&mb));
    if ka != kb {
        diffs.push(format!("{:?}: type {ka} restored as {kb}", rel));
        return;
    }
    if opts.mode && ka != "symlink" && ma.mode() & 0o7777 != mb.mode() & 0o7777 {
        diffs.push(format!(
            "{:?}: mode {:o} restored as {:o}",
            rel,
            ma.mode() & 0o7777,
            mb.mode() & 0o7777
        ));
    }
    if opts.mtime && (ma.mtime(), ma.mtime_nsec()) != (mb.mtime(), mb.mtime_nsec()) {
        diffs.push(format!(
            "{:?} ({ka}): mtime {}.{:09} restored as {}.{:09}",
            rel,
            ma.mtime(),
            ma.mtime_nsec(),
            mb.mtime(),
            mb.mtime_nsec()
        ));
    }
    if opts.owner && (ma.uid(), ma.gid()) != (mb.uid(), mb.gid()) {
        diffs.push(format!(
            "{:?}: owner {}:{} restored as {}:{}",
            rel,
            ma.uid(),
            ma.gid(),
            mb.uid(),
            mb.gid()
        ));
    }
    match ka {
        "symlink" => {
            let (ta, tb) = (fs::read_link(a).unwrap(), fs::read_link(b).unwrap());
            if ta != tb {
                diffs.push(format!(
                    "{:?}: symlink target {ta:?} restored as {tb:?}",
                    rel
                ));
            }
        }
        "file" => {
            if ma.len() != mb.len() {
                diffs.push(format!(
                    "{:?}: size {} restored as {}",
                    rel,
                    ma.len(),
                    mb.len()
                ));
            } else if let Some(off) = first_difference(a, b) {
                diffs.push(format!("{:?}: contents differ at byte {off}", rel));
            }
        }
        "dir" => {
            let names = |p: &Path| {
                let mut v: Vec<_> = fs::read_dir(p)
                    .unwrap()
                    .map(|e| e.unwrap().file_name())
                    .collect();
                v.sort();
                v
            };
            let (na, nb) = (names(a), names(b));
            for n in &na {
                if !nb.contains(n) {
                    diffs.push(format!("{:?}: missing in restore", rel.join(n)));
                }
            }
            for n in &nb {
                if !na.contains(n) {
                    diffs.push(format!("{:?}: extra in restore", rel.join(n)));
                }
            }
            for n in na.iter().filter(|n| nb.contains(n)) {
                compare_node(&a.join(n), &b.join(n), &rel.join(n), opts, diffs);
            }
        }
        _ => {}
    }
}

#[track_caller]
pub fn assert_trees_equal(a: &Path, b: &Path, opts: CompareOpts) {
    let diffs = compare_trees(a, b, opts);
    assert!(
        diffs.is_empty(),
        "restored tree {} differs from {}:\n  {}",
        b.display(),
        a.display(),
        diffs.join("\n  ")
    );
}

/// Every file and directory under `root` (inclusive), depth first.
pub fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![root.to_path_buf()];
    if fs::symlink_metadata(root)
        .map(|m| m.is_dir())
        .unwrap_or(false)
    {
        let mut children: Vec<_> = fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        children.sort();
        for c in children {
            out.extend(walk(&c));
        }
    }
    out
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

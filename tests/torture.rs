//! Crash torture (issue 4). A seeded random sequence of `backup` (stdin
//! streams and small directory trees whose contents partly repeat and partly
//! change), `forget --keep-last K` (sometimes narrowed by `--name`, sometimes
//! with `--prune`), `prune` (sometimes `--max-unused 0%` or a small
//! `--max-repack`), `dump`/`restore`, `scrub --all` and deleting the index,
//! where most runs of coffre are SIGKILLed at a random moment (0–300 ms after
//! the spawn, unless the run finished before).
//!
//! A model says what the repository must hold. After every step it is
//! reconciled with `coffre snapshots --json` (and `snapshots/`): a snapshot
//! may appear only through the backup of that step (exactly its id when that
//! backup finished), and disappear only through the forget of that step and
//! only if the policy chose it (exactly the chosen ones when it finished).
//! Each new snapshot is restored at once and, every
//! `COFFRE_TORTURE_CHECK_EVERY` steps (default 1), every listed snapshot
//! restores byte for byte (streams with `dump`; trees with `restore --target`
//! compared with a `cp -a` copy of the source taken when it was backed up:
//! contents, types, modes, mtimes, symlinks, and owners as root),
//! `scrub --all` exits 0 and no lock is left behind. Locks of killed
//! processes must never block the next command: a killed run's lock file is
//! put back after those checks (which removed it), so that the next
//! operation, shared or exclusive, meets it. A run that was not killed must
//! exit 0. At the end prune runs to completion (twice, once with
//! `--max-unused 0%`), a dry-run prune must find nothing more to delete, the
//! newest data of every stream series must back up again without a new chunk,
//! and everything is checked again.
//!
//! ```sh
//! cargo test --test torture                    # `torture`: 40 steps (COFFRE_TORTURE_ITERATIONS=N)
//! cargo test --test torture -- --ignored       # `torture_long`: 400 steps
//! COFFRE_TORTURE_SEED=1234 cargo test --test torture -- --nocapture   # replay a seed
//! ```
//!
//! The seed is printed at the start and, with the step and the history of
//! operations, in every failure message. It fixes the operations, their
//! arguments, the data and the kill delays; where a kill lands inside a
//! process still depends on timing, so a replay runs the same operations but
//! may cut them elsewhere. A failed run keeps its scratch directory
//! (repository, sources, expected trees) and names it in the message.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fmt::Display;
use std::fs::{self, File, FileTimes};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use serde_json::Value;

const STREAMS: [&str; 2] = ["db", "logs"];
const TREES: [&str; 2] = ["files", "www"];
/// Kill delays are drawn from 0..=MAX_KILL_MS.
const MAX_KILL_MS: u64 = 300;
/// Share of the runs that get a kill delay (the others run to completion).
const KILL_PERCENT: u64 = 70;
/// A run of coffre longer than this is a hang.
const COMMAND_LIMIT: Duration = Duration::from_secs(120);
const MAX_STREAM: usize = 512 << 10;
const MAX_TREE_BYTES: u64 = 384 << 10;
const MAX_TREE_FILES: usize = 40;

#[test]
fn torture() {
    let steps = env_u64("COFFRE_TORTURE_ITERATIONS").unwrap_or(40);
    Torture::new(steps as usize).run();
}

#[test]
#[ignore = "long: cargo test --test torture -- --ignored"]
fn torture_long() {
    Torture::new(400).run();
}

fn env_u64(var: &str) -> Option<u64> {
    let v = std::env::var(var).ok()?;
    let v = v.trim();
    let parsed = match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{var}={v:?} is not a number")))
}

/// The seeded generator, with the few draws the test needs.
struct Rng(XorShift);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0);
        self.0.next_u64() % n
    }
    fn upto(&mut self, n: usize) -> usize {
        self.below(n as u64 + 1) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.0.fill(&mut v);
        v
    }
    /// Compressible log lines, `n` bytes.
    fn text(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 100);
        let base = self.0.next_u64() % 1_000_000;
        let mut i = 0u64;
        while v.len() < n {
            i += 1;
            v.extend_from_slice(
                format!(
                    "2026-11-21T03:{:02}:{:02}Z INFO request id={} user={} status={} bytes={}\n",
                    (i / 60) % 60,
                    i % 60,
                    base + i,
                    (base + i * 7) % 977,
                    [200, 200, 200, 404, 500][(i % 5) as usize],
                    (i * 7919) % 100_000
                )
                .as_bytes(),
            );
        }
        v.truncate(n);
        v
    }
    /// Random or text, `n` bytes.
    fn data(&mut self, n: usize) -> Vec<u8> {
        if self.chance(50) {
            self.bytes(n)
        } else {
            self.text(n)
        }
    }
}

/// What a snapshot must restore to.
#[derive(Clone)]
enum Content {
    Stream(Arc<Vec<u8>>),
    /// A `cp -a` copy of the source tree as it was when backed up.
    Tree(PathBuf),
}

struct Snap {
    name: String,
    /// The step whose backup made it: the order of the snapshots' times.
    seq: usize,
    content: Content,
}

/// A finished or killed run of coffre.
struct Outcome {
    killed: bool,
    code: Option<i32>,
    ms: u64,
    stdout: PathBuf,
    stderr: String,
}

impl Outcome {
    fn describe(&self) -> String {
        if self.killed {
            format!("SIGKILLed after {} ms", self.ms)
        } else {
            match self.code {
                Some(c) => format!("exit {c} in {} ms", self.ms),
                None => format!("ended without exit code in {} ms", self.ms),
            }
        }
    }
}

/// What a step may have done to the listing.
enum Effect {
    None,
    Backup {
        name: String,
        content: Content,
        size: u64,
        /// The id the backup reported, when it finished.
        committed: Option<String>,
    },
    Forget {
        /// What the policy chooses, from the model.
        victims: BTreeSet<String>,
        finished: bool,
    },
}

#[derive(Default)]
struct Stat {
    runs: u32,
    killed: u32,
    finished: u32,
    finished_ms: u64,
}

struct Torture {
    repo: Option<TestRepo>,
    seed: u64,
    rng: Rng,
    steps: usize,
    check_every: usize,
    step: usize,
    history: Vec<String>,
    /// The snapshots of the last listing, with what they must restore to.
    snaps: BTreeMap<String, Snap>,
    /// The current data of each stream series (moves on even when the
    /// backup of it is killed, as a database would).
    streams: BTreeMap<String, Arc<Vec<u8>>>,
    counter: u64,
    stats: BTreeMap<&'static str, Stat>,
    committed_by_killed: u32,
    /// Lock files a killed process left, put back after the step's checks
    /// (which clear them) so that the next operation meets them too.
    stale_locks: Vec<(PathBuf, Vec<u8>, u32)>,
    stale_replanted: u32,
    reported: bool,
}

/// `ensure!(t, cond, "fmt", args…)`: fail the torture run with the message.
macro_rules! ensure {
    ($t:expr, $cond:expr, $($fmt:tt)+) => {
        if !$cond {
            let msg = format!($($fmt)+);
            $t.fail(msg);
        }
    };
}

impl Drop for Torture {
    fn drop(&mut self) {
        if std::thread::panicking() && !self.reported {
            // a panic outside `fail` (an unwrap, a helper's assert)
            eprintln!("{}", self.report("panicked (see the panic message)"));
        }
    }
}

impl Torture {
    fn new(steps: usize) -> Torture {
        let seed = env_u64("COFFRE_TORTURE_SEED").unwrap_or_else(|| {
            let t = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64;
            t ^ ((std::process::id() as u64) << 32)
        });
        let check_every = env_u64("COFFRE_TORTURE_CHECK_EVERY").unwrap_or(1).max(1) as usize;
        eprintln!(
            "torture: seed {seed} (COFFRE_TORTURE_SEED={seed} replays it), {steps} steps, \
             full check every {check_every} step(s)"
        );
        let repo = TestRepo::small_chunks();
        fs::create_dir_all(repo.path("work")).unwrap();
        Torture {
            repo: Some(repo),
            seed,
            rng: Rng(XorShift::new(seed)),
            steps,
            check_every,
            step: 0,
            history: Vec::new(),
            snaps: BTreeMap::new(),
            streams: BTreeMap::new(),
            counter: 0,
            stats: BTreeMap::new(),
            committed_by_killed: 0,
            stale_locks: Vec::new(),
            stale_replanted: 0,
            reported: false,
        }
    }

    fn r(&self) -> &TestRepo {
        self.repo.as_ref().expect("the repository")
    }

    fn report(&mut self, msg: &str) -> String {
        let kept = match self.repo.take() {
            Some(r) => format!("{}", r.tmp.keep().display()),
            None => "(already kept)".to_string(),
        };
        format!(
            "torture failed at step {} of {}: {msg}\n\
             seed: {} (COFFRE_TORTURE_SEED={} replays the same operations)\n\
             scratch directory kept: {kept} (repo/ is the repository)\n\
             history ({} steps, newest last):\n  {}",
            self.step,
            self.steps,
            self.seed,
            self.seed,
            self.history.len(),
            self.history.join("\n  ")
        )
    }

    fn fail(&mut self, msg: impl Display) -> ! {
        self.reported = true;
        let report = self.report(&msg.to_string());
        panic!("{report}");
    }

    fn note(&mut self, line: String) {
        self.history.push(format!("step {}: {line}", self.step));
    }

    fn annotate(&mut self, s: &str) {
        if let Some(l) = self.history.last_mut() {
            l.push_str(s);
        }
    }

    fn scratch(&mut self, what: &str) -> PathBuf {
        self.counter += 1;
        self.r()
            .path("work")
            .join(format!("{what}-{}-{}", self.step, self.counter))
    }

    /// A kill delay for most runs, none for the others: 0–300 ms, or mostly
    /// within 1.5 times the mean duration of the finished runs of
    /// `kind` (most runs take less than 300 ms, and a kill after the end
    /// tests nothing).
    fn kill_plan(&mut self, kind: &str) -> Option<u64> {
        if !self.rng.chance(KILL_PERCENT) {
            return None;
        }
        let max = match self.stats.get(kind) {
            Some(s) if s.finished > 0 && self.rng.chance(70) => {
                (s.finished_ms / s.finished as u64 * 3 / 2).clamp(1, MAX_KILL_MS)
            }
            _ => MAX_KILL_MS,
        };
        Some(self.rng.below(max + 1))
    }

    /// Run coffre with `args`, stdout to a file, stdin from `stdin` (else
    /// null), SIGKILLed `kill_ms` after the spawn if it is still running.
    fn exec(
        &mut self,
        kind: &'static str,
        args: &[OsString],
        stdin: Option<&Path>,
        kill_ms: Option<u64>,
    ) -> Outcome {
        let out = self.scratch("stdout");
        let err = self.scratch("stderr");
        let mut c = self.r().cmd();
        c.args(args)
            .stdout(File::create(&out).unwrap())
            .stderr(File::create(&err).unwrap());
        if let Some(p) = stdin {
            c.stdin(File::open(p).unwrap());
        }
        let start = Instant::now();
        let mut child = match c.spawn() {
            Ok(ch) => ch,
            Err(e) => self.fail(format!("cannot spawn coffre {args:?}: {e}")),
        };
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) => {}
                Err(e) => self.fail(format!("waiting for coffre {args:?}: {e}")),
            }
            let el = start.elapsed();
            if let Some(ms) = kill_ms
                && el >= Duration::from_millis(ms)
            {
                // SIGKILL to this pid only (it has no children here)
                let _ = child.kill();
                break child.wait().unwrap();
            }
            if el > COMMAND_LIMIT {
                let _ = child.kill();
                let _ = child.wait();
                let stderr = fs::read_to_string(&err).unwrap_or_default();
                self.fail(format!(
                    "coffre {args:?} did not finish within {COMMAND_LIMIT:?} (hang?); \
                     stderr:\n{stderr}"
                ));
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        let ms = start.elapsed().as_millis() as u64;
        let stderr = fs::read_to_string(&err).unwrap_or_default();
        let _ = fs::remove_file(&err);
        let killed = status.signal() == Some(libc::SIGKILL);
        if killed {
            self.keep_stale_locks(child.id());
        }
        let st = self.stats.entry(kind).or_default();
        st.runs += 1;
        if killed {
            st.killed += 1;
        } else {
            st.finished += 1;
            st.finished_ms += ms;
        }
        Outcome {
            killed,
            code: status.code(),
            ms,
            stdout: out,
            stderr,
        }
    }

    /// Remember the lock file(s) of the killed process `pid`.
    fn keep_stale_locks(&mut self, pid: u32) {
        let Ok(dir) = fs::read_dir(self.r().repo.join("locks")) else {
            return;
        };
        for e in dir {
            let p = e.unwrap().path();
            let Ok(body) = fs::read(&p) else { continue };
            let holder = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v["pid"].as_u64());
            if holder == Some(u64::from(pid)) {
                self.stale_locks.push((p, body, pid));
            }
        }
    }

    /// Put back the lock files of killed processes that the checks after
    /// the step removed, so that the next operation, shared or exclusive,
    /// must clear them itself.
    fn replant_stale_locks(&mut self) {
        for (p, body, pid) in std::mem::take(&mut self.stale_locks) {
            if !p.exists() {
                fs::write(&p, &body).unwrap();
                self.stale_replanted += 1;
                self.annotate(&format!(" [stale lock of killed pid {pid} put back]"));
            }
        }
    }

    /// A run that was not killed must have exited 0.
    fn expect_success(&mut self, o: &Outcome, what: &str) {
        if !o.killed && o.code != Some(0) {
            let out = fs::read(&o.stdout).unwrap_or_default();
            self.fail(format!(
                "{what}: expected exit 0, got {} (stderr: {}; stdout: {})",
                o.describe(),
                o.stderr.trim(),
                String::from_utf8_lossy(&out[..out.len().min(2000)])
            ));
        }
    }

    /// A coffre command that must finish and exit 0; its stdout.
    fn must_run(&mut self, kind: &'static str, args: &[&str]) -> Vec<u8> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        let o = self.exec(kind, &args, None, None);
        self.expect_success(&o, &format!("coffre {args:?}"));
        let out = fs::read(&o.stdout).unwrap();
        let _ = fs::remove_file(&o.stdout);
        out
    }

    fn json_of(&mut self, out: &[u8], what: &str) -> Value {
        match serde_json::from_slice(out) {
            Ok(v) => v,
            Err(e) => self.fail(format!(
                "{what}: stdout is not JSON ({e}): {:?}",
                String::from_utf8_lossy(out)
            )),
        }
    }

    fn run(mut self) {
        for name in STREAMS {
            let n = 16_384 + self.rng.upto(300 << 10);
            let first = Arc::new(self.rng.data(n));
            self.streams.insert(name.to_string(), first);
        }
        for name in TREES {
            let src = self.tree_src(name);
            fs::create_dir_all(&src).unwrap();
            populate_tree(&mut self.rng, &src);
        }
        let started = Instant::now();
        for step in 1..=self.steps {
            self.step = step;
            self.one_step();
            if step % self.check_every == 0 {
                self.verify_all();
            }
            self.replant_stale_locks();
        }
        self.finish();
        eprintln!(
            "torture: seed {} passed {} steps in {:.1} s, {} snapshots at the end; \
             {} killed backups had committed their snapshot; {} stale locks of killed \
             processes were put back for the next step",
            self.seed,
            self.steps,
            started.elapsed().as_secs_f64(),
            self.snaps.len(),
            self.committed_by_killed,
            self.stale_replanted
        );
        for (kind, s) in &self.stats {
            eprintln!(
                "  {kind:<8} {:>4} runs, {:>4} SIGKILLed, {:>4} ms mean when finished",
                s.runs,
                s.killed,
                s.finished_ms / u64::from(s.finished.max(1))
            );
        }
    }

    fn one_step(&mut self) {
        let roll = self.rng.below(100);
        let effect = match roll {
            0..28 => self.op_backup_stream(None),
            28..50 => self.op_backup_tree(None),
            50..64 => self.op_forget(),
            64..74 => self.op_prune(),
            74..92 => self.op_read(),
            92..96 => self.op_scrub(),
            _ => self.op_drop_index(),
        };
        self.reconcile(effect);
    }

    // ---- operations -------------------------------------------------------

    fn op_backup_stream(&mut self, data: Option<Arc<Vec<u8>>>) -> Effect {
        let (name, data, how, kill) = match data {
            // the final re-backup of known data: to completion, no new chunk
            Some(d) => (String::new(), d, "again".to_string(), None),
            None => {
                let name = self.rng.pick(&STREAMS).to_string();
                let other = self.rng.pick(&STREAMS).to_string();
                let old = self.streams[&name].clone();
                let other = self.streams[&other].clone();
                let (d, how) = mutate_stream(&mut self.rng, &old, &other);
                let d = Arc::new(d);
                self.streams.insert(name.clone(), d.clone());
                let kill = self.kill_plan("backup");
                (name, d, how, kill)
            }
        };
        self.stream_backup(&name, data, &how, kill)
    }

    fn stream_backup(
        &mut self,
        name: &str,
        data: Arc<Vec<u8>>,
        how: &str,
        kill: Option<u64>,
    ) -> Effect {
        let input = self.scratch("input");
        fs::write(&input, &*data).unwrap();
        let args: Vec<OsString> = ["backup", "-n", name, "--stdin", "--json"]
            .iter()
            .map(OsString::from)
            .collect();
        let o = self.exec("backup", &args, Some(&input), kill);
        let _ = fs::remove_file(&input);
        self.note(format!(
            "backup -n {name} --stdin ({} bytes, {how}): {}",
            data.len(),
            o.describe()
        ));
        let committed = self.backup_result(&o, name);
        Effect::Backup {
            name: name.to_string(),
            size: data.len() as u64,
            content: Content::Stream(data),
            committed,
        }
    }

    /// The snapshot id a finished backup printed.
    fn backup_result(&mut self, o: &Outcome, name: &str) -> Option<String> {
        self.expect_success(o, &format!("backup -n {name}"));
        let out = fs::read(&o.stdout).unwrap();
        let _ = fs::remove_file(&o.stdout);
        if o.killed {
            return None;
        }
        let text = String::from_utf8_lossy(&out).into_owned();
        ensure!(
            self,
            text.lines().count() == 1,
            "backup --json printed {} lines: {text:?}",
            text.lines().count()
        );
        let v = self.json_of(&out, "backup --json");
        ensure!(
            self,
            v["name"] == name && v["snapshot"].is_string(),
            "backup --json: wrong name or no snapshot id: {v}"
        );
        Some(v["snapshot"].as_str().unwrap().to_string())
    }

    fn tree_src(&self, name: &str) -> PathBuf {
        self.r().path(&format!("src-{name}"))
    }

    /// `final_name`: the final backup of an unchanged tree, to completion.
    fn op_backup_tree(&mut self, final_name: Option<&str>) -> Effect {
        let (name, how, kill) = match final_name {
            Some(n) => (n.to_string(), "unchanged".to_string(), None),
            None => {
                let name = self.rng.pick(&TREES).to_string();
                let src = self.tree_src(&name);
                let streams: Vec<Arc<Vec<u8>>> = self.streams.values().cloned().collect();
                let how = mutate_tree(&mut self.rng, &src, &streams, &mut self.counter);
                let kill = self.kill_plan("backup-t");
                (name, how, kill)
            }
        };
        let src = self.tree_src(&name);
        let expected = self.scratch(&format!("expected-{name}"));
        let cp = Command::new("cp")
            .arg("-a")
            .arg(&src)
            .arg(&expected)
            .output()
            .expect("run cp -a");
        ensure!(
            self,
            cp.status.success(),
            "cp -a {} {}: {}",
            src.display(),
            expected.display(),
            String::from_utf8_lossy(&cp.stderr)
        );
        let size = tree_bytes(&src);
        let files = walk(&src).len() - 1;
        let mut args: Vec<OsString> = ["backup", "-n", &name, "--json"]
            .iter()
            .map(OsString::from)
            .collect();
        let no_parent = final_name.is_none() && self.rng.chance(15);
        if no_parent {
            args.push("--no-parent".into());
        }
        args.push(src.clone().into());
        let o = self.exec("backup-t", &args, None, kill);
        self.note(format!(
            "backup -n {name}{} {} ({files} entries, {size} bytes; {how}): {}",
            if no_parent { " --no-parent" } else { "" },
            src.display(),
            o.describe()
        ));
        let committed = self.backup_result(&o, &name);
        Effect::Backup {
            name,
            content: Content::Tree(expected),
            size,
            committed,
        }
    }

    fn op_forget(&mut self) -> Effect {
        let keep = 1 + self.rng.below(4) as usize;
        let only: Option<String> = if self.rng.chance(30) {
            let all: Vec<&str> = STREAMS.iter().chain(TREES.iter()).copied().collect();
            Some(self.rng.pick(&all).to_string())
        } else {
            None
        };
        let prune = self.rng.chance(30);
        let unused0 = prune && self.rng.chance(50);
        // the policy on the model: per series (= name here), the newest `keep`
        let mut by_series: BTreeMap<&str, Vec<(usize, &String)>> = BTreeMap::new();
        for (id, s) in &self.snaps {
            if only.as_deref().is_none_or(|n| n == s.name) {
                by_series.entry(&s.name).or_default().push((s.seq, id));
            }
        }
        let mut victims = BTreeSet::new();
        for v in by_series.values_mut() {
            v.sort_by_key(|&(seq, _)| std::cmp::Reverse(seq));
            for (_, id) in v.iter().skip(keep) {
                victims.insert((*id).clone());
            }
        }
        let mut args = vec!["forget".to_string(), "--keep-last".into(), keep.to_string()];
        if let Some(n) = &only {
            args.extend(["--name".to_string(), n.clone()]);
        }
        if prune {
            args.push("--prune".into());
        }
        if unused0 {
            args.extend(["--max-unused".to_string(), "0%".into()]);
        }
        args.push("--json".into());
        let kind = if prune { "forget+p" } else { "forget" };
        let kill = self.kill_plan(kind);
        let osargs: Vec<OsString> = args.iter().map(OsString::from).collect();
        let o = self.exec(kind, &osargs, None, kill);
        self.note(format!(
            "{} (policy forgets {}): {}",
            args.join(" "),
            short_ids(&victims),
            o.describe()
        ));
        self.expect_success(&o, &args.join(" "));
        let out = fs::read(&o.stdout).unwrap();
        let _ = fs::remove_file(&o.stdout);
        if !o.killed {
            let v = self.json_of(&out, "forget --json");
            ensure!(
                self,
                v["forgotten"].as_u64() == Some(victims.len() as u64),
                "forget reports {} forgotten, the policy forgets {}: {v}",
                v["forgotten"],
                victims.len()
            );
            if prune {
                let left = (self.snaps.len() - victims.len()) as u64;
                ensure!(
                    self,
                    v["prune"]["snapshots"].as_u64() == Some(left),
                    "forget --prune: prune saw {} snapshots, {left} are left: {v}",
                    v["prune"]["snapshots"]
                );
            }
        }
        Effect::Forget {
            victims,
            finished: !o.killed,
        }
    }

    fn op_prune(&mut self) -> Effect {
        let mut args = vec!["prune".to_string(), "--json".into()];
        if self.rng.chance(40) {
            args.extend(["--max-unused".to_string(), "0%".into()]);
        }
        if self.rng.chance(15) {
            args.extend(["--max-repack".to_string(), "128K".into()]);
        }
        let kill = self.kill_plan("prune");
        let osargs: Vec<OsString> = args.iter().map(OsString::from).collect();
        let o = self.exec("prune", &osargs, None, kill);
        self.note(format!("{}: {}", args.join(" "), o.describe()));
        self.expect_success(&o, &args.join(" "));
        let out = fs::read(&o.stdout).unwrap();
        let _ = fs::remove_file(&o.stdout);
        if !o.killed {
            let v = self.json_of(&out, "prune --json");
            ensure!(
                self,
                v["snapshots"].as_u64() == Some(self.snaps.len() as u64),
                "prune marked from {} snapshots, {} are listed: {v}",
                v["snapshots"],
                self.snaps.len()
            );
        }
        Effect::None
    }

    /// dump or restore a random snapshot, maybe killed; when it finishes, the
    /// output must be exact.
    fn op_read(&mut self) -> Effect {
        if self.snaps.is_empty() {
            return self.op_backup_stream(None);
        }
        let ids: Vec<String> = self.snaps.keys().cloned().collect();
        let id = self.rng.pick(&ids).clone();
        let name = self.snaps[&id].name.clone();
        // `latest --name N` must be the newest of the series
        let by_latest = self.rng.chance(30);
        let (sel, want_id) = if by_latest {
            let newest = self
                .snaps
                .iter()
                .filter(|(_, s)| s.name == name)
                .max_by_key(|(_, s)| s.seq)
                .map(|(i, _)| i.clone())
                .unwrap();
            (
                vec!["latest".to_string(), "--name".into(), name.clone()],
                newest,
            )
        } else {
            (vec![id.clone()], id.clone())
        };
        let content = self.snaps[&want_id].content.clone();
        match content {
            Content::Stream(data) => {
                let to_file = self.rng.chance(35);
                let kind = if to_file { "restore" } else { "dump" };
                let kill = self.kill_plan(kind);
                let target = self.scratch("restored");
                let mut args: Vec<String> = if to_file {
                    vec!["restore".into()]
                } else {
                    vec!["dump".into()]
                };
                args.extend(sel);
                if to_file {
                    args.extend(["--target".to_string(), target.display().to_string()]);
                }
                let osargs: Vec<OsString> = args.iter().map(OsString::from).collect();
                let o = self.exec(kind, &osargs, None, kill);
                self.note(format!(
                    "{} (expect {} bytes of {}): {}",
                    args.join(" "),
                    data.len(),
                    short(&want_id),
                    o.describe()
                ));
                self.expect_success(&o, &args.join(" "));
                if !o.killed {
                    let got_path = if to_file { &target } else { &o.stdout };
                    let got = fs::read(got_path).unwrap_or_default();
                    if let Some(msg) = stream_diff(&data, &got) {
                        self.fail(format!(
                            "{} of snapshot {want_id} ({name}): {msg}",
                            args.join(" ")
                        ));
                    }
                }
                let _ = fs::remove_file(&o.stdout);
                let _ = fs::remove_file(&target);
            }
            Content::Tree(expected) => {
                let target = self.scratch("restored");
                let mut args = vec!["restore".to_string()];
                args.extend(sel);
                args.extend(["--target".to_string(), target.display().to_string()]);
                let osargs: Vec<OsString> = args.iter().map(OsString::from).collect();
                let kill = self.kill_plan("restore-t");
                let o = self.exec("restore-t", &osargs, None, kill);
                let _ = fs::remove_file(&o.stdout);
                self.note(format!(
                    "{} (expect tree of {}): {}",
                    args.join(" "),
                    short(&want_id),
                    o.describe()
                ));
                self.expect_success(&o, &args.join(" "));
                if !o.killed {
                    let diffs = compare_trees(&expected, &target, tree_opts());
                    ensure!(
                        self,
                        diffs.is_empty(),
                        "{} of snapshot {want_id} ({name}) differs from {}:\n  {}",
                        args.join(" "),
                        expected.display(),
                        diffs.join("\n  ")
                    );
                }
                let _ = fs::remove_dir_all(&target);
            }
        }
        Effect::None
    }

    fn op_scrub(&mut self) -> Effect {
        let kill = self.kill_plan("scrub");
        let args: Vec<OsString> = ["scrub", "--all"].iter().map(OsString::from).collect();
        let o = self.exec("scrub", &args, None, kill);
        let _ = fs::remove_file(&o.stdout);
        self.note(format!("scrub --all: {}", o.describe()));
        self.expect_success(&o, "scrub --all");
        Effect::None
    }

    /// The index is derived state: delete it (with a killed process's
    /// -wal/-shm), the next command rebuilds it.
    fn op_drop_index(&mut self) -> Effect {
        let dir = self.r().repo.join("index");
        let mut removed = Vec::new();
        for f in ["index.sqlite", "index.sqlite-wal", "index.sqlite-shm"] {
            if fs::remove_file(dir.join(f)).is_ok() {
                removed.push(f);
            }
        }
        self.note(format!("rm index/{{{}}}", removed.join(",")));
        Effect::None
    }

    // ---- checks -----------------------------------------------------------

    /// `snapshots --json`: id -> (name, kind, size).
    fn listing(&mut self) -> BTreeMap<String, (String, String, u64)> {
        let out = self.must_run("list", &["snapshots", "--json"]);
        let v = self.json_of(&out, "snapshots --json");
        let Some(arr) = v.as_array() else {
            self.fail(format!("snapshots --json is not an array: {v}"))
        };
        let mut m = BTreeMap::new();
        for s in arr {
            let id = s["id"].as_str().unwrap_or_default().to_string();
            let e = &s["entries"];
            ensure!(
                self,
                id.len() == 64
                    && e.as_array().is_some_and(|a| a.len() == 1)
                    && s["partial"] == false,
                "odd snapshot in the listing: {s}"
            );
            let entry = (
                e[0]["name"].as_str().unwrap_or_default().to_string(),
                e[0]["kind"].as_str().unwrap_or_default().to_string(),
                e[0]["size"].as_u64().unwrap_or(u64::MAX),
            );
            ensure!(
                self,
                m.insert(id.clone(), entry).is_none(),
                "snapshot {id} listed twice"
            );
        }
        m
    }

    fn snapshot_files(&self) -> BTreeSet<String> {
        fs::read_dir(self.r().repo.join("snapshots"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()))
            .collect()
    }

    fn reconcile(&mut self, effect: Effect) {
        let listed = self.listing();
        let files = self.snapshot_files();
        let listed_ids: BTreeSet<String> = listed.keys().cloned().collect();
        ensure!(
            self,
            files == listed_ids,
            "snapshots/ holds {} but the listing shows {}",
            short_ids(&files),
            short_ids(&listed_ids)
        );
        let appeared: Vec<String> = listed_ids
            .iter()
            .filter(|id| !self.snaps.contains_key(*id))
            .cloned()
            .collect();
        let gone: BTreeSet<String> = self
            .snaps
            .keys()
            .filter(|id| !listed.contains_key(*id))
            .cloned()
            .collect();
        match effect {
            Effect::None => {
                ensure!(
                    self,
                    appeared.is_empty() && gone.is_empty(),
                    "the listing changed although no backup or forget ran: appeared {}, gone {}",
                    short_ids(&appeared),
                    short_ids(&gone)
                );
            }
            Effect::Backup {
                name,
                content,
                size,
                committed,
            } => {
                ensure!(
                    self,
                    gone.is_empty(),
                    "snapshots disappeared during a backup: {}",
                    short_ids(&gone)
                );
                ensure!(
                    self,
                    appeared.len() <= 1,
                    "one backup ran but {} snapshots appeared: {}",
                    appeared.len(),
                    short_ids(&appeared)
                );
                if let Some(id) = &committed {
                    ensure!(
                        self,
                        appeared == [id.clone()],
                        "the backup reported snapshot {id} but the new snapshots are {}",
                        short_ids(&appeared)
                    );
                }
                if let Some(id) = appeared.first() {
                    let kind = match content {
                        Content::Stream(_) => "stream",
                        Content::Tree(_) => "tree",
                    };
                    let (lname, lkind, lsize) = listed[id].clone();
                    ensure!(
                        self,
                        (lname.as_str(), lkind.as_str(), lsize) == (name.as_str(), kind, size),
                        "new snapshot {id} is listed as {lname} {lkind} of {lsize} bytes; \
                         the backup was of {name} {kind}, {size} bytes"
                    );
                    if committed.is_none() {
                        self.committed_by_killed += 1;
                    }
                    self.annotate(&format!(" -> committed {}", short(id)));
                    self.snaps.insert(
                        id.clone(),
                        Snap {
                            name,
                            seq: self.step,
                            content,
                        },
                    );
                    self.verify_snapshot(id);
                } else {
                    self.annotate(" -> no snapshot");
                    if let Content::Tree(p) = content {
                        let _ = fs::remove_dir_all(p);
                    }
                }
            }
            Effect::Forget { victims, finished } => {
                ensure!(
                    self,
                    appeared.is_empty(),
                    "snapshots appeared during a forget: {}",
                    short_ids(&appeared)
                );
                let kept: Vec<&String> = gone.iter().filter(|id| !victims.contains(*id)).collect();
                ensure!(
                    self,
                    kept.is_empty(),
                    "forget removed {} which its policy keeps",
                    short_ids(kept)
                );
                if finished {
                    ensure!(
                        self,
                        gone == victims,
                        "forget finished but removed {} instead of {}",
                        short_ids(&gone),
                        short_ids(&victims)
                    );
                }
                self.annotate(&format!(" -> removed {}", short_ids(&gone)));
                for id in &gone {
                    if let Some(Snap {
                        content: Content::Tree(p),
                        ..
                    }) = self.snaps.remove(id)
                    {
                        let _ = fs::remove_dir_all(p);
                    }
                }
            }
        }
    }

    /// Restore one snapshot (to completion) and compare it with the model.
    fn verify_snapshot(&mut self, id: &str) {
        let content = self.snaps[id].content.clone();
        let name = self.snaps[id].name.clone();
        match content {
            Content::Stream(data) => {
                let got = self.must_run("check", &["dump", id]);
                if let Some(msg) = stream_diff(&data, &got) {
                    self.fail(format!("dump {id} ({name}): {msg}"));
                }
            }
            Content::Tree(expected) => {
                let target = self.scratch("check");
                let t = target.display().to_string();
                self.must_run("check", &["restore", id, "--target", &t]);
                let diffs = compare_trees(&expected, &target, tree_opts());
                ensure!(
                    self,
                    diffs.is_empty(),
                    "restore {id} ({name}) differs from {}:\n  {}",
                    expected.display(),
                    diffs.join("\n  ")
                );
                let _ = fs::remove_dir_all(&target);
            }
        }
    }

    /// Every listed snapshot restores exactly, scrub passes, no lock is left.
    fn verify_all(&mut self) {
        let ids: Vec<String> = self.snaps.keys().cloned().collect();
        for id in &ids {
            self.verify_snapshot(id);
        }
        self.must_run("check", &["scrub", "--all"]);
        let locks: Vec<(String, String)> = match fs::read_dir(self.r().repo.join("locks")) {
            Ok(d) => d
                .map(|e| {
                    let p = e.unwrap().path();
                    let body = fs::read_to_string(&p).unwrap_or_default();
                    (p.file_name().unwrap().to_string_lossy().into_owned(), body)
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        ensure!(
            self,
            locks.is_empty(),
            "locks left after scrub finished (no coffre process runs; locks of dead \
             processes of this host must be removed): {locks:?}"
        );
    }

    fn finish(&mut self) {
        self.step = self.steps + 1;
        self.verify_all();
        for args in [
            vec!["prune", "--json"],
            vec!["prune", "--max-unused", "0%", "--json"],
        ] {
            let out = self.must_run("prune", &args);
            self.note(format!("final {}: exit 0", args.join(" ")));
            let v = self.json_of(&out, "prune --json");
            ensure!(
                self,
                v["snapshots"].as_u64() == Some(self.snaps.len() as u64),
                "prune marked from {} snapshots, {} are listed: {v}",
                v["snapshots"],
                self.snaps.len()
            );
            self.reconcile(Effect::None);
            self.verify_all();
        }
        // nothing left to delete, and no pack file the index does not know
        let out = self.must_run("prune", &["prune", "--dry-run", "--json"]);
        let v = self.json_of(&out, "prune --dry-run --json");
        let packs = self.r().pack_files().len() as u64;
        ensure!(
            self,
            v["packs_deleted"] == 0 && v["packs"].as_u64() == Some(packs),
            "after two complete prunes a dry run still finds packs to delete, or the \
             index knows a different number of packs than the {packs} files: {v}"
        );
        // the index still finds every chunk of the newest data of each series
        for name in STREAMS {
            let newest = self
                .snaps
                .values()
                .filter(|s| s.name == name)
                .max_by_key(|s| s.seq)
                .map(|s| s.content.clone());
            let Some(Content::Stream(data)) = newest else {
                continue;
            };
            let input = self.scratch("input");
            fs::write(&input, &*data).unwrap();
            let args: Vec<OsString> = ["backup", "-n", name, "--stdin", "--json"]
                .iter()
                .map(OsString::from)
                .collect();
            let o = self.exec("backup", &args, Some(&input), None);
            let _ = fs::remove_file(&input);
            self.note(format!(
                "final backup -n {name} of its newest data again: {}",
                o.describe()
            ));
            let out = fs::read(&o.stdout).unwrap_or_default();
            let committed = self.backup_result(&o, name);
            let v = self.json_of(&out, "backup --json");
            ensure!(
                self,
                v["chunks_new"] == 0,
                "backing up the data of a listed snapshot again stored new chunks: {v}"
            );
            self.reconcile(Effect::Backup {
                name: name.to_string(),
                size: data.len() as u64,
                content: Content::Stream(data),
                committed,
            });
        }
        for name in TREES {
            let e = self.op_backup_tree(Some(name));
            self.reconcile(e);
        }
        self.verify_all();
        let leftovers = fs::read_dir(self.r().repo.join("tmp"))
            .map(|d| d.count())
            .unwrap_or(0);
        eprintln!("torture: {leftovers} file(s) left in the repository's tmp/");
    }
}

fn tree_opts() -> CompareOpts {
    CompareOpts {
        mode: true,
        mtime: true,
        owner: is_root(),
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(8)]
}

fn short_ids<I, S>(ids: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let v: Vec<String> = ids
        .into_iter()
        .map(|s| short(s.as_ref()).to_string())
        .collect();
    format!("[{}]", v.join(","))
}

fn stream_diff(want: &[u8], got: &[u8]) -> Option<String> {
    if want == got {
        return None;
    }
    let at = want
        .iter()
        .zip(got)
        .position(|(a, b)| a != b)
        .unwrap_or(want.len().min(got.len()));
    Some(format!(
        "got {} bytes, expected {}; first difference at byte {at}",
        got.len(),
        want.len()
    ))
}

// ---- data ------------------------------------------------------------------

/// The next version of a stream: unchanged, new, another series' data, or a
/// few edits (overwrite, insert, delete, append, truncate, prepend).
fn mutate_stream(rng: &mut Rng, old: &[u8], other: &[u8]) -> (Vec<u8>, String) {
    let mut v = old.to_vec();
    let mut how = Vec::new();
    let edits = match rng.below(10) {
        0 => {
            how.push("unchanged".to_string());
            0
        }
        1 => {
            let n = 16_384 + rng.upto(384 << 10);
            v = if rng.chance(50) {
                rng.data(n)
            } else {
                // blocks of random data and text
                let mut d = Vec::new();
                while d.len() < n {
                    let k = 1 + rng.upto(64 << 10);
                    d.extend(rng.data(k));
                }
                d.truncate(n);
                d
            };
            how.push("new data".to_string());
            0
        }
        2 => {
            v = other.to_vec();
            how.push("the other series' data".to_string());
            rng.below(2)
        }
        _ => 1 + rng.below(3),
    };
    for _ in 0..edits {
        let len = v.len();
        match rng.below(6) {
            0 if len > 0 => {
                let off = rng.upto(len - 1);
                let n = 1 + rng.upto((len - off - 1).min(32 << 10));
                let d = rng.data(n);
                v[off..off + n].copy_from_slice(&d);
                how.push(format!("overwrite {n}@{off}"));
            }
            1 => {
                let off = rng.upto(len);
                let n = 1 + rng.upto(32 << 10);
                let d = rng.data(n);
                v.splice(off..off, d);
                how.push(format!("insert {n}@{off}"));
            }
            2 if len > 1 => {
                let off = rng.upto(len - 1);
                let n = 1 + rng.upto((len - off - 1).min(64 << 10));
                v.drain(off..off + n);
                how.push(format!("delete {n}@{off}"));
            }
            3 => {
                let n = 1024 + rng.upto(64 << 10);
                v.extend(rng.data(n));
                how.push(format!("append {n}"));
            }
            4 if len > 2 => {
                let n = len / 2 + rng.upto(len / 2);
                v.truncate(n);
                how.push(format!("truncate to {n}"));
            }
            _ => {
                let n = 1 + rng.upto(4096);
                let d = rng.data(n);
                v.splice(0..0, d);
                how.push(format!("prepend {n}"));
            }
        }
    }
    if v.is_empty() {
        let n = 1 + rng.upto(4096);
        v = rng.data(n);
        how.push("refilled".to_string());
    }
    if v.len() > MAX_STREAM {
        v.truncate(MAX_STREAM);
        how.push("capped".to_string());
    }
    (v, how.join(", "))
}

const FILE_MODES: [u32; 4] = [0o644, 0o600, 0o755, 0o640];

fn new_file_data(rng: &mut Rng, streams: &[Arc<Vec<u8>>]) -> Vec<u8> {
    match rng.below(10) {
        0 => Vec::new(),
        // a stream's data, whole or a slice: shared chunks
        1 | 2 if !streams.is_empty() => {
            let s = rng.pick(streams);
            if s.len() < (160 << 10) && rng.chance(50) {
                s.to_vec()
            } else {
                let off = rng.upto(s.len() - 1);
                let n = rng.upto((s.len() - off).min(96 << 10));
                s[off..off + n].to_vec()
            }
        }
        3..6 => {
            let n = rng.upto(256);
            rng.data(n)
        }
        _ => {
            let n = rng.upto(48 << 10);
            rng.data(n)
        }
    }
}

fn write_file(path: &Path, data: &[u8], mode: u32) {
    fs::write(path, data).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn populate_tree(rng: &mut Rng, src: &Path) {
    for d in ["a", "a/b", "c"] {
        fs::create_dir_all(src.join(d)).unwrap();
    }
    let dirs = [".", "a", "a/b", "c"];
    for i in 0..(6 + rng.below(7)) {
        let d = *rng.pick(&dirs);
        let n = rng.upto(32 << 10);
        let data = rng.data(n);
        let mode = *rng.pick(&FILE_MODES);
        write_file(&src.join(d).join(format!("init{i}")), &data, mode);
    }
    std::os::unix::fs::symlink("a/init0", src.join("link0")).unwrap();
}

fn entries(src: &Path) -> (Vec<PathBuf>, Vec<PathBuf>, Vec<PathBuf>) {
    let (mut files, mut dirs, mut other) = (Vec::new(), Vec::new(), Vec::new());
    for p in walk(src) {
        let md = fs::symlink_metadata(&p).unwrap();
        if md.is_file() {
            files.push(p);
        } else if md.is_dir() {
            dirs.push(p);
        } else {
            other.push(p);
        }
    }
    (files, dirs, other)
}

fn tree_bytes(src: &Path) -> u64 {
    entries(src)
        .0
        .iter()
        .map(|p| fs::symlink_metadata(p).unwrap().len())
        .sum()
}

fn rel(src: &Path, p: &Path) -> String {
    p.strip_prefix(src).unwrap().display().to_string()
}

/// Change the tree between backups; returns what was done.
fn mutate_tree(rng: &mut Rng, src: &Path, streams: &[Arc<Vec<u8>>], counter: &mut u64) -> String {
    let mut how = Vec::new();
    let n = if rng.chance(15) { 0 } else { 1 + rng.below(4) };
    for _ in 0..n {
        let (files, dirs, other) = entries(src);
        *counter += 1;
        let c = *counter;
        match rng.below(12) {
            0 | 1 => {
                let d = rng.pick(&dirs).clone();
                let d = if rng.chance(25) && d.components().count() < src.components().count() + 3 {
                    let nd = d.join(format!("d{c}"));
                    fs::create_dir(&nd).unwrap();
                    nd
                } else {
                    d
                };
                let data = new_file_data(rng, streams);
                let p = d.join(format!("f{c}"));
                write_file(&p, &data, *rng.pick(&FILE_MODES));
                how.push(format!("add {} ({} bytes)", rel(src, &p), data.len()));
            }
            2 | 3 if !files.is_empty() => {
                let p = rng.pick(&files).clone();
                let mut data = fs::read(&p).unwrap();
                match rng.below(3) {
                    0 if !data.is_empty() => {
                        let off = rng.upto(data.len() - 1);
                        let k = 1 + rng.upto((data.len() - off - 1).min(8192));
                        let d = rng.data(k);
                        data[off..off + k].copy_from_slice(&d);
                    }
                    1 => {
                        let k = 1 + rng.upto(16 << 10);
                        data.extend(rng.data(k));
                    }
                    _ => {
                        let k = rng.upto(data.len());
                        data.truncate(k);
                    }
                }
                fs::write(&p, &data).unwrap();
                how.push(format!(
                    "modify {} (now {} bytes)",
                    rel(src, &p),
                    data.len()
                ));
            }
            4 => {
                // same size, old mtime put back: only ctime tells
                let nonempty: Vec<PathBuf> = files
                    .iter()
                    .filter(|p| fs::metadata(p).unwrap().len() > 0)
                    .cloned()
                    .collect();
                if nonempty.is_empty() {
                    continue;
                }
                let p = rng.pick(&nonempty).clone();
                let md = fs::metadata(&p).unwrap();
                let mtime = md.modified().unwrap();
                let mut data = fs::read(&p).unwrap();
                let i = rng.upto(data.len() - 1);
                data[i] = data[i].wrapping_add(1 + rng.below(255) as u8);
                fs::write(&p, &data).unwrap();
                let f = File::options().write(true).open(&p).unwrap();
                f.set_times(FileTimes::new().set_modified(mtime)).unwrap();
                drop(f);
                let after = fs::metadata(&p).unwrap();
                assert_eq!(
                    (after.mtime(), after.mtime_nsec(), after.len()),
                    (md.mtime(), md.mtime_nsec(), md.len())
                );
                how.push(format!(
                    "rewrite {} byte {i}, same size and mtime",
                    rel(src, &p)
                ));
            }
            5 if !files.is_empty() => {
                let p = rng.pick(&files).clone();
                fs::remove_file(&p).unwrap();
                how.push(format!("delete {}", rel(src, &p)));
            }
            6 if !files.is_empty() => {
                let p = rng.pick(&files).clone();
                let d = rng.pick(&dirs).clone();
                let to = d.join(format!("m{c}"));
                fs::rename(&p, &to).unwrap();
                how.push(format!("move {} to {}", rel(src, &p), rel(src, &to)));
            }
            7 if !files.is_empty() => {
                let p = rng.pick(&files).clone();
                let mode = *rng.pick(&FILE_MODES);
                fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
                how.push(format!("chmod {mode:o} {}", rel(src, &p)));
            }
            8 => {
                if !other.is_empty() && rng.chance(40) {
                    let p = rng.pick(&other).clone();
                    fs::remove_file(&p).unwrap();
                    how.push(format!("delete {}", rel(src, &p)));
                } else {
                    let d = rng.pick(&dirs).clone();
                    let target = match rng.below(3) {
                        0 => format!("f{}", c.saturating_sub(1)),
                        1 => format!("../missing/{c}"),
                        _ => format!("/nonexistent/target-{c}"),
                    };
                    let p = d.join(format!("l{c}"));
                    std::os::unix::fs::symlink(&target, &p).unwrap();
                    how.push(format!("symlink {} -> {target}", rel(src, &p)));
                }
            }
            9 => {
                let d = rng.pick(&dirs).clone();
                if rng.chance(20) {
                    let p = d.join(format!("p{c}"));
                    let cs = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
                    // SAFETY: a valid NUL-terminated path.
                    assert_eq!(unsafe { libc::mkfifo(cs.as_ptr(), 0o644) }, 0);
                    how.push(format!("mkfifo {}", rel(src, &p)));
                } else {
                    let p = d.join(format!("e{c}"));
                    fs::create_dir(&p).unwrap();
                    how.push(format!("mkdir {}", rel(src, &p)));
                }
            }
            10 if dirs.len() > 1 => {
                let d = dirs[1 + rng.below(dirs.len() as u64 - 1) as usize].clone();
                fs::remove_dir_all(&d).unwrap();
                how.push(format!("rm -r {}", rel(src, &d)));
            }
            11 if !files.is_empty() => {
                // a file becomes a directory of the same name
                let p = rng.pick(&files).clone();
                fs::remove_file(&p).unwrap();
                fs::create_dir(&p).unwrap();
                let data = new_file_data(rng, streams);
                write_file(&p.join("inner"), &data, 0o644);
                how.push(format!("file {} becomes a directory", rel(src, &p)));
            }
            _ => how.push("(nothing)".to_string()),
        }
    }
    // keep the tree small
    loop {
        let (files, _, _) = entries(src);
        if files.is_empty() || (tree_bytes(src) <= MAX_TREE_BYTES && files.len() <= MAX_TREE_FILES)
        {
            break;
        }
        let p = rng.pick(&files).clone();
        fs::remove_file(&p).unwrap();
        how.push(format!("trim {}", rel(src, &p)));
    }
    if how.is_empty() {
        "unchanged".to_string()
    } else {
        how.join(", ")
    }
}

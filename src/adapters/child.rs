//! Running database tools as child processes: no shell, stdin closed,
//! stderr collected (its last lines go into our error when the tool fails,
//! and are passed on as warnings when it succeeds).

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::error::{Error, ErrorKind, Result};

/// How a tool is found: in `bin_dir` when the plan gives one, else on PATH.
pub fn tool(bin_dir: Option<&Path>, name: &str) -> Command {
    match bin_dir {
        Some(d) => Command::new(d.join(name)),
        None => Command::new(name),
    }
}

/// The first of `names` that can be found (in `bin_dir` or on PATH).
pub fn first_tool<'a>(bin_dir: Option<&Path>, names: &[&'a str]) -> Option<&'a str> {
    names.iter().copied().find(|n| match bin_dir {
        Some(d) => d.join(n).is_file(),
        None => std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|p| p.join(n).is_file())),
    })
}

pub fn program_name(cmd: &Command) -> String {
    Path::new(cmd.get_program())
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| cmd.get_program().to_string_lossy().into_owned())
}

/// A running tool whose stderr is being collected.
pub struct Running {
    pub child: Child,
    pub program: String,
    stderr: Arc<Mutex<Vec<String>>>,
    collector: Option<JoinHandle<()>>,
}

const STDERR_LINES: usize = 20;

impl Running {
    /// Start `cmd` with stdin from `stdin` and stdout piped.
    pub fn spawn(mut cmd: Command, stdin: Stdio) -> Result<Running> {
        let program = program_name(&cmd);
        let mut child = cmd
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                Error::new(
                    ErrorKind::CommandFailed,
                    format!("cannot run {program}: {e}"),
                )
                .with_hint(if e.kind() == std::io::ErrorKind::NotFound {
                    "install it, put it on PATH, or set bin-dir in the plan".to_string()
                } else {
                    "check its permissions".to_string()
                })
            })?;
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let pipe = child.stderr.take().expect("piped");
        let lines = stderr.clone();
        let collector = std::thread::spawn(move || {
            for line in BufReader::new(pipe).split(b'\n').map_while(|l| l.ok()) {
                let mut v = lines.lock().unwrap();
                if v.len() == STDERR_LINES {
                    v.remove(0);
                }
                v.push(String::from_utf8_lossy(&line).trim_end().to_string());
            }
        });
        Ok(Running {
            child,
            program,
            stderr,
            collector: Some(collector),
        })
    }

    pub fn stdout(&mut self) -> std::process::ChildStdout {
        self.child.stdout.take().expect("stdout is taken once")
    }

    /// Wait for the tool; returns its status and its last stderr lines.
    pub fn wait(mut self) -> Result<(ExitStatus, Vec<String>)> {
        let status = self
            .child
            .wait()
            .map_err(|e| Error::other(format!("waiting for {}: {e}", self.program)))?;
        if let Some(c) = self.collector.take() {
            let _ = c.join();
        }
        let lines = std::mem::take(&mut *self.stderr.lock().unwrap());
        Ok((status, lines))
    }

    /// Wait, and turn anything but exit 0 into an error that says how it
    /// ended and what it printed last.
    pub fn finish(self, what: &str) -> Result<Vec<String>> {
        let program = self.program.clone();
        let (status, lines) = self.wait()?;
        check_status(&program, status, &lines, what)?;
        Ok(lines)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
    }
}

/// "pg_dump exited with status 1" / "was killed by signal 9", as an error.
pub fn check_status(program: &str, status: ExitStatus, lines: &[String], what: &str) -> Result<()> {
    if status.success() {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::CommandFailed,
        format!("{program} {}{}; {what}", how(status), tail(lines)),
    ))
}

pub fn how(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(s)) => format!("was killed by signal {s}"),
        _ => "failed".into(),
    }
}

/// The last stderr lines, for an error message.
pub fn tail(lines: &[String]) -> String {
    let useful: Vec<&String> = lines.iter().filter(|l| !l.is_empty()).collect();
    if useful.is_empty() {
        return String::new();
    }
    let last: Vec<&str> = useful[useful.len().saturating_sub(3)..]
        .iter()
        .map(|s| s.as_str())
        .collect();
    format!(": {}", last.join(" / "))
}

/// Run a tool to completion and return its stdout (small outputs: versions,
/// query results).
pub fn output(cmd: Command, what: &str) -> Result<String> {
    let mut r = Running::spawn(cmd, Stdio::null())?;
    let mut out = String::new();
    let mut stdout = r.stdout();
    let read = stdout.read_to_string(&mut out);
    drop(stdout);
    r.finish(what)?;
    read.map_err(|e| Error::other(format!("reading the output: {e}")))?;
    Ok(out)
}

/// `TOOL --version`, first line, or None if it cannot be run.
pub fn version(mut cmd: Command) -> Option<String> {
    cmd.arg("--version");
    output(cmd, "")
        .ok()?
        .lines()
        .next()
        .map(|l| l.trim().to_string())
}

/// Run `cmd` with `write` producing its stdin (a restored stream); the tool's
/// failure is our failure, and so is a tool that stops reading early.
pub fn feed(
    cmd: Command,
    what: &str,
    write: impl FnOnce(&mut dyn std::io::Write) -> Result<u64>,
) -> Result<(u64, Vec<String>)> {
    feed_with(cmd, what, false, write)
}

/// `feed` for tools that may rightly stop reading once they have what they
/// need (`pg_restore -t`): a closed pipe with exit 0 is then success.
pub fn feed_with(
    cmd: Command,
    what: &str,
    may_stop_early: bool,
    write: impl FnOnce(&mut dyn std::io::Write) -> Result<u64>,
) -> Result<(u64, Vec<String>)> {
    let (n, lines, _) = feed_inner(cmd, what, may_stop_early, false, write)?;
    Ok((n, lines))
}

/// Feed a tool that reads only the head of the stream and answers on stdout
/// (`pg_restore --list`); returns what it printed.
pub fn feed_for_output(
    cmd: Command,
    what: &str,
    write: impl FnOnce(&mut dyn std::io::Write) -> Result<u64>,
) -> Result<String> {
    let (_, _, out) = feed_inner(cmd, what, true, true, write)?;
    String::from_utf8(out).map_err(|_| Error::other(format!("{what}: the output is not UTF-8")))
}

fn feed_inner(
    cmd: Command,
    what: &str,
    may_stop_early: bool,
    keep_stdout: bool,
    write: impl FnOnce(&mut dyn std::io::Write) -> Result<u64>,
) -> Result<(u64, Vec<String>, Vec<u8>)> {
    let mut run = Running::spawn(cmd, Stdio::piped())?;
    let program = run.program.clone();
    let mut stdin = run.child.stdin.take().expect("piped");
    // read stdout on its own thread so the tool never blocks on a full pipe;
    // unless asked for, it is dropped (stderr says what went wrong)
    let mut stdout = run.stdout();
    let drain = std::thread::spawn(move || {
        let mut kept = Vec::new();
        if keep_stdout {
            let _ = stdout.read_to_end(&mut kept);
        } else {
            let _ = std::io::copy(&mut stdout, &mut std::io::sink());
        }
        kept
    });
    let written = write(&mut stdin);
    drop(stdin);
    let (status, lines) = run.wait()?;
    let out = drain.join().unwrap_or_default();
    check_status(&program, status, &lines, what)?;
    match written {
        Err(e) if e.is_broken_pipe() && may_stop_early => Ok((0, lines, out)),
        Err(e) if e.is_broken_pipe() => Err(Error::new(
            ErrorKind::CommandFailed,
            format!(
                "{program} stopped reading before the end of the stream{}",
                tail(&lines)
            ),
        )),
        Err(e) => Err(e),
        Ok(n) => Ok((n, lines, out)),
    }
}

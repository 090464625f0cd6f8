//! Where passwords come from: a file, a command, the environment, or a prompt
//! on the terminal. Never from the command line; never a hang when there is no
//! terminal.

use std::io::IsTerminal;
use std::path::Path;
use std::process::{Command, Stdio};

use zeroize::Zeroizing;

use super::args::Global;
use crate::error::{Error, Result};
use crate::repo::Password;

fn first_line(bytes: &[u8]) -> Password {
    let text = String::from_utf8_lossy(bytes);
    Zeroizing::new(text.lines().next().unwrap_or("").to_string())
}

fn from_file(path: &Path) -> Result<Password> {
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| {
        Error::usage(format!(
            "cannot read the password file {}: {e}",
            path.display()
        ))
    })?);
    Ok(first_line(&bytes))
}

fn from_command(cmd: &str) -> Result<Password> {
    let argv = shlex::split(cmd)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| Error::usage("the password command is empty or badly quoted"))?;
    let out = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| {
            Error::usage(format!(
                "cannot run the password command {:?}: {e}",
                argv[0]
            ))
        })?;
    let stdout = Zeroizing::new(out.stdout);
    if !out.status.success() {
        return Err(Error::usage(format!(
            "the password command {:?} failed ({})",
            argv[0], out.status
        )));
    }
    Ok(first_line(&stdout))
}

fn tty_available() -> bool {
    std::fs::File::open("/dev/tty").is_ok()
        && (std::io::stdin().is_terminal() || std::io::stderr().is_terminal())
}

fn prompt(text: &str) -> Result<Password> {
    if !tty_available() {
        return Err(
            Error::usage("no password given and no terminal to ask for one")
                .with_hint("set COFFRE_PASSWORD, COFFRE_PASSWORD_FILE or COFFRE_PASSWORD_COMMAND"),
        );
    }
    rpassword::prompt_password(text)
        .map(Zeroizing::new)
        .map_err(|e| Error::usage(format!("reading the password: {e}")))
}

/// The password to open a repository.
pub fn get(global: &Global) -> Result<Password> {
    if let Some(f) = &global.password_file {
        return from_file(f);
    }
    if let Some(c) = &global.password_command {
        return from_command(c);
    }
    if let Ok(p) = std::env::var("COFFRE_PASSWORD") {
        return Ok(Zeroizing::new(p));
    }
    prompt("repository password: ")
}

/// A new password (init): the usual sources, or a prompt asked twice.
pub fn get_new(global: &Global) -> Result<Password> {
    if global.password_file.is_some()
        || global.password_command.is_some()
        || std::env::var_os("COFFRE_PASSWORD").is_some()
    {
        return get(global);
    }
    ask_twice("new repository password: ")
}

/// The new password for `key add` / `key passwd`.
pub fn get_added(file: Option<&Path>) -> Result<Password> {
    if let Some(f) = file {
        return from_file(f);
    }
    if let Ok(p) = std::env::var("COFFRE_NEW_PASSWORD") {
        return Ok(Zeroizing::new(p));
    }
    if !tty_available() {
        return Err(
            Error::usage("no new password given and no terminal to ask for one")
                .with_hint("set COFFRE_NEW_PASSWORD or --new-password-file"),
        );
    }
    ask_twice("new password: ")
}

fn ask_twice(text: &str) -> Result<Password> {
    let a = prompt(text)?;
    let b = prompt("again: ")?;
    if a != b {
        return Err(Error::usage("the passwords do not match"));
    }
    Ok(a)
}

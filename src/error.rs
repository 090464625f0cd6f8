//! The one public error type.
//!
//! Rules: every fallible public function returns [`Error`]. An error has a
//! [`ErrorKind`] (which decides the exit code), a one-line message naming the
//! thing that went wrong, and, where there is one, a hint that says how to fix
//! it. Messages never contain secrets. Internal modules may use `std::io::Error`
//! and convert with context at the boundary.

use std::fmt;
use std::path::Path;

/// What class of failure this is; each maps to a documented exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Bad command line or input the user can correct (exit 2).
    Usage,
    /// The repository does not exist or is not a coffre repository (exit 10).
    NoRepository,
    /// No key file could be opened with the password given (exit 11).
    WrongPassword,
    /// The repository or its index is locked by another process (exit 12).
    Locked,
    /// The snapshot, entry or path asked for does not exist (exit 13).
    NotFound,
    /// Data in the repository failed authentication, hashing or decoding (exit 14).
    Corrupt,
    /// A child process (dump command, restore command) failed (exit 15).
    CommandFailed,
    /// Interrupted by a signal (exit 130).
    Interrupted,
    /// Anything else: I/O errors, SQLite errors (exit 1).
    Other,
}

impl ErrorKind {
    /// The process exit code for this kind (documented in the README).
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorKind::Other => 1,
            ErrorKind::Usage => 2,
            ErrorKind::NoRepository => 10,
            ErrorKind::WrongPassword => 11,
            ErrorKind::Locked => 12,
            ErrorKind::NotFound => 13,
            ErrorKind::Corrupt => 14,
            ErrorKind::CommandFailed => 15,
            ErrorKind::Interrupted => 130,
        }
    }
}

/// An error with a kind, a message and an optional hint.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    hint: Option<String>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            hint: None,
            source: None,
        }
    }
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Usage, message)
    }
    pub fn corrupt(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Corrupt, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    pub fn other(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Other, message)
    }
    /// An I/O error on `path`, described as `what` ("reading pack", …).
    pub fn io(what: &str, path: &Path, err: std::io::Error) -> Self {
        let kind = if err.kind() == std::io::ErrorKind::Interrupted {
            ErrorKind::Interrupted
        } else {
            ErrorKind::Other
        };
        Error {
            kind,
            message: format!("{what} {}: {err}", path.display()),
            hint: None,
            source: Some(Box::new(err)),
        }
    }
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }
    /// Prefix the message with context ("restoring uploads: …").
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    pub fn message(&self) -> &str {
        &self.message
    }
    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }
    /// True when the root cause is a closed pipe on our output (not an error for a CLI).
    pub fn is_broken_pipe(&self) -> bool {
        self.source
            .as_ref()
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " ({hint})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl From<rusqlite::Error> for Error {
    fn from(err: rusqlite::Error) -> Self {
        let busy = matches!(
            err.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy) | Some(rusqlite::ErrorCode::DatabaseLocked)
        );
        if busy {
            Error::new(ErrorKind::Locked, format!("the index is locked: {err}")).with_hint(
                "another coffre process is writing; retry when it has finished (a coffre \
                     process that is suspended, e.g. by Ctrl-Z or SIGSTOP, keeps the index \
                     locked until it is resumed or killed)",
            )
        } else if matches!(
            err.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseCorrupt) | Some(rusqlite::ErrorCode::NotADatabase)
        ) {
            Error::other(format!("index database: {err}"))
                .with_hint(
                    "the index is derived state: `coffre repair index` rebuilds it from the \
                     repository",
                )
                .with_source(err)
        } else {
            Error::other(format!("index database: {err}")).with_source(err)
        }
    }
}

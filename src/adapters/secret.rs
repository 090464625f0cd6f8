//! Credentials for child processes: read from where the plan says, handed to
//! tools through 0600 files in a 0700 directory that is removed afterwards,
//! or through the child's environment. Never on a command line, never logged.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::plan::Source;

pub type Secret = Zeroizing<String>;

/// The first line of a password file.
pub fn read_first_line(path: &Path) -> std::io::Result<Secret> {
    let bytes = Zeroizing::new(std::fs::read(path)?);
    Ok(Zeroizing::new(
        String::from_utf8_lossy(&bytes)
            .lines()
            .next()
            .unwrap_or("")
            .to_string(),
    ))
}

/// The server password a source names in `password-file` or `password-env`
/// (a password inside its URL is taken where the URL is parsed).
pub fn source_password(src: &Source) -> Result<Option<Secret>> {
    if let Some(p) = &src.password_file {
        return read_first_line(p).map(Some).map_err(|e| {
            Error::usage(format!(
                "source {:?}: cannot read password-file {}: {e}",
                src.name,
                p.display()
            ))
        });
    }
    if let Some(var) = &src.password_env {
        return match std::env::var(var) {
            Ok(v) => Ok(Some(Zeroizing::new(v))),
            Err(_) => Err(Error::usage(format!(
                "source {:?}: environment variable {var} (password-env) is not set",
                src.name
            ))
            .with_hint(format!("export {var}=… in the environment coffre runs in"))),
        };
    }
    Ok(None)
}

/// A private temporary directory for credential files; removed on drop.
pub struct SecretDir {
    dir: tempfile::TempDir,
}

impl SecretDir {
    pub fn new() -> Result<SecretDir> {
        let dir = tempfile::Builder::new()
            .prefix("coffre-secret-")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir()
            .map_err(|e| Error::io("creating a private directory in", &std::env::temp_dir(), e))?;
        Ok(SecretDir { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Write `contents` to a new 0600 file named `name` in the directory.
    pub fn write(&self, name: &str, contents: &str) -> Result<PathBuf> {
        let path = self.dir.path().join(name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io("creating", &path, e))?;
        f.write_all(contents.as_bytes())
            .map_err(|e| Error::io("writing", &path, e))?;
        Ok(path)
    }
}

/// A URL with its password taken out: (URL without password, password).
/// Percent-encoding in the password is decoded.
pub fn split_url_password(raw: &str) -> Result<(url::Url, Option<Secret>)> {
    let mut u = url::Url::parse(raw).map_err(|e| {
        Error::usage(format!("{} is not a valid URL: {e}", redact_url_str(raw))).with_hint(
            "e.g. postgresql://user@host:5432/db, mysql://user@host/db, redis://host:6379",
        )
    })?;
    let pw = u.password().map(|p| {
        Zeroizing::new(
            percent_encoding::percent_decode_str(p)
                .decode_utf8_lossy()
                .into_owned(),
        )
    });
    if pw.is_some() {
        let _ = u.set_password(None);
    }
    Ok((u, pw))
}

/// A URL for messages: any password replaced by `***`.
pub fn redact_url_str(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "the URL".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_leave_urls() {
        let (u, pw) =
            split_url_password("postgresql://app:p%40ss@db:5432/app?sslmode=disable").unwrap();
        assert_eq!(u.as_str(), "postgresql://app@db:5432/app?sslmode=disable");
        assert_eq!(pw.unwrap().as_str(), "p@ss");
        assert_eq!(
            redact_url_str("redis://:hunter2@localhost:6379"),
            "redis://:***@localhost:6379"
        );
    }

    #[test]
    fn secret_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let d = SecretDir::new().unwrap();
        let f = d.write("pgpass", "*:*:*:*:x\n").unwrap();
        assert_eq!(
            std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::metadata(d.path()).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let p = d.path().to_path_buf();
        drop(d);
        assert!(!p.exists());
    }
}

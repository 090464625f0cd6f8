//! A repository in a local directory.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind as IoKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::Storage;
use crate::error::{Error, ErrorKind, Result};

pub struct LocalStorage {
    root: PathBuf,
}

impl LocalStorage {
    /// Write a file atomically and durably: a temp file filled by `write`,
    /// fsynced, renamed into place, and the directory fsynced.
    fn write_atomic_with(
        &self,
        rel: &str,
        write: impl FnOnce(&mut File) -> std::io::Result<()>,
    ) -> Result<()> {
        let dest = self.path(rel);
        let dir = dest.parent().expect("repository paths have a parent");
        create_dir_private(dir).map_err(|e| Error::io("creating", dir, e))?;
        let tmp_dir = self.root.join("tmp");
        create_dir_private(&tmp_dir).map_err(|e| Error::io("creating", &tmp_dir, e))?;
        let tmp = tmp_dir.join(format!(
            "{}.{}.{}",
            dest.file_name().unwrap().to_string_lossy(),
            std::process::id(),
            hex::encode(crate::crypto::random_array::<6>())
        ));
        let result = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            write(&mut f)?;
            f.sync_all()?;
            drop(f);
            fs::rename(&tmp, &dest)?;
            sync_dir(dir)
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io("writing", &dest, e));
        }
        Ok(())
    }

    pub fn new(root: &Path) -> LocalStorage {
        LocalStorage {
            root: root.to_path_buf(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}

/// Create `dir` and its parents with mode 0700.
pub fn create_dir_private(dir: &Path) -> std::io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// fsync a directory so that a rename inside it is durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> Error {
    if e.kind() == IoKind::NotFound {
        Error::new(
            ErrorKind::NotFound,
            format!("{what} {}: file not found", path.display()),
        )
        .with_source(e)
    } else {
        Error::io(what, path, e)
    }
}

impl Storage for LocalStorage {
    fn read(&self, rel: &str) -> Result<Vec<u8>> {
        let p = self.path(rel);
        fs::read(&p).map_err(|e| io_err("reading", &p, e))
    }

    fn read_into(&self, rel: &str, buf: &mut Vec<u8>) -> Result<()> {
        use std::io::Read;
        let p = self.path(rel);
        let mut f = File::open(&p).map_err(|e| io_err("opening", &p, e))?;
        let size = f.metadata().map_err(|e| io_err("inspecting", &p, e))?.len();
        buf.clear();
        buf.reserve_exact(size as usize);
        f.read_to_end(buf).map_err(|e| io_err("reading", &p, e))?;
        Ok(())
    }

    fn read_at(&self, rel: &str, offset: u64, len: usize) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.read_at_into(rel, offset, len, &mut buf)?;
        Ok(buf)
    }

    fn read_at_into(&self, rel: &str, offset: u64, len: usize, buf: &mut Vec<u8>) -> Result<()> {
        use std::io::{Read, Seek, SeekFrom};
        let p = self.path(rel);
        let mut f = File::open(&p).map_err(|e| io_err("opening", &p, e))?;
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| Error::io("reading", &p, e))?;
        buf.clear();
        buf.reserve_exact(len);
        // into the spare capacity: no zeroing of memory about to be overwritten
        f.take(len as u64)
            .read_to_end(buf)
            .map_err(|e| Error::io("reading", &p, e))?;
        if buf.len() < len {
            return Err(Error::corrupt(format!(
                "{} is shorter than expected (truncated?)",
                p.display()
            )));
        }
        Ok(())
    }

    fn size(&self, rel: &str) -> Result<u64> {
        let p = self.path(rel);
        Ok(fs::metadata(&p)
            .map_err(|e| io_err("inspecting", &p, e))?
            .len())
    }

    fn exists(&self, rel: &str) -> Result<bool> {
        let p = self.path(rel);
        match fs::symlink_metadata(&p) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == IoKind::NotFound => Ok(false),
            Err(e) => Err(Error::io("inspecting", &p, e)),
        }
    }

    fn write_atomic(&self, rel: &str, parts: &[&[u8]]) -> Result<()> {
        self.write_atomic_with(rel, |f| parts.iter().try_for_each(|p| f.write_all(p)))
    }

    fn write_owned(&self, rel: &str, parts: Vec<Vec<u8>>) -> Result<()> {
        self.write_atomic_with(rel, |f| parts.into_iter().try_for_each(|p| f.write_all(&p)))
    }

    fn list(&self, rel: &str) -> Result<Vec<String>> {
        let p = self.path(rel);
        let rd = match fs::read_dir(&p) {
            Ok(rd) => rd,
            Err(e) if e.kind() == IoKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("listing", &p, e)),
        };
        let mut out = Vec::new();
        for ent in rd {
            let ent = ent.map_err(|e| Error::io("listing", &p, e))?;
            if let Some(name) = ent.file_name().to_str() {
                out.push(name.to_string());
            }
        }
        out.sort();
        Ok(out)
    }

    fn list_files(&self, rel: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut todo = vec![String::new()];
        while let Some(sub) = todo.pop() {
            let p = self.path(rel).join(&sub);
            let rd = match fs::read_dir(&p) {
                Ok(rd) => rd,
                Err(e) if e.kind() == IoKind::NotFound => continue,
                Err(e) => return Err(Error::io("listing", &p, e)),
            };
            for ent in rd {
                let ent = ent.map_err(|e| Error::io("listing", &p, e))?;
                let Some(name) = ent.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                let relname = if sub.is_empty() {
                    name
                } else {
                    format!("{sub}/{name}")
                };
                let ft = ent.file_type().map_err(|e| Error::io("listing", &p, e))?;
                if ft.is_dir() {
                    todo.push(relname);
                } else {
                    out.push(relname);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn is_local(&self) -> bool {
        true
    }

    fn remove(&self, rel: &str) -> Result<()> {
        let p = self.path(rel);
        fs::remove_file(&p).map_err(|e| io_err("removing", &p, e))
    }

    fn remove_stale_tmp(&self, older_than: std::time::Duration) -> Result<u64> {
        let dir = self.root.join("tmp");
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == IoKind::NotFound => return Ok(0),
            Err(e) => return Err(Error::io("listing", &dir, e)),
        };
        let now = std::time::SystemTime::now();
        let mut removed = 0;
        for ent in rd {
            let ent = ent.map_err(|e| Error::io("listing", &dir, e))?;
            let md = ent
                .metadata()
                .map_err(|e| Error::io("reading", &ent.path(), e))?;
            let old = md
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|age| age > older_than);
            if md.is_file() && old {
                match fs::remove_file(ent.path()) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == IoKind::NotFound => {}
                    Err(e) => return Err(Error::io("removing", &ent.path(), e)),
                }
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_into_replaces_the_buffer_and_names_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStorage::new(dir.path());
        s.write_atomic("a", &[b"short"]).unwrap();
        s.write_atomic("b", &[&[7u8; 100_000]]).unwrap();
        let mut buf = b"left over from an earlier, longer read".to_vec();
        s.read_into("a", &mut buf).unwrap();
        assert_eq!(buf, b"short");
        s.read_into("b", &mut buf).unwrap();
        assert_eq!(buf, vec![7u8; 100_000]);
        let e = s.read_into("c", &mut buf).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
    }
}

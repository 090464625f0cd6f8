//! Where a repository lives: a local directory, an SFTP server or an
//! S3-compatible bucket, written as a path or a URL (README "Remote
//! repositories").
//!
//! Secrets never appear in a location: a URL with a password or a key in it
//! is refused, because command lines and plan files are not secret. SSH
//! keys come from a key file, S3 credentials from the usual AWS environment
//! variables or profile.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    Sftp(SftpLocation),
    S3(S3Location),
    Azure(AzureLocation),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SftpLocation {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    /// Absolute path on the server.
    pub path: String,
    /// Private key file (`?key=PATH`, else `COFFRE_SSH_KEY`, else ssh's own
    /// choice: agent, ~/.ssh/config, default keys).
    pub key: Option<PathBuf>,
    /// `strict` (default), `add` or `accept` (`?known-hosts=`).
    pub known_hosts: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    /// Key prefix inside the bucket, without leading or trailing slash.
    pub prefix: String,
    /// `?endpoint=URL`, else `AWS_ENDPOINT_URL`, else AWS.
    pub endpoint: Option<String>,
    /// `?region=`, else `AWS_REGION` / `AWS_DEFAULT_REGION`.
    pub region: Option<String>,
    /// `?style=virtual` for virtual-hosted-style requests (path style is
    /// the default, which every S3-compatible server speaks).
    pub virtual_host: bool,
    /// `?profile=NAME`: credentials of that profile of the AWS shared
    /// config files (else `AWS_PROFILE`, else the environment's keys).
    pub profile: Option<String>,
}

/// Azure Blob Storage (and Azurite).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AzureLocation {
    pub container: String,
    pub prefix: String,
    /// `?endpoint=URL`, else `AZURE_STORAGE_ENDPOINT`, else
    /// `https://ACCOUNT.blob.core.windows.net`.
    pub endpoint: Option<String>,
}

const SCHEMES: &str = "a path, file://PATH, sftp://[USER@]HOST[:PORT]/PATH, s3://BUCKET[/PREFIX] \
                       or azblob://CONTAINER[/PREFIX]";

impl Location {
    pub fn parse(s: &str) -> Result<Location> {
        let Some((scheme, _)) = s.split_once("://") else {
            if s.is_empty() {
                return Err(Error::usage("the repository location is empty"));
            }
            return Ok(Location::Local(PathBuf::from(s)));
        };
        let bad = |why: &str| {
            Error::usage(format!("bad repository location {}: {why}", redact(s)))
                .with_hint(format!("write it as {SCHEMES}"))
        };
        let url = url::Url::parse(s).map_err(|e| bad(&e.to_string()))?;
        if url.password().is_some() {
            return Err(bad("it holds a password").with_hint(
                "never put secrets in a location (command lines are visible to other users): \
                 use an SSH key file (?key=PATH or COFFRE_SSH_KEY) or the AWS_* environment \
                 variables",
            ));
        }
        let mut query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let mut take = |k: &str| -> Option<String> {
            let i = query.iter().position(|(q, _)| q == k)?;
            Some(query.remove(i).1)
        };
        let loc = match scheme {
            "file" => {
                if url
                    .host_str()
                    .is_some_and(|h| !h.is_empty() && h != "localhost")
                {
                    return Err(bad("file:// URLs name a local path (file:///PATH)"));
                }
                Location::Local(
                    url.to_file_path()
                        .map_err(|_| bad("not an absolute local path"))?,
                )
            }
            "sftp" | "ssh" => {
                let host = url
                    .host_str()
                    .filter(|h| !h.is_empty())
                    .ok_or_else(|| bad("no host"))?
                    .to_string();
                let path = percent_encoding::percent_decode_str(url.path())
                    .decode_utf8()
                    .map_err(|_| bad("the path is not UTF-8"))?
                    .into_owned();
                if path.is_empty() || path == "/" {
                    return Err(bad("no directory on the server"));
                }
                let known_hosts = take("known-hosts").unwrap_or_else(|| "strict".into());
                if !["strict", "add", "accept"].contains(&known_hosts.as_str()) {
                    return Err(bad("known-hosts must be strict, add or accept"));
                }
                let key = take("key")
                    .map(PathBuf::from)
                    .or_else(|| std::env::var_os("COFFRE_SSH_KEY").map(PathBuf::from));
                Location::Sftp(SftpLocation {
                    user: Some(url.username()).filter(|u| !u.is_empty()).map(|u| {
                        percent_encoding::percent_decode_str(u)
                            .decode_utf8_lossy()
                            .into_owned()
                    }),
                    host,
                    port: url.port(),
                    path: path.trim_end_matches('/').to_string(),
                    key,
                    known_hosts,
                })
            }
            "s3" => {
                if !url.username().is_empty() {
                    return Err(bad("credentials do not belong in the URL")
                        .with_hint("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY instead"));
                }
                let bucket = url
                    .host_str()
                    .filter(|h| !h.is_empty())
                    .ok_or_else(|| bad("no bucket"))?
                    .to_string();
                let prefix = url.path().trim_matches('/').to_string();
                let style = take("style").unwrap_or_else(|| "path".into());
                if style != "path" && style != "virtual" {
                    return Err(bad("style must be path or virtual"));
                }
                Location::S3(S3Location {
                    bucket,
                    prefix,
                    endpoint: take("endpoint").or_else(|| {
                        std::env::var("AWS_ENDPOINT_URL_S3")
                            .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
                            .ok()
                    }),
                    region: take("region").or_else(|| {
                        std::env::var("AWS_REGION")
                            .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
                            .ok()
                    }),
                    virtual_host: style == "virtual",
                    profile: take("profile"),
                })
            }
            "azblob" => {
                if !url.username().is_empty() {
                    return Err(bad("credentials do not belong in the URL").with_hint(
                        "set AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY instead",
                    ));
                }
                let container = url
                    .host_str()
                    .filter(|h| !h.is_empty())
                    .ok_or_else(|| bad("no container"))?
                    .to_string();
                Location::Azure(AzureLocation {
                    container,
                    prefix: url.path().trim_matches('/').to_string(),
                    endpoint: take("endpoint")
                        .or_else(|| std::env::var("AZURE_STORAGE_ENDPOINT").ok()),
                })
            }
            other => {
                return Err(bad(&format!("unknown scheme {other}://")));
            }
        };
        if let Some((k, _)) = query.first() {
            return Err(bad(&format!("unknown option {k:?}")));
        }
        Ok(loc)
    }

    pub fn local_path(&self) -> Option<&Path> {
        match self {
            Location::Local(p) => Some(p),
            _ => None,
        }
    }

    /// A stable name for this place, for high-water marks: absolute for
    /// local paths, with the endpoint for S3.
    pub fn canonical(&self) -> String {
        match self {
            Location::Local(p) => std::path::absolute(p)
                .unwrap_or_else(|_| p.clone())
                .display()
                .to_string(),
            Location::S3(S3Location {
                endpoint: Some(e), ..
            })
            | Location::Azure(AzureLocation {
                endpoint: Some(e), ..
            }) => format!("{self} at {e}"),
            Location::S3(_) | Location::Azure(_) => self.to_string(),
            Location::Sftp(_) => self.to_string(),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::Sftp(s) => {
                write!(f, "sftp://")?;
                if let Some(u) = &s.user {
                    write!(f, "{u}@")?;
                }
                write!(f, "{}", s.host)?;
                if let Some(p) = s.port {
                    write!(f, ":{p}")?;
                }
                write!(f, "{}", s.path)
            }
            Location::S3(s) => {
                write!(f, "s3://{}", s.bucket)?;
                if !s.prefix.is_empty() {
                    write!(f, "/{}", s.prefix)?;
                }
                Ok(())
            }
            Location::Azure(a) => {
                write!(f, "azblob://{}", a.container)?;
                if !a.prefix.is_empty() {
                    write!(f, "/{}", a.prefix)?;
                }
                Ok(())
            }
        }
    }
}

/// The location with any password replaced, for error messages.
fn redact(s: &str) -> String {
    match url::Url::parse(s) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_urls() {
        assert_eq!(
            Location::parse("./backups").unwrap(),
            Location::Local("./backups".into())
        );
        assert_eq!(
            Location::parse("file:///srv/b").unwrap(),
            Location::Local("/srv/b".into())
        );
        let Location::Sftp(s) =
            Location::parse("sftp://backup@host.example:2222/srv/coffre/app/?known-hosts=add")
                .unwrap()
        else {
            panic!()
        };
        assert_eq!(s.user.as_deref(), Some("backup"));
        assert_eq!((s.host.as_str(), s.port), ("host.example", Some(2222)));
        assert_eq!(s.path, "/srv/coffre/app");
        assert_eq!(s.known_hosts, "add");
        let Location::S3(s) =
            Location::parse("s3://bucket/a/b/?endpoint=http://127.0.0.1:9000&region=eu").unwrap()
        else {
            panic!()
        };
        assert_eq!((s.bucket.as_str(), s.prefix.as_str()), ("bucket", "a/b"));
        assert_eq!(s.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(s.region.as_deref(), Some("eu"));
        let Location::Azure(a) =
            Location::parse("azblob://backups/app?endpoint=http://127.0.0.1:10000/dev").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (a.container.as_str(), a.prefix.as_str()),
            ("backups", "app")
        );
        assert_eq!(a.endpoint.as_deref(), Some("http://127.0.0.1:10000/dev"));
        assert_eq!(
            Location::parse("s3://bucket/a/b?region=x")
                .unwrap()
                .to_string(),
            "s3://bucket/a/b"
        );
    }

    #[test]
    fn refused() {
        for bad in [
            "sftp://u:hunter2@host/x",
            "s3://AKIA:hunter2@bucket/x",
            "s3://AKIA@bucket/x",
            "azblob://acct:hunter2@container/x",
            "ftp://host/x",
            "sftp://host/",
            "s3://bucket/x?colour=red",
            "sftp://host/x?known-hosts=maybe",
            "",
        ] {
            let e = Location::parse(bad).unwrap_err();
            assert_eq!(e.kind(), crate::error::ErrorKind::Usage, "{bad}");
            assert!(!e.to_string().contains("hunter2"), "{bad}: {e}");
        }
    }
}

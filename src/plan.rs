//! The plan file (`coffre.toml`): which repository, how to unlock it, and
//! the sources one `coffre backup` run puts into one snapshot. The schema is
//! documented in the README ("Plans").

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::format::snapshot::check_entry_name;

/// The file looked for in the current directory when `--config` is not given.
pub const DEFAULT_PLAN: &str = "coffre.toml";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Plan {
    #[serde(default)]
    pub repository: RepositorySection,
    #[serde(default, rename = "source")]
    pub sources: Vec<Source>,
    /// Off-site copies (`coffre sync`; after each backup when asked).
    #[serde(default, rename = "sync")]
    pub sync_targets: Vec<SyncTarget>,
    /// The retention policy of the plan's snapshots (`coffre forget`).
    #[serde(default)]
    pub retention: Option<crate::retention::Policy>,
    /// Where the plan was read from (relative paths in it are relative to
    /// the plan's directory).
    #[serde(skip)]
    pub file: PathBuf,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RepositorySection {
    /// A directory or a URL (README "Remote repositories").
    pub path: Option<String>,
    pub password_file: Option<PathBuf>,
    pub password_command: Option<String>,
}

/// A `[[sync]]` section: where `coffre sync` copies the repository.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SyncTarget {
    /// A directory or a URL, like `--to`.
    pub to: String,
    /// Sync right after every `coffre backup` of this plan commits.
    #[serde(default)]
    pub after_backup: bool,
    pub jobs: Option<usize>,
    /// Like `--bwlimit` ("20M").
    pub bwlimit: Option<String>,
    /// Like `--verify` ("5%", "1/30").
    pub verify: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Postgres,
    Mysql,
    Mariadb,
    Mongodb,
    Redis,
    Sqlite,
    Files,
    Command,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Postgres => "postgres",
            Kind::Mysql => "mysql",
            Kind::Mariadb => "mariadb",
            Kind::Mongodb => "mongodb",
            Kind::Redis => "redis",
            Kind::Sqlite => "sqlite",
            Kind::Files => "files",
            Kind::Command => "command",
        }
    }
}

/// pg_dump output formats. Custom without compression deduplicates best and
/// restores with `pg_restore` (in parallel with `--jobs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PgFormat {
    #[default]
    Custom,
    Plain,
    Directory,
}

impl PgFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            PgFormat::Custom => "custom",
            PgFormat::Plain => "plain",
            PgFormat::Directory => "directory",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Source {
    /// The entry name in the snapshot (e.g. `postgres/app`).
    pub name: String,
    pub kind: Kind,
    /// postgres/mysql/mongodb/redis: the server, as a URL. A password in it is
    /// moved to a private file before any tool runs.
    pub url: Option<String>,
    /// The server's password: first line of this file…
    pub password_file: Option<PathBuf>,
    /// …or this environment variable of coffre's own environment.
    pub password_env: Option<String>,
    /// files: what to back up. sqlite: the database file (one path).
    #[serde(default)]
    pub paths: Vec<PathBuf>,
    /// command: argv, run without a shell.
    #[serde(default)]
    pub command: Vec<String>,
    /// postgres: custom (default), plain or directory.
    #[serde(default)]
    pub format: PgFormat,
    /// postgres: also store `pg_dumpall --globals-only` as entry `NAME.globals`.
    #[serde(default)]
    pub globals: bool,
    /// mysql: `--order-by-primary` (slower, more stable dumps).
    #[serde(default)]
    pub order_by_primary: bool,
    /// Directory holding the database tools (e.g. /usr/lib/postgresql/15/bin).
    pub bin_dir: Option<PathBuf>,
}

impl Plan {
    /// The plan named by `--config`, else `./coffre.toml` if it exists.
    pub fn find(explicit: Option<&Path>) -> Result<Option<Plan>> {
        match explicit {
            Some(p) => Plan::load(p).map(Some),
            None => {
                let p = Path::new(DEFAULT_PLAN);
                if p.exists() {
                    Plan::load(p).map(Some)
                } else {
                    Ok(None)
                }
            }
        }
    }

    pub fn load(path: &Path) -> Result<Plan> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::usage(format!("plan file {} does not exist", path.display())).with_hint(
                    "pass --config PATH, or create coffre.toml (see the README, \"Plans\")",
                )
            } else {
                Error::io("reading the plan file", path, e)
            }
        })?;
        let mut plan = Plan::parse(&text).map_err(|e| e.context(path.display()))?;
        plan.file = path.to_path_buf();
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let rel = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        // a relative directory is relative to the plan
        let rel_location = |p: &mut String| -> Result<()> {
            if let crate::storage::Location::Local(l) = crate::storage::Location::parse(p)?
                && l.is_relative()
            {
                *p = base.join(l).to_string_lossy().into_owned();
            }
            Ok(())
        };
        if let Some(p) = plan.repository.path.as_mut() {
            rel_location(p)?;
        }
        for t in &mut plan.sync_targets {
            rel_location(&mut t.to)?;
        }
        if let Some(p) = plan.repository.password_file.as_mut() {
            rel(p);
        }
        for s in &mut plan.sources {
            s.paths.iter_mut().for_each(rel);
            if let Some(p) = s.password_file.as_mut() {
                rel(p);
            }
            if let Some(p) = s.bin_dir.as_mut() {
                rel(p);
            }
        }
        Ok(plan)
    }

    pub fn parse(text: &str) -> Result<Plan> {
        let plan: Plan = toml::from_str(text).map_err(|e| {
            Error::usage(format!("the plan is not valid: {}", e.message().trim())).with_hint(
                match e.span() {
                    Some(span) => format!(
                        "near line {} (see the README, \"Plans\", for the schema)",
                        text[..span.start].lines().count().max(1)
                    ),
                    None => "see the README, \"Plans\", for the schema".into(),
                },
            )
        })?;
        plan.validate()?;
        Ok(plan)
    }

    fn validate(&self) -> Result<()> {
        for (i, s) in self.sources.iter().enumerate() {
            check_entry_name(&s.name)?;
            if self.sources[..i].iter().any(|o| o.name == s.name) {
                return Err(Error::usage(format!(
                    "the plan names source {:?} twice",
                    s.name
                )));
            }
            s.validate()?;
        }
        Ok(())
    }

    pub fn source(&self, name: &str) -> Option<&Source> {
        self.sources.iter().find(|s| s.name == name)
    }

    /// The sources `--only` selects (all when `only` is empty); an unknown
    /// name is an error, not a silent no-op.
    pub fn select(&self, only: &[String]) -> Result<Vec<&Source>> {
        for n in only {
            if self.source(n).is_none() {
                let known: Vec<&str> = self.sources.iter().map(|s| s.name.as_str()).collect();
                return Err(Error::usage(format!("the plan has no source {n:?}"))
                    .with_hint(format!("its sources are: {}", known.join(", "))));
            }
        }
        Ok(self
            .sources
            .iter()
            .filter(|s| only.is_empty() || only.contains(&s.name))
            .collect())
    }
}

impl Source {
    fn validate(&self) -> Result<()> {
        let bad = |what: &str| {
            Err(Error::usage(format!(
                "source {:?} ({}): {what}",
                self.name,
                self.kind.as_str()
            ))
            .with_hint("see the README, \"Plans\", for what each kind takes"))
        };
        let needs_url = matches!(
            self.kind,
            Kind::Postgres | Kind::Mysql | Kind::Mariadb | Kind::Mongodb | Kind::Redis
        );
        if needs_url && self.url.is_none() {
            return bad("needs url");
        }
        if !needs_url && self.url.is_some() {
            return bad("takes no url");
        }
        match self.kind {
            Kind::Files if self.paths.is_empty() => return bad("needs paths"),
            Kind::Sqlite if self.paths.len() != 1 => return bad("needs exactly one path"),
            Kind::Command if self.command.is_empty() => return bad("needs command"),
            Kind::Files | Kind::Sqlite | Kind::Command => {}
            _ if !self.paths.is_empty() => return bad("takes no paths"),
            _ => {}
        }
        if self.kind != Kind::Command && !self.command.is_empty() {
            return bad("takes no command");
        }
        if self.password_file.is_some() && self.password_env.is_some() {
            return bad("give password-file or password-env, not both");
        }
        if self.kind != Kind::Postgres && (self.globals || self.format != PgFormat::Custom) {
            return bad("format and globals are for postgres");
        }
        if self.kind == Kind::Postgres && self.globals {
            check_entry_name(&format!("{}.globals", self.name))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[repository]
path = "/var/backups/coffre"
password-file = "/etc/coffre/password"

[[source]]
name = "postgres/app"
kind = "postgres"
url = "postgresql://app@db.internal:5432/app"
password-file = "/etc/coffre/pg-app.pass"

[[source]]
name = "uploads"
kind = "files"
paths = ["/srv/app/uploads", "/srv/app/.env"]
"#;

    #[test]
    fn the_readme_example_parses() {
        let p = Plan::parse(EXAMPLE).unwrap();
        assert_eq!(p.sources.len(), 2);
        assert_eq!(p.sources[0].kind, Kind::Postgres);
        assert_eq!(p.sources[0].format, PgFormat::Custom);
        assert_eq!(p.sources[1].paths.len(), 2);
        assert_eq!(p.select(&["uploads".into()]).unwrap().len(), 1);
        let e = p.select(&["nope".into()]).unwrap_err();
        assert!(e.hint().unwrap().contains("postgres/app"), "{e}");
    }

    #[test]
    fn mistakes_are_named() {
        for (text, needle) in [
            ("[[source]]\nname='a'\nkind='postgres'\n", "needs url"),
            ("[[source]]\nname='a'\nkind='files'\n", "needs paths"),
            ("[[source]]\nname='a'\nkind='oracle'\n", "unknown variant"),
            (
                "[[source]]\nname='a'\nkind='files'\npaths=['x']\nurl='x'\n",
                "takes no url",
            ),
            (
                "[[source]]\nname='a'\nkind='files'\npaths=['x']\nbogus=1\n",
                "bogus",
            ),
            (
                "[[source]]\nname='a b'\nkind='files'\npaths=['x']\n",
                "invalid entry name",
            ),
            (
                "[[source]]\nname='a'\nkind='files'\npaths=['x']\n[[source]]\nname='a'\nkind='files'\npaths=['y']\n",
                "twice",
            ),
        ] {
            let e = Plan::parse(text).unwrap_err();
            assert!(e.to_string().contains(needle), "{text}: {e}");
        }
    }
}

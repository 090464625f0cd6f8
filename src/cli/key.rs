//! `coffre key add | list | remove | passwd`

use super::args::{Global, KeyCommand, NewPasswordArgs};
use super::{open_repo, password, print_json};
use crate::crypto::KdfParams;
use crate::error::{Error, Result};

fn new_kdf(a: &NewPasswordArgs) -> Result<KdfParams> {
    KdfParams::new(
        a.kdf_memory.saturating_mul(1024),
        a.kdf_iterations,
        a.kdf_parallelism,
    )
}

pub fn run(g: &Global, cmd: KeyCommand) -> Result<i32> {
    let repo = open_repo(g)?;
    match cmd {
        KeyCommand::Add(a) => {
            let kdf = new_kdf(&a)?;
            let pw = password::get_added(a.new_password_file.as_deref())?;
            let id = repo.add_key(&pw, kdf)?;
            eprintln!("added key {id}");
        }
        KeyCommand::List { json } => {
            let keys = repo.list_keys()?;
            if json {
                let v: Vec<_> = keys
                    .iter()
                    .map(|k| {
                        serde_json::json!({
                            "id": k.id, "created": k.created, "host": k.host, "user": k.user,
                            "current": k.id == repo.current_key_id(),
                            "kdf": {"memory_kib": k.kdf.memory_kib, "iterations": k.kdf.iterations, "parallelism": k.kdf.parallelism},
                        })
                    })
                    .collect();
                print_json(&serde_json::Value::Array(v))?;
            } else {
                outln!("  {:<32}  {:<20}  {:<12}  HOST", "ID", "CREATED", "USER");
                for k in keys {
                    let mark = if k.id == repo.current_key_id() {
                        "*"
                    } else {
                        " "
                    };
                    outln!(
                        "{mark} {:<32}  {:<20}  {:<12}  {}",
                        k.id,
                        k.created,
                        k.user,
                        k.host
                    );
                }
            }
        }
        KeyCommand::Remove { id } => {
            if id == repo.current_key_id() {
                return Err(Error::usage("refusing to remove the key file this command was opened with")
                    .with_hint("open the repository with another password to remove this one, or use `key passwd`"));
            }
            repo.remove_key(&id)?;
            eprintln!("removed key {id}");
        }
        KeyCommand::Passwd(a) => {
            let kdf = new_kdf(&a)?;
            let pw = password::get_added(a.new_password_file.as_deref())?;
            // the new key file is durable before the old one goes
            let id = repo.add_key(&pw, kdf)?;
            repo.remove_key(repo.current_key_id())?;
            eprintln!(
                "password changed (key {id} replaces {})",
                repo.current_key_id()
            );
        }
    }
    Ok(0)
}

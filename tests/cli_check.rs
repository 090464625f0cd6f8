//! `coffre check`: structural damage is found, named, and tied to the
//! snapshots it affects; unaffected snapshots still restore.

mod common;

use std::fs;

use common::*;
use serde_json::Value;

/// A repository with a stream snapshot and a tree snapshot; their ids.
fn two_snapshots() -> (TestRepo, String, String, Vec<u8>) {
    let r = TestRepo::small_chunks();
    let db = random_bytes(3 << 20, 1);
    let d = r.path("vol");
    fs::create_dir_all(d.join("sub")).unwrap();
    fs::write(d.join("a.bin"), random_bytes(600_000, 2)).unwrap();
    fs::write(d.join("sub/b.txt"), "b\n".repeat(1000)).unwrap();
    let s_db = r.backup_bytes("db", &db, &[])["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    let s_vol = r.backup_path("vol", &d)["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    (r, s_db, s_vol, db)
}

fn check_json(r: &TestRepo) -> (i32, Value) {
    let o = r.run(&["check", "--json"]);
    let v = serde_json::from_slice(&o.stdout).expect("check --json prints JSON");
    (o.status.code().unwrap(), v)
}

/// The pack file that holds snapshot `snap`'s entry `name`: the one whose
/// removal makes `dump`/`restore` of it fail.
fn pack_of(r: &TestRepo, snap: &str, name: &str, tree: bool) -> std::path::PathBuf {
    for p in r.pack_files() {
        let saved = fs::read(&p).unwrap();
        fs::remove_file(&p).unwrap();
        let target = r.path("probe");
        let _ = fs::remove_dir_all(&target);
        let o = if tree {
            r.run(&[
                "restore",
                snap,
                "--name",
                name,
                "--target",
                target.to_str().unwrap(),
            ])
        } else {
            r.run(&["dump", snap, "--name", name])
        };
        fs::write(&p, saved).unwrap();
        if !o.status.success() {
            return p;
        }
    }
    panic!("no pack holds {name}");
}

#[test]
fn a_clean_repository_checks_clean() {
    let (r, _, _, _) = two_snapshots();
    let (code, v) = check_json(&r);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["damage"], serde_json::json!([]));
    assert_eq!(v["snapshots"], 2);
    assert!(v["trees"].as_u64().unwrap() >= 2, "{v}");
    assert!(v["chunks"].as_u64().unwrap() > 10, "{v}");
}

#[test]
fn a_missing_or_truncated_pack_is_named_with_the_entries_it_affects() {
    let (r, s_db, s_vol, db) = two_snapshots();
    let p = pack_of(&r, &s_db, "db", false);
    let name = p.file_name().unwrap().to_string_lossy().into_owned();
    let saved = fs::read(&p).unwrap();
    for (how, damage) in [("missing", None), ("truncated", Some(1000u64))] {
        match damage {
            None => fs::remove_file(&p).unwrap(),
            Some(n) => {
                fs::write(&p, &saved).unwrap();
                let f = fs::OpenOptions::new().write(true).open(&p).unwrap();
                f.set_len(n).unwrap();
            }
        }
        let (code, v) = check_json(&r);
        assert_eq!(code, 14, "{how}: {v}");
        let d = v["damage"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["object"] == format!("pack {name}"))
            .unwrap_or_else(|| panic!("{how}: pack {name} not named: {v}"));
        assert!(
            d["affects"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a == &Value::from(format!("snapshot {s_db} entry db"))),
            "{how}: {d}"
        );
        assert!(
            !v.to_string().contains(&format!("snapshot {s_vol}")),
            "{how}: the tree snapshot does not use that pack: {v}"
        );
        // the unaffected snapshot still restores
        let target = r.path(&format!("restored-{how}"));
        assert_ok(&r.run(&[
            "restore",
            &s_vol,
            "--name",
            "vol",
            "--target",
            target.to_str().unwrap(),
        ]));
        // the affected one fails loudly rather than giving wrong bytes
        let o = r.run(&["dump", &s_db, "--name", "db"]);
        assert!(!o.status.success(), "{how}");
        assert!(o.stdout.len() < db.len(), "{how}");
    }
}

#[test]
fn damaged_snapshots_trees_and_key_files_are_named() {
    let (r, s_db, s_vol, _) = two_snapshots();
    // a tree's pack: the tree entry is affected, the stream is not
    let p = pack_of(&r, &s_vol, "vol", true);
    let saved = fs::read(&p).unwrap();
    fs::remove_file(&p).unwrap();
    let (code, v) = check_json(&r);
    assert_eq!(code, 14);
    assert!(
        v.to_string()
            .contains(&format!("snapshot {s_vol} entry vol")),
        "{v}"
    );
    fs::write(&p, saved).unwrap();
    assert_eq!(check_json(&r).0, 0);

    // a snapshot object with a flipped byte
    let snap = r
        .snapshot_files()
        .into_iter()
        .find(|f| f.file_name().unwrap().to_string_lossy() == s_db)
        .unwrap();
    let good = fs::read(&snap).unwrap();
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x40;
    fs::write(&snap, &bad).unwrap();
    let (code, v) = check_json(&r);
    assert_eq!(code, 14);
    assert!(
        v["damage"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["object"] == format!("snapshot {s_db}")),
        "{v}"
    );
    fs::write(&snap, good).unwrap();

    // a second key file that is garbage (the first still opens the repository)
    let keys = r.repo.join("keys");
    fs::write(keys.join("0123456789abcdef0123456789abcdef"), b"garbage").unwrap();
    let (code, v) = check_json(&r);
    assert_eq!(code, 14);
    assert!(
        v.to_string()
            .contains("key file 0123456789abcdef0123456789abcdef"),
        "{v}"
    );
}

#[test]
fn a_pack_the_index_does_not_know_is_reported() {
    let (r, _, _, _) = two_snapshots();
    let p = r.pack_files()[0].clone();
    let bytes = fs::read(&p).unwrap();
    // a copy under another valid name: unknown to the index
    let name = "ab".repeat(32);
    let dir = r.repo.join("packs").join(&name[..2]);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(&name), bytes).unwrap();
    let (code, v) = check_json(&r);
    assert_eq!(code, 14);
    assert!(v.to_string().contains("is not in the index"), "{v}");
}

#[test]
fn repair_index_recovers_from_a_corrupt_deleted_or_wrong_index() {
    let (r, s_db, s_vol, db) = two_snapshots();
    let index = r.repo.join("index/index.sqlite");
    let clear_sidecars = || {
        for suffix in ["-wal", "-shm"] {
            let mut p = index.as_os_str().to_owned();
            p.push(suffix);
            let _ = fs::remove_file(std::path::PathBuf::from(p));
        }
    };
    let restores = |how: &str| {
        assert!(r.dump(&[&s_db, "--name", "db"]) == db, "{how}");
        let target = r.path(&format!("vol-{how}"));
        assert_ok(&r.run(&[
            "restore",
            &s_vol,
            "--name",
            "vol",
            "--target",
            target.to_str().unwrap(),
        ]));
    };

    // garbage: commands fail with a hint to repair, repair fixes it
    fs::write(
        &index,
        b"this is not an SQLite database at all, not even close",
    )
    .unwrap();
    clear_sidecars();
    let o = r.run(&["snapshots"]);
    assert_code(&o, 1);
    assert!(
        stderr_of(&o).contains("coffre repair index"),
        "{}",
        stderr_of(&o)
    );
    let o = r.run(&["repair", "index"]);
    assert_ok(&o);
    assert!(stderr_of(&o).contains("2 snapshot(s)"), "{}", stderr_of(&o));
    assert_eq!(check_json(&r).0, 0);
    restores("garbage");

    // a row that points into the wrong place: check names it, repair mends it
    {
        let c = rusqlite::Connection::open(&index).unwrap();
        let n = c
            .execute(
                "UPDATE blobs SET offset = offset + 1 WHERE id = (SELECT id FROM blobs LIMIT 1)",
                [],
            )
            .unwrap();
        assert_eq!(n, 1);
    }
    let (code, v) = check_json(&r);
    assert_eq!(code, 14, "{v}");
    assert!(v.to_string().contains("its header does not"), "{v}");
    assert_ok(&r.run(&["repair", "index"]));
    assert_eq!(check_json(&r).0, 0);
    restores("wrong row");

    // deleted: rebuilt on open anyway, and by repair
    fs::remove_file(&index).unwrap();
    clear_sidecars();
    assert_ok(&r.run(&["repair", "index"]));
    assert_eq!(check_json(&r).0, 0);
    restores("deleted");
    assert!(
        !r.repo.join("index/index.rebuild.sqlite").exists(),
        "no leftover of the rebuild"
    );
}

#[test]
fn repair_snapshots_rewrites_only_when_asked_and_keeps_what_is_intact() {
    let r = TestRepo::small_chunks();
    let a = random_bytes(1 << 20, 31);
    let b = random_bytes(1 << 20, 32);
    let only_a = r.backup_bytes("a", &a, &[])["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    let only_b = r.backup_bytes("b", &b, &[])["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    // lose a pack of a
    let p = pack_of(&r, &only_a, "a", false);
    fs::remove_file(&p).unwrap();

    // asked nothing: listed, exit 14, nothing changed
    let o = r.run(&["repair", "snapshots", "--json"]);
    assert_code(&o, 14);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["applied"], false);
    let listed = v["snapshots"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{v}");
    assert_eq!(listed[0]["id"], only_a.as_str());
    assert_eq!(listed[0]["action"], "forget");
    assert!(listed[0]["damaged_entries"]["a"].is_string(), "{v}");
    assert_eq!(r.snapshot_ids().len(), 2);

    let o = r.run(&["repair", "snapshots", "--apply", "--json"]);
    assert_ok(&o);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["applied"], true);
    assert_eq!(
        r.snapshot_ids(),
        std::slice::from_ref(&only_b),
        "a's snapshot is forgotten"
    );
    assert!(r.dump(&[&only_b, "--name", "b"]) == b);
    // the index no longer claims the lost pack: backing a up again stores
    // its data again instead of pointing at what is gone
    r.backup_bytes("a", &a, &[]);
    assert!(r.dump(&["latest", "--name", "a"]) == a);
    let o = r.run(&["repair", "snapshots"]);
    assert_ok(&o);
    assert_eq!(check_json(&r).0, 0, "nothing damaged is left");
}

#[test]
fn repair_snapshots_keeps_the_intact_entries_of_a_plan_snapshot() {
    let r = TestRepo::small_chunks();
    let a = r.path("a.bin");
    let b = r.path("b.bin");
    fs::write(&a, random_bytes(1 << 20, 41)).unwrap();
    fs::write(&b, random_bytes(1 << 20, 42)).unwrap();
    let plan = r.path("coffre.toml");
    fs::write(
        &plan,
        format!(
            "[[source]]\nname = \"a\"\nkind = \"command\"\ncommand = [\"cat\", {:?}]\n\n\
             [[source]]\nname = \"b\"\nkind = \"command\"\ncommand = [\"cat\", {:?}]\n",
            a.display().to_string(),
            b.display().to_string()
        ),
    )
    .unwrap();
    let o = r.run(&["backup", "--config", plan.to_str().unwrap(), "--json"]);
    assert_ok(&o);
    let snap = parse_json_line(&o)["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    // a pack that only a's data is in
    let p = r
        .pack_files()
        .into_iter()
        .find(|p| {
            let saved = fs::read(p).unwrap();
            fs::remove_file(p).unwrap();
            let a_broken = !r.run(&["dump", &snap, "--name", "a"]).status.success();
            let b_fine = r.run(&["dump", &snap, "--name", "b"]).status.success();
            fs::write(p, saved).unwrap();
            a_broken && b_fine
        })
        .expect("1 MiB packs: some pack holds only a's chunks");
    fs::remove_file(&p).unwrap();
    let o = r.run(&["repair", "snapshots", "--apply", "--json"]);
    assert_ok(&o);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let new_id = v["snapshots"][0]["new_id"]
        .as_str()
        .expect("rewritten")
        .to_string();
    assert_eq!(v["snapshots"][0]["action"], "rewrite");
    let listed = r.snapshots(&[]);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], new_id.as_str());
    assert_eq!(listed[0]["partial"], true);
    assert_eq!(listed[0]["failed"], serde_json::json!(["a"]));
    assert!(listed[0]["tags"].to_string().contains("repaired"));
    assert!(r.dump(&[&new_id, "--name", "b"]) == fs::read(&b).unwrap());
    assert_code(&r.run(&["dump", &new_id, "--name", "a"]), 13);
}

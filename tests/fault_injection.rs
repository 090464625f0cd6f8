//! Fault injection (issue 5): every kind of object in a repository — pack
//! data, pack headers and trailers, snapshot objects, trees, key files, the
//! config, the index — is flipped, truncated, zero-filled and deleted in turn,
//! each time in a fresh repository holding two snapshots in separate packs: a
//! stream `db` and a directory tree `vol`. After each fault:
//! - `check --json` and/or `scrub --all --json` (whichever can see it: check
//!   reads no data chunks) exit 14, name the damaged object and list the
//!   snapshot entries it affects, and not the snapshot it does not;
//! - the unaffected snapshot still restores byte for byte;
//! - the affected one fails loudly and never emits a wrong byte: a failed
//!   dump wrote a strict prefix of the original, a failed tree restore left
//!   only complete, correct files.
//!
//! Blob offsets come from the index (format-spec/index.md), which is how a
//! fault is placed inside one particular blob, tree or header.

mod common;

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

const SECOND_PASSWORD: &str = "a second key with its own password";
/// Blob types (format-spec/envelope.md).
const DATA: u8 = 0x10;
const TREE: u8 = 0x11;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// One bit of one byte, in the middle of the object.
    Flip,
    /// The file cut in the middle of the object (what follows is lost too).
    Truncate,
    /// The object's bytes zeroed, same length.
    ZeroFill,
    /// The object gone: the whole file removed, or its bytes cut out.
    Delete,
}

/// Apply `fault` to the bytes `range` of the file `path`.
fn inject(path: &Path, range: Range<u64>, fault: Fault) {
    let mut b = fs::read(path).unwrap();
    let (s, e) = (range.start as usize, range.end as usize);
    assert!(s < e && e <= b.len(), "{range:?} is not inside {path:?}");
    match fault {
        Fault::Flip => b[s + (e - s) / 2] ^= 0x01,
        Fault::Truncate => b.truncate(s + (e - s) / 2),
        Fault::ZeroFill => b[s..e].fill(0),
        Fault::Delete if s == 0 && e == b.len() => {
            fs::remove_file(path).unwrap();
            return;
        }
        Fault::Delete => {
            b.drain(s..e);
        }
    }
    fs::write(path, b).unwrap();
}

fn whole(path: &Path) -> Range<u64> {
    0..fs::metadata(path).unwrap().len()
}

fn name_of(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// Run a coffre command to completion (bounded), asserting it did not
/// panic or die by a signal.
#[track_caller]
fn run_cmd(mut c: Command, args: &[&str]) -> Output {
    c.args(args);
    let o = output_within(c, Duration::from_secs(60));
    let err = stderr_of(&o);
    assert!(
        o.status.code().is_some() && o.status.code() != Some(101) && !err.contains("panicked"),
        "coffre {args:?} crashed: {:?}\n{err}",
        o.status
    );
    o
}

/// What a restore or dump must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Succeed, byte for byte.
    Intact,
    /// Fail with this exit code, having emitted no wrong byte.
    Fails(i32),
    /// Either (the damage is beside the data, e.g. in a pack header).
    IntactOrFails(i32),
    /// Fail with some non-zero code (asserted by another test), having
    /// emitted no wrong byte.
    Refuses,
}

struct Blob {
    id: String,
    ty: u8,
    offset: u64,
    length: u64,
}

/// A repository with a stream snapshot `db` and a tree snapshot `vol`, each
/// in its own pack.
struct Fixture {
    r: TestRepo,
    db: Vec<u8>,
    s_db: String,
    vol: PathBuf,
    s_vol: String,
    db_pack: PathBuf,
    vol_pack: PathBuf,
    n: Cell<u32>,
}

fn snapshot_of(v: &Value) -> String {
    v["snapshot"].as_str().expect("a snapshot id").to_string()
}

impl Fixture {
    fn new() -> Fixture {
        Self::build(|_| ()).0
    }

    /// Build the fixture; `between` runs after the `db` backup and what it
    /// returns is held until the `vol` backup is done.
    fn build<H>(between: impl FnOnce(&TestRepo) -> H) -> (Fixture, H) {
        let r = TestRepo::small_chunks();
        let db = random_bytes(300_000, 1);
        let s_db = snapshot_of(&r.backup_bytes("db", &db, &[]));
        let packs = r.pack_files();
        assert_eq!(packs.len(), 1, "db fits one pack: {packs:?}");
        let db_pack = packs[0].clone();
        let held = between(&r);
        let vol = r.path("vol");
        fs::create_dir_all(vol.join("sub")).unwrap();
        // two incompressible files of the same size: two data blobs of the
        // same sealed length, for the swap
        fs::write(vol.join("twin-1"), random_bytes(1000, 2)).unwrap();
        fs::write(vol.join("twin-2"), random_bytes(1000, 3)).unwrap();
        fs::write(vol.join("sub/data.bin"), random_bytes(40_000, 4)).unwrap();
        fs::write(vol.join("sub/notes.txt"), "a line of notes\n".repeat(2000)).unwrap();
        let s_vol = snapshot_of(&r.backup_path("vol", &vol));
        let packs = r.pack_files();
        assert_eq!(packs.len(), 2, "vol fits one pack of its own: {packs:?}");
        let vol_pack = packs.into_iter().find(|p| *p != db_pack).unwrap();
        let f = Fixture {
            r,
            db,
            s_db,
            vol,
            s_vol,
            db_pack,
            vol_pack,
            n: Cell::new(0),
        };
        (f, held)
    }

    fn index_path(&self) -> PathBuf {
        self.r.repo.join("index/index.sqlite")
    }

    fn snapshot_file(&self, id: &str) -> PathBuf {
        self.r.repo.join("snapshots").join(id)
    }

    /// The only key file (before any is added).
    fn key_file(&self) -> PathBuf {
        let keys: Vec<PathBuf> = fs::read_dir(self.r.repo.join("keys"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(keys.len(), 1, "{keys:?}");
        keys[0].clone()
    }

    /// The blobs of a pack, by offset, from the index.
    fn blobs_in(&self, pack: &Path) -> Vec<Blob> {
        let c = rusqlite::Connection::open(self.index_path()).unwrap();
        let name = hex::decode(name_of(pack)).unwrap();
        let mut st = c
            .prepare(
                "SELECT b.id, b.type, b.offset, b.length FROM blobs b
                 JOIN packs p ON p.id = b.pack WHERE p.name = ?1 ORDER BY b.offset",
            )
            .unwrap();
        let rows = st
            .query_map([name], |row| {
                Ok(Blob {
                    id: hex::encode(row.get::<_, Vec<u8>>(0)?),
                    ty: row.get::<_, i64>(1)? as u8,
                    offset: row.get::<_, i64>(2)? as u64,
                    length: row.get::<_, i64>(3)? as u64,
                })
            })
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        assert!(!rows.is_empty(), "no blobs indexed in {pack:?}");
        rows
    }

    fn blob_of(&self, pack: &Path, ty: u8) -> Blob {
        self.blobs_in(pack)
            .into_iter()
            .find(|b| b.ty == ty)
            .unwrap_or_else(|| panic!("no blob of type {ty:#x} in {pack:?}"))
    }

    fn fresh_path(&self, what: &str) -> PathBuf {
        self.n.set(self.n.get() + 1);
        self.r.path(&format!("{what}-{}", self.n.get()))
    }

    #[track_caller]
    fn run(&self, args: &[&str]) -> Output {
        run_cmd(self.r.cmd(), args)
    }

    /// (exit code, JSON on stdout or Null)
    #[track_caller]
    fn report(&self, args: &[&str]) -> (i32, Value) {
        let o = self.run(args);
        let v = if o.stdout.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&o.stdout)
                .unwrap_or_else(|e| panic!("{args:?} printed bad JSON ({e}): {}", stdout_of(&o)))
        };
        (o.status.code().unwrap(), v)
    }

    #[track_caller]
    fn check(&self) -> (i32, Value) {
        self.report(&["check", "--json"])
    }

    #[track_caller]
    fn scrub(&self) -> (i32, Value) {
        self.report(&["scrub", "--all", "--json"])
    }

    #[track_caller]
    fn dump_db(&self, what: &str, expect: Expect) {
        let o = self.run(&["dump", &self.s_db, "--name", "db"]);
        assert_dump(what, &o, &self.db, expect);
    }

    #[track_caller]
    fn restore_vol(&self, what: &str, expect: Expect) {
        let target = self.fresh_path("restore");
        let o = self.run(&[
            "restore",
            &self.s_vol,
            "--name",
            "vol",
            "--target",
            target.to_str().unwrap(),
        ]);
        let err = stderr_of(&o);
        match (o.status.code().unwrap(), expect) {
            (0, Expect::Fails(_) | Expect::Refuses) => {
                panic!("{what}: restore of vol succeeded though damaged ({expect:?})\n{err}")
            }
            (0, _) => assert_trees_equal(
                &self.vol,
                &target,
                CompareOpts {
                    owner: is_root(),
                    ..CompareOpts::all()
                },
            ),
            (code, Expect::Intact) => {
                panic!("{what}: restore of the unaffected vol failed with {code}\n{err}")
            }
            (code, Expect::Fails(_) | Expect::IntactOrFails(_) | Expect::Refuses) => {
                if let Expect::Fails(c) | Expect::IntactOrFails(c) = expect {
                    assert_eq!(code, c, "{what}: restore of vol exit code\n{err}");
                }
                assert_no_wrong_files(what, &self.vol, &target);
            }
        }
    }

    /// Both snapshots restore byte for byte.
    #[track_caller]
    fn all_intact(&self, what: &str) {
        self.dump_db(what, Expect::Intact);
        self.restore_vol(what, Expect::Intact);
    }
}

/// A dump's outcome against the original bytes.
#[track_caller]
fn assert_dump(what: &str, o: &Output, original: &[u8], expect: Expect) {
    let got = &o.stdout;
    let err = stderr_of(o);
    let first_diff = got.iter().zip(original).position(|(a, b)| a != b);
    match (o.status.code().unwrap(), expect) {
        (0, Expect::Fails(_) | Expect::Refuses) => panic!(
            "{what}: dump succeeded though damaged ({expect:?}), {} bytes\n{err}",
            got.len()
        ),
        (0, _) => assert!(
            got == original,
            "{what}: dump exited 0 with wrong bytes: {} of {} bytes, first difference at {first_diff:?}",
            got.len(),
            original.len()
        ),
        (code, Expect::Intact) => {
            panic!("{what}: dump of an unaffected entry failed with {code}\n{err}")
        }
        (code, Expect::Fails(_) | Expect::IntactOrFails(_) | Expect::Refuses) => {
            if let Expect::Fails(c) | Expect::IntactOrFails(c) = expect {
                assert_eq!(code, c, "{what}: dump exit code\n{err}");
            }
            assert!(
                got.len() < original.len() && first_diff.is_none(),
                "{what}: the failed dump wrote {} bytes that are not a strict prefix of the \
                 original's {} (first difference at {first_diff:?})",
                got.len(),
                original.len()
            );
        }
    }
}

/// After a failed tree restore, every file left under `target` is complete
/// and equal to the source (files not complete are removed).
#[track_caller]
fn assert_no_wrong_files(what: &str, src: &Path, target: &Path) {
    if fs::symlink_metadata(target).is_err() {
        return;
    }
    for p in walk(target) {
        if !fs::symlink_metadata(&p).unwrap().is_file() {
            continue;
        }
        let rel = p.strip_prefix(target).unwrap();
        let s = src.join(rel);
        assert!(
            s.is_file(),
            "{what}: the failed restore left {rel:?}, which is no file of the source"
        );
        assert_eq!(
            first_difference(&s, &p),
            None,
            "{what}: the failed restore left {rel:?} with wrong or missing bytes"
        );
    }
}

/// `report` (of check or scrub) exits 14, names `object` (a damage whose
/// "object" contains it), lists each of `affects` (snapshot, entry) for it,
/// and mentions none of the `unaffected` snapshots.
#[track_caller]
fn assert_named(
    what: &str,
    report: &(i32, Value),
    object: &str,
    affects: &[(&str, &str)],
    unaffected: &[&str],
) {
    let (code, v) = report;
    assert_eq!(*code, 14, "{what}: expected exit 14 (damage): {v}");
    let damage = v["damage"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: no damage list: {v}"));
    let d = damage
        .iter()
        .find(|d| d["object"].as_str().is_some_and(|o| o.contains(object)))
        .unwrap_or_else(|| panic!("{what}: {object} is not named: {v}"));
    let listed: Vec<&str> = d["affects"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    for (snap, entry) in affects {
        let exact = format!("snapshot {snap} entry {entry}");
        // an undecodable snapshot object: its entries cannot be listed
        let whole = (d["object"] == format!("snapshot {snap}"))
            .then(|| format!("snapshot {snap} (all entries)"));
        assert!(
            listed
                .iter()
                .any(|a| *a == exact || Some(a.to_string()) == whole),
            "{what}: {object} does not list {exact:?} among the entries it affects: {d}"
        );
    }
    for u in unaffected {
        assert!(
            !v.to_string().contains(&format!("snapshot {u}")),
            "{what}: snapshot {u} is not affected, yet listed: {v}"
        );
    }
}

/// A check or scrub that found nothing.
#[track_caller]
fn assert_clean(what: &str, report: &(i32, Value)) {
    let (code, v) = report;
    assert_eq!(*code, 0, "{what}: {v}");
    assert_eq!(v["damage"], serde_json::json!([]), "{what}: {v}");
}

// ---------------------------------------------------------------- pack data

/// A byte range inside one data blob of db's pack (Delete: the pack file).
fn pack_data(fault: Fault) {
    let f = Fixture::new();
    let blob = f.blob_of(&f.db_pack, DATA);
    let range = match fault {
        Fault::Delete => whole(&f.db_pack),
        _ => blob.offset..blob.offset + blob.length,
    };
    inject(&f.db_pack, range, fault);
    let what = format!("pack data, {fault:?}");
    let pack = format!("pack {}", name_of(&f.db_pack));
    // a missing pack: see scrub_all_names_a_missing_pack
    if fault != Fault::Delete {
        assert_named(
            &format!("{what}: scrub"),
            &f.scrub(),
            &pack,
            &[(&f.s_db, "db")],
            &[&f.s_vol],
        );
    }
    let check = f.check();
    match fault {
        // the pack's size or presence changed
        Fault::Truncate | Fault::Delete => assert_named(
            &format!("{what}: check"),
            &check,
            &pack,
            &[(&f.s_db, "db")],
            &[&f.s_vol],
        ),
        // check reads no data chunks: this is scrub's job
        Fault::Flip | Fault::ZeroFill => assert!(
            check.0 == 0 || check.0 == 14 && !check.1.to_string().contains(&f.s_vol),
            "{what}: check: {:?}",
            check
        ),
    }
    f.dump_db(
        &what,
        match fault {
            // the exit code: see a_missing_pack_fails_dump_and_restore_with_exit_14
            Fault::Delete => Expect::Refuses,
            _ => Expect::Fails(14),
        },
    );
    f.restore_vol(&what, Expect::Intact);
}

#[test]
fn pack_data_flip() {
    pack_data(Fault::Flip)
}

#[test]
fn pack_data_truncate() {
    pack_data(Fault::Truncate)
}

#[test]
fn pack_data_zero_fill() {
    pack_data(Fault::ZeroFill)
}

#[test]
fn pack_data_delete() {
    pack_data(Fault::Delete)
}

/// A flipped byte in a blob, and the pack renamed to its new hash: the file
/// hash passes, the blob's authentication does not; scrub names the chunk.
#[test]
fn pack_data_flip_renamed_to_its_new_hash() {
    let f = Fixture::new();
    let blob = f.blob_of(&f.db_pack, DATA);
    inject(
        &f.db_pack,
        blob.offset..blob.offset + blob.length,
        Fault::Flip,
    );
    let bytes = fs::read(&f.db_pack).unwrap();
    let name = blake3::hash(&bytes).to_hex().to_string();
    let dir = f.r.repo.join("packs").join(&name[..2]);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(&name), bytes).unwrap();
    fs::remove_file(&f.db_pack).unwrap();
    let what = "pack data flipped, pack renamed";
    assert_named(
        &format!("{what}: scrub"),
        &f.scrub(),
        &format!("data chunk {}", blob.id),
        &[(&f.s_db, "db")],
        &[&f.s_vol],
    );
    // check: the indexed pack is gone, the new one is not indexed
    assert_named(
        &format!("{what}: check"),
        &f.check(),
        &format!("pack {}", name_of(&f.db_pack)),
        &[(&f.s_db, "db")],
        &[&f.s_vol],
    );
    f.restore_vol(what, Expect::Intact);
}

// -------------------------------------------------------------- pack header

#[derive(Clone, Copy, Debug)]
enum Tail {
    /// The encrypted header envelope before the trailer.
    Header,
    /// The 4-byte header length at the very end.
    Trailer,
}

fn pack_tail(part: Tail, fault: Fault) {
    let f = Fixture::new();
    let bytes = fs::read(&f.db_pack).unwrap();
    let size = bytes.len() as u64;
    let header_len = u32::from_le_bytes(bytes[bytes.len() - 4..].try_into().unwrap()) as u64;
    let data_end = f
        .blobs_in(&f.db_pack)
        .iter()
        .map(|b| b.offset + b.length)
        .max()
        .unwrap();
    assert_eq!(data_end + header_len + 4, size, "pack layout");
    let range = match part {
        Tail::Header => data_end..size - 4,
        Tail::Trailer => size - 4..size,
    };
    inject(&f.db_pack, range, fault);
    let what = format!("pack {part:?}, {fault:?}");
    let pack = format!("pack {}", name_of(&f.db_pack));
    assert_named(
        &format!("{what}: check"),
        &f.check(),
        &pack,
        &[(&f.s_db, "db")],
        &[&f.s_vol],
    );
    assert_named(
        &format!("{what}: scrub"),
        &f.scrub(),
        &pack,
        &[(&f.s_db, "db")],
        &[&f.s_vol],
    );
    // the blobs themselves are intact and each is authenticated: a dump
    // through the index may give them back, or refuse
    f.dump_db(&what, Expect::IntactOrFails(14));
    f.restore_vol(&what, Expect::Intact);
}

#[test]
fn pack_header_flip() {
    pack_tail(Tail::Header, Fault::Flip)
}

#[test]
fn pack_header_truncate() {
    pack_tail(Tail::Header, Fault::Truncate)
}

#[test]
fn pack_header_zero_fill() {
    pack_tail(Tail::Header, Fault::ZeroFill)
}

#[test]
fn pack_header_delete() {
    pack_tail(Tail::Header, Fault::Delete)
}

#[test]
fn pack_trailer_flip() {
    pack_tail(Tail::Trailer, Fault::Flip)
}

#[test]
fn pack_trailer_truncate() {
    pack_tail(Tail::Trailer, Fault::Truncate)
}

#[test]
fn pack_trailer_zero_fill() {
    pack_tail(Tail::Trailer, Fault::ZeroFill)
}

#[test]
fn pack_trailer_delete() {
    pack_tail(Tail::Trailer, Fault::Delete)
}

// ---------------------------------------------------------- snapshot object

fn snapshot_object(fault: Fault) {
    let f = Fixture::new();
    let file = f.snapshot_file(&f.s_db);
    inject(&file, whole(&file), fault);
    let what = format!("snapshot object, {fault:?}");
    f.restore_vol(&what, Expect::Intact);
    if fault == Fault::Delete {
        // a deleted snapshot cannot be told from a forgotten one by the
        // repository alone (threat-model.md): it is simply gone
        assert_clean(&format!("{what}: check"), &f.check());
        f.dump_db(&what, Expect::Fails(13));
        return;
    }
    assert_named(
        &format!("{what}: check"),
        &f.check(),
        &format!("snapshot {}", f.s_db),
        &[(&f.s_db, "db")],
        &[&f.s_vol],
    );
    f.dump_db(&what, Expect::Fails(14));
}

#[test]
fn snapshot_object_flip() {
    snapshot_object(Fault::Flip)
}

#[test]
fn snapshot_object_truncate() {
    snapshot_object(Fault::Truncate)
}

#[test]
fn snapshot_object_zero_fill() {
    snapshot_object(Fault::ZeroFill)
}

#[test]
fn snapshot_object_delete() {
    snapshot_object(Fault::Delete)
}

// ------------------------------------------------------------------- trees

/// A tree blob of vol's pack (Delete: its bytes cut out of the pack).
fn tree_blob(fault: Fault) {
    let f = Fixture::new();
    let tree = f.blob_of(&f.vol_pack, TREE);
    inject(&f.vol_pack, tree.offset..tree.offset + tree.length, fault);
    let what = format!("tree blob, {fault:?}");
    let pack = format!("pack {}", name_of(&f.vol_pack));
    // same size: check opens the tree and names it; else the pack is named
    let object = match fault {
        Fault::Flip | Fault::ZeroFill => format!("tree {}", tree.id),
        Fault::Truncate | Fault::Delete => pack.clone(),
    };
    assert_named(
        &format!("{what}: check"),
        &f.check(),
        &object,
        &[(&f.s_vol, "vol")],
        &[&f.s_db],
    );
    assert_named(
        &format!("{what}: scrub"),
        &f.scrub(),
        &pack,
        &[(&f.s_vol, "vol")],
        &[&f.s_db],
    );
    f.restore_vol(&what, Expect::Fails(14));
    f.dump_db(&what, Expect::Intact);
}

#[test]
fn tree_blob_flip() {
    tree_blob(Fault::Flip)
}

#[test]
fn tree_blob_truncate() {
    tree_blob(Fault::Truncate)
}

#[test]
fn tree_blob_zero_fill() {
    tree_blob(Fault::ZeroFill)
}

#[test]
fn tree_blob_delete() {
    tree_blob(Fault::Delete)
}

/// The tree's whole pack deleted (scrub and the exit code: see
/// scrub_all_names_a_missing_pack and
/// a_missing_pack_fails_dump_and_restore_with_exit_14).
#[test]
fn tree_pack_delete() {
    let f = Fixture::new();
    inject(&f.vol_pack, whole(&f.vol_pack), Fault::Delete);
    let what = "tree pack deleted";
    let pack = format!("pack {}", name_of(&f.vol_pack));
    assert_named(
        &format!("{what}: check"),
        &f.check(),
        &pack,
        &[(&f.s_vol, "vol")],
        &[&f.s_db],
    );
    f.restore_vol(what, Expect::Refuses);
    f.dump_db(what, Expect::Intact);
}

/// `scrub --all` is what prune's refusal points at for a missing pack; it
/// must report the pack the index and the snapshots need.
#[test]
fn scrub_all_names_a_missing_pack() {
    for which in ["db", "vol"] {
        let f = Fixture::new();
        let (pack, affected, unaffected) = match which {
            "db" => (&f.db_pack, &f.s_db, &f.s_vol),
            _ => (&f.vol_pack, &f.s_vol, &f.s_db),
        };
        inject(pack, whole(pack), Fault::Delete);
        assert_named(
            &format!("{which}'s pack deleted: scrub"),
            &f.scrub(),
            &format!("pack {}", name_of(pack)),
            &[(affected, which)],
            &[unaffected],
        );
    }
}

/// Missing data is damage (14), not "snapshot or entry not found" (13).
#[test]
fn a_missing_pack_fails_dump_and_restore_with_exit_14() {
    let f = Fixture::new();
    inject(&f.db_pack, whole(&f.db_pack), Fault::Delete);
    f.dump_db("db's pack deleted", Expect::Fails(14));
    let f = Fixture::new();
    inject(&f.vol_pack, whole(&f.vol_pack), Fault::Delete);
    f.restore_vol("vol's pack deleted", Expect::Fails(14));
}

// --------------------------------------------------------------- key files

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyFault {
    /// The first byte (`{` becomes `z`): the file no longer parses.
    Flip,
    /// One hex digit of the wrapped master key changed to another: the file
    /// parses, the key does not unwrap.
    FlipWrapped,
    Truncate,
    ZeroFill,
    Delete,
}

fn damage_key(path: &Path, fault: KeyFault) {
    match fault {
        KeyFault::Flip => inject(path, 0..1, Fault::Flip),
        KeyFault::FlipWrapped => {
            let mut b = fs::read(path).unwrap();
            let start = find(&b, b"\"wrapped\": \"").expect("a wrapped key") + 12;
            let i = (start + 40..start + 144)
                .find(|&i| b"0123456789bcde".contains(&b[i]))
                .unwrap();
            b[i] ^= 0x01;
            fs::write(path, b).unwrap();
        }
        KeyFault::Truncate => inject(path, whole(path), Fault::Truncate),
        KeyFault::ZeroFill => inject(path, whole(path), Fault::ZeroFill),
        KeyFault::Delete => inject(path, whole(path), Fault::Delete),
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Every file and directory of the repository, with file contents.
fn manifest(root: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    walk(root)
        .into_iter()
        .map(|p| {
            let content = fs::symlink_metadata(&p)
                .unwrap()
                .is_file()
                .then(|| fs::read(&p).unwrap());
            (p, content)
        })
        .collect()
}

#[track_caller]
fn assert_unchanged(what: &str, before: &BTreeMap<PathBuf, Option<Vec<u8>>>, root: &Path) {
    let after = manifest(root);
    let changed: Vec<_> = before
        .keys()
        .chain(after.keys())
        .filter(|p| before.get(*p) != after.get(*p))
        .collect();
    assert!(
        changed.is_empty(),
        "{what}: the repository was written to: {changed:?}"
    );
}

/// The only key file damaged: nothing opens the repository (exit 11), and
/// nothing is written.
fn key_only(fault: KeyFault) {
    let f = Fixture::new();
    let key = f.key_file();
    let id = name_of(&key);
    damage_key(&key, fault);
    let what = format!("only key file, {fault:?}");
    let before = manifest(&f.r.repo);
    let stdin = f.fresh_path("stdin");
    fs::write(&stdin, b"new data").unwrap();
    for args in [
        vec!["snapshots"],
        vec!["dump", &f.s_db, "--name", "db"],
        vec!["check", "--json"],
        vec!["backup", "-n", "new", "--stdin"],
    ] {
        let mut c = f.r.cmd();
        c.stdin(Stdio::from(fs::File::open(&stdin).unwrap()));
        let o = run_cmd(c, &args);
        let err = stderr_of(&o);
        assert_eq!(o.status.code(), Some(11), "{what}: {args:?}\n{err}");
        assert!(
            o.stdout.is_empty(),
            "{what}: {args:?} printed {}",
            stdout_of(&o)
        );
        let expected = match fault {
            KeyFault::FlipWrapped => "wrong password".to_string(),
            KeyFault::Delete => "no usable key file".to_string(),
            _ => format!("key file {id}"),
        };
        assert!(err.contains(&expected), "{what}: {args:?}: {err}");
    }
    assert_unchanged(&what, &before, &f.r.repo);
}

#[test]
fn key_only_flip() {
    key_only(KeyFault::Flip)
}

#[test]
fn key_only_flip_in_wrapped_key() {
    key_only(KeyFault::FlipWrapped)
}

#[test]
fn key_only_truncate() {
    key_only(KeyFault::Truncate)
}

#[test]
fn key_only_zero_fill() {
    key_only(KeyFault::ZeroFill)
}

#[test]
fn key_only_delete() {
    key_only(KeyFault::Delete)
}

/// Add a second key file opening with [`SECOND_PASSWORD`]; its id.
fn add_second_key(f: &Fixture) -> String {
    let mut c = f.r.cmd();
    c.env("COFFRE_NEW_PASSWORD", SECOND_PASSWORD);
    let o = run_cmd(
        c,
        &[
            "key",
            "add",
            "--kdf-memory",
            "8",
            "--kdf-iterations",
            "1",
            "--kdf-parallelism",
            "1",
        ],
    );
    assert_ok(&o);
    let keys: Vec<String> = fs::read_dir(f.r.repo.join("keys"))
        .unwrap()
        .map(|e| name_of(&e.unwrap().path()))
        .collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    keys.into_iter()
        .find(|k| stderr_of(&o).contains(k.as_str()))
        .expect("key add names the new key")
}

/// One of two key files damaged: its password no longer opens the
/// repository, the other one does, and check names the damaged file.
fn key_of_two(fault: KeyFault) {
    let mut f = Fixture::new();
    let key = f.key_file();
    let id = name_of(&key);
    add_second_key(&f);
    damage_key(&key, fault);
    let what = format!("one of two key files, {fault:?}");
    assert_code(&f.run(&["snapshots"]), 11);
    f.r.password = SECOND_PASSWORD.to_string();
    f.all_intact(&what);
    let check = f.check();
    match fault {
        // nothing left to name; a digit of a wrapped key cannot be told
        // wrong without that key's password
        KeyFault::Delete | KeyFault::FlipWrapped => assert_clean(&what, &check),
        _ => assert_named(
            &format!("{what}: check"),
            &check,
            &format!("key file {id}"),
            &[],
            &[&f.s_db, &f.s_vol],
        ),
    }
}

#[test]
fn key_of_two_flip() {
    key_of_two(KeyFault::Flip)
}

#[test]
fn key_of_two_flip_in_wrapped_key() {
    key_of_two(KeyFault::FlipWrapped)
}

#[test]
fn key_of_two_truncate() {
    key_of_two(KeyFault::Truncate)
}

#[test]
fn key_of_two_zero_fill() {
    key_of_two(KeyFault::ZeroFill)
}

#[test]
fn key_of_two_delete() {
    key_of_two(KeyFault::Delete)
}

/// Absurd Argon2 parameters are refused before Argon2 runs: exit 11 with
/// the parameter named, well within 20 s (an Argon2 run with them would
/// take hours or exhaust memory).
#[test]
fn tampered_kdf_parameters_are_refused_before_argon2_runs() {
    let mut f = Fixture::new();
    let key = f.key_file();
    let id = name_of(&key);
    let good = fs::read(&key).unwrap();
    let tamper = |field: &str, value: Value| {
        let mut v: Value = serde_json::from_slice(&good).unwrap();
        v["kdf"][field] = value;
        fs::write(&key, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    };
    let cases = [
        (
            "memory_kib",
            Value::from(4_000_000_000u64),
            "memory 4000000000 KiB",
        ),
        (
            "iterations",
            Value::from(1_000_000u64),
            "iterations 1000000",
        ),
        ("parallelism", Value::from(4096u64), "parallelism 4096"),
    ];
    for (field, value, named) in &cases {
        tamper(field, value.clone());
        let mut c = f.r.cmd();
        c.args(["dump", &f.s_db, "--name", "db"]);
        let o = output_within(c, Duration::from_secs(20));
        assert_code(&o, 11);
        assert!(o.stdout.is_empty());
        let err = stderr_of(&o);
        assert!(
            err.contains(named) && err.contains(&format!("key file {id}")),
            "{field}: the parameter and key file are not named: {err}"
        );
    }
    // with a second key file, the repository opens and check names the
    // tampered one and its parameter
    fs::write(&key, &good).unwrap();
    add_second_key(&f);
    f.r.password = SECOND_PASSWORD.to_string();
    for (field, value, named) in &cases {
        tamper(field, value.clone());
        let what = format!("tampered {field}");
        let mut c = f.r.cmd();
        c.args(["check", "--json"]);
        let o = output_within(c, Duration::from_secs(20));
        let report: (i32, Value) = (
            o.status.code().unwrap(),
            serde_json::from_slice(&o.stdout).unwrap(),
        );
        assert_named(
            &what,
            &report,
            &format!("key file {id}"),
            &[],
            &[&f.s_db, &f.s_vol],
        );
        assert!(report.1.to_string().contains(named), "{what}: {}", report.1);
        f.dump_db(&what, Expect::Intact);
    }
}

// ------------------------------------------------------------------ config

#[derive(Clone, Copy, Debug)]
enum ConfigFault {
    /// A byte in the middle: inside the encrypted parameters.
    Flip,
    /// A byte of the plaintext repository id.
    FlipRepoId,
    Truncate,
    ZeroFill,
    Delete,
}

/// Every command fails with the same exit code and a clear message, and
/// nothing is written.
fn config(fault: ConfigFault, code: i32, message: &str) {
    let f = Fixture::new();
    let file = f.r.repo.join("config");
    match fault {
        ConfigFault::Flip => inject(&file, whole(&file), Fault::Flip),
        // "COFFREPO" || version[1] || repo_id[16] || envelope
        ConfigFault::FlipRepoId => inject(&file, 12..13, Fault::Flip),
        ConfigFault::Truncate => inject(&file, whole(&file), Fault::Truncate),
        ConfigFault::ZeroFill => inject(&file, whole(&file), Fault::ZeroFill),
        ConfigFault::Delete => inject(&file, whole(&file), Fault::Delete),
    }
    let what = format!("config, {fault:?}");
    let before = manifest(&f.r.repo);
    let stdin = f.fresh_path("stdin");
    fs::write(&stdin, b"new data").unwrap();
    let target = f.fresh_path("restore");
    let target = target.to_str().unwrap();
    for args in [
        vec!["snapshots"],
        vec!["dump", &f.s_db, "--name", "db"],
        vec!["restore", &f.s_vol, "--name", "vol", "--target", target],
        vec!["check", "--json"],
        vec!["scrub", "--all", "--json"],
        vec!["backup", "-n", "new", "--stdin"],
        vec!["forget", "--keep-last", "1", "--prune"],
        vec!["repair", "index"],
        vec!["key", "add"],
    ] {
        let mut c = f.r.cmd();
        c.stdin(Stdio::from(fs::File::open(&stdin).unwrap()))
            .env("COFFRE_NEW_PASSWORD", SECOND_PASSWORD);
        let o = run_cmd(c, &args);
        let err = stderr_of(&o);
        assert_eq!(o.status.code(), Some(code), "{what}: {args:?}\n{err}");
        assert!(
            o.stdout.is_empty(),
            "{what}: {args:?} printed {}",
            stdout_of(&o)
        );
        assert!(err.contains(message), "{what}: {args:?}: {err}");
    }
    assert!(
        !Path::new(target).exists(),
        "{what}: restore created its target"
    );
    assert_unchanged(&what, &before, &f.r.repo);
}

#[test]
fn config_flip() {
    config(ConfigFault::Flip, 14, "config failed authentication")
}

/// The repository id is bound into every key file's unwrapping: no key
/// opens, which coffre cannot tell from a wrong password.
#[test]
fn config_flip_in_repository_id() {
    config(ConfigFault::FlipRepoId, 11, "wrong password")
}

#[test]
fn config_truncate() {
    config(ConfigFault::Truncate, 14, "config")
}

#[test]
fn config_zero_fill() {
    config(ConfigFault::ZeroFill, 14, "config: not a coffre repository")
}

#[test]
fn config_delete() {
    config(ConfigFault::Delete, 10, "no coffre repository")
}

// ------------------------------------------------------------------- index

/// After damage to the index, each command either works (correctly) or
/// fails pointing at `coffre repair index`; after a repair, check is clean
/// and both snapshots restore byte for byte.
fn index_outcome(f: &Fixture, what: &str, recovers: bool) {
    let points_at_repair = |args: &[&str], o: &Output| {
        let all = format!("{}{}", stderr_of(o), stdout_of(o));
        assert!(
            !recovers,
            "{what}: {args:?} failed ({:?}) instead of rebuilding the index:\n{all}",
            o.status
        );
        assert!(
            all.contains("coffre repair index"),
            "{what}: {args:?} failed ({:?}) without pointing at `coffre repair index`:\n{all}",
            o.status
        );
    };
    let o = f.run(&["snapshots", "--json"]);
    if o.status.success() {
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 2, "{what}: {v}");
    } else {
        points_at_repair(&["snapshots"], &o);
    }
    let o = f.run(&["dump", &f.s_db, "--name", "db"]);
    if o.status.success() {
        assert_dump(what, &o, &f.db, Expect::Intact);
    } else {
        assert_dump(what, &o, &f.db, Expect::Fails(o.status.code().unwrap()));
        points_at_repair(&["dump"], &o);
    }
    let target = f.fresh_path("restore");
    let o = f.run(&[
        "restore",
        &f.s_vol,
        "--name",
        "vol",
        "--target",
        target.to_str().unwrap(),
    ]);
    if o.status.success() {
        assert_trees_equal(
            &f.vol,
            &target,
            CompareOpts {
                owner: is_root(),
                ..CompareOpts::all()
            },
        );
    } else {
        assert_no_wrong_files(what, &f.vol, &target);
        points_at_repair(&["restore"], &o);
    }
    let o = f.run(&["check", "--json"]);
    if o.status.success() {
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_clean(what, &(0, v));
    } else {
        points_at_repair(&["check"], &o);
    }

    let o = f.run(&["repair", "index"]);
    assert_ok(&o);
    assert!(
        stderr_of(&o).contains("2 snapshot(s)"),
        "{what}: {}",
        stderr_of(&o)
    );
    assert_clean(&format!("{what}, repaired"), &f.check());
    f.all_intact(&format!("{what}, repaired"));
}

fn index_file(fault: Fault) {
    let f = Fixture::new();
    let index = f.index_path();
    // the SQLite header: "SQLite format 3\0"
    let range = match fault {
        Fault::Flip => 0..16,
        _ => whole(&index),
    };
    inject(&index, range, fault);
    index_outcome(
        &f,
        &format!("index, {fault:?}"),
        // deleted: rebuilt on open (README, Safety)
        fault == Fault::Delete,
    );
}

#[test]
fn index_flip_in_its_header() {
    index_file(Fault::Flip)
}

#[test]
fn index_truncate() {
    index_file(Fault::Truncate)
}

/// An empty index file is an empty database: rebuilt on open.
#[test]
fn index_truncate_to_nothing() {
    let f = Fixture::new();
    let index = f.index_path();
    fs::File::options()
        .write(true)
        .open(&index)
        .unwrap()
        .set_len(0)
        .unwrap();
    index_outcome(&f, "index truncated to 0 bytes", true);
}

#[test]
fn index_zero_fill() {
    index_file(Fault::ZeroFill)
}

#[test]
fn index_delete() {
    index_file(Fault::Delete)
}

/// A flipped byte inside the index: the page type of the `blobs` table's
/// root page. Every lookup of a blob then fails.
#[test]
fn index_flip_in_a_page() {
    let f = Fixture::new();
    let index = f.index_path();
    let (root, page_size): (i64, i64) = {
        let c = rusqlite::Connection::open(&index).unwrap();
        let root = c
            .query_row(
                "SELECT rootpage FROM sqlite_master WHERE name = 'blobs'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let ps = c.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
        (root, ps)
    };
    let at = ((root - 1) * page_size) as u64;
    inject(&index, at..at + 1, Fault::Flip);
    index_outcome(&f, "index page flipped", false);
}

/// The index's write-ahead log lost after a crash: the index file alone
/// lacks the last backup (its pack and snapshot rows).
fn lost_wal() -> Fixture {
    // a reader holding an old snapshot of the index keeps the vol backup's
    // commits in the WAL (no checkpoint can pass it)
    let (f, reader) = Fixture::build(|r| {
        let c = rusqlite::Connection::open(r.repo.join("index/index.sqlite")).unwrap();
        c.execute_batch("BEGIN").unwrap();
        let n: i64 = c
            .query_row("SELECT count(*) FROM packs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
        c
    });
    let index = f.index_path();
    let wal = PathBuf::from(format!("{}-wal", index.display()));
    let shm = PathBuf::from(format!("{}-shm", index.display()));
    let (db_bytes, wal_bytes) = (fs::read(&index).unwrap(), fs::read(&wal).unwrap());
    drop(reader);
    // the state after a crash: the old file and the WAL; coffre reads it whole
    fs::write(&index, &db_bytes).unwrap();
    fs::write(&wal, &wal_bytes).unwrap();
    let _ = fs::remove_file(&shm);
    let o = f.run(&["snapshots", "--json"]);
    assert_ok(&o);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v.as_array().unwrap().len(),
        2,
        "the WAL holds the vol backup"
    );
    // now without the WAL
    fs::write(&index, &db_bytes).unwrap();
    let _ = fs::remove_file(&wal);
    let _ = fs::remove_file(&shm);
    f
}

/// The snapshot sync lists vol again, but its pack is unknown to the index:
/// check names that pack pointing at repair, vol fails without a wrong
/// byte, db is intact, and a repair mends everything.
#[test]
fn index_wal_deleted() {
    let f = lost_wal();
    let what = "index WAL deleted";
    let check = f.check();
    let pack = format!("pack {}", name_of(&f.vol_pack));
    assert_named(what, &check, &pack, &[], &[&f.s_db]);
    assert!(
        check.1.to_string().contains("coffre repair index"),
        "{what}: {check:?}"
    );
    f.dump_db(what, Expect::Intact);
    f.restore_vol(what, Expect::Fails(14));
    let o = f.run(&["repair", "index"]);
    assert_ok(&o);
    assert_clean(&format!("{what}, repaired"), &f.check());
    f.all_intact(&format!("{what}, repaired"));
}

/// Same, through the generic rule: every command that fails points at
/// `coffre repair index`.
#[test]
fn index_wal_deleted_failures_point_at_repair() {
    let f = lost_wal();
    index_outcome(&f, "index WAL deleted", false);
}

// ------------------------------------------------------ swaps and relabels

/// Two data blobs of the same sealed length swapped inside vol's pack:
/// each is at the other's place, bound to the other's id.
#[test]
fn two_blobs_swapped_inside_a_pack() {
    let f = Fixture::new();
    let data: Vec<Blob> = f
        .blobs_in(&f.vol_pack)
        .into_iter()
        .filter(|b| b.ty == DATA)
        .collect();
    let (a, b) = data
        .iter()
        .enumerate()
        .find_map(|(i, a)| {
            data[i + 1..]
                .iter()
                .find(|b| b.length == a.length)
                .map(|b| (a, b))
        })
        .expect("the twins seal to the same length");
    let mut bytes = fs::read(&f.vol_pack).unwrap();
    let (ra, rb) = (
        a.offset as usize..(a.offset + a.length) as usize,
        b.offset as usize..(b.offset + b.length) as usize,
    );
    let blob_a = bytes[ra.clone()].to_vec();
    let blob_b = bytes[rb.clone()].to_vec();
    bytes[ra].copy_from_slice(&blob_b);
    bytes[rb].copy_from_slice(&blob_a);
    fs::write(&f.vol_pack, &bytes).unwrap();
    let what = "two blobs swapped";
    assert_named(
        &format!("{what}: scrub"),
        &f.scrub(),
        &format!("pack {}", name_of(&f.vol_pack)),
        &[(&f.s_vol, "vol")],
        &[&f.s_db],
    );
    f.restore_vol(what, Expect::Fails(14));
    f.dump_db(what, Expect::Intact);

    // renamed to its new hash (and indexed under it), the pack passes the
    // file hash and its header opens; both blobs fail authentication and
    // are named
    let name = blake3::hash(&bytes).to_hex().to_string();
    let dir = f.r.repo.join("packs").join(&name[..2]);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(&name), &bytes).unwrap();
    fs::remove_file(&f.vol_pack).unwrap();
    assert_ok(&f.run(&["repair", "index"]));
    let scrub = f.scrub();
    for blob in [a, b] {
        assert_named(
            &format!("{what}, renamed: scrub"),
            &scrub,
            &format!("data chunk {}", blob.id),
            &[(&f.s_vol, "vol")],
            &[&f.s_db],
        );
    }
    f.restore_vol(&format!("{what}, renamed"), Expect::Fails(14));
    f.dump_db(&format!("{what}, renamed"), Expect::Intact);
}

/// db's pack and vol's pack under each other's names.
#[test]
fn two_packs_swapped() {
    let f = Fixture::new();
    let (a, b) = (
        fs::read(&f.db_pack).unwrap(),
        fs::read(&f.vol_pack).unwrap(),
    );
    fs::write(&f.db_pack, &b).unwrap();
    fs::write(&f.vol_pack, &a).unwrap();
    let what = "two packs swapped";
    let check = f.check();
    let scrub = f.scrub();
    for (tool, report) in [("check", &check), ("scrub", &scrub)] {
        assert_named(
            &format!("{what}: {tool}"),
            report,
            &format!("pack {}", name_of(&f.db_pack)),
            &[(&f.s_db, "db")],
            &[],
        );
        assert_named(
            &format!("{what}: {tool}"),
            report,
            &format!("pack {}", name_of(&f.vol_pack)),
            &[(&f.s_vol, "vol")],
            &[],
        );
    }
    f.dump_db(what, Expect::Fails(14));
    f.restore_vol(what, Expect::Fails(14));
}

/// db's and vol's snapshot objects under each other's names.
#[test]
fn two_snapshots_swapped() {
    let f = Fixture::new();
    let (pa, pb) = (f.snapshot_file(&f.s_db), f.snapshot_file(&f.s_vol));
    let (a, b) = (fs::read(&pa).unwrap(), fs::read(&pb).unwrap());
    fs::write(&pa, b).unwrap();
    fs::write(&pb, a).unwrap();
    let what = "two snapshots swapped";
    let check = f.check();
    assert_named(
        what,
        &check,
        &format!("snapshot {}", f.s_db),
        &[(&f.s_db, "db")],
        &[],
    );
    assert_named(
        what,
        &check,
        &format!("snapshot {}", f.s_vol),
        &[(&f.s_vol, "vol")],
        &[],
    );
    f.dump_db(what, Expect::Fails(14));
    f.restore_vol(what, Expect::Fails(14));
}

/// db's snapshot object renamed to another valid id.
fn relabelled() -> (Fixture, String) {
    let f = Fixture::new();
    let new = "5a".repeat(32);
    fs::rename(f.snapshot_file(&f.s_db), f.snapshot_file(&new)).unwrap();
    (f, new)
}

#[test]
fn relabelled_snapshot_is_named_by_check() {
    let (f, new) = relabelled();
    let what = "relabelled snapshot";
    assert_named(
        what,
        &f.check(),
        &format!("snapshot {new}"),
        &[(&new, "db")],
        &[&f.s_vol],
    );
    // the old id is simply gone
    f.dump_db(what, Expect::Fails(13));
    f.restore_vol(what, Expect::Intact);
}

/// The file is there and fails authentication: that is damage (14), as for
/// two swapped snapshot files, not "no such snapshot" (13).
#[test]
fn relabelled_snapshot_fails_authentication_when_dumped() {
    let (f, new) = relabelled();
    let o = f.run(&["dump", &new, "--name", "db"]);
    assert_dump("relabelled snapshot", &o, &f.db, Expect::Fails(14));
    assert!(
        stderr_of(&o).contains("authentication"),
        "{}",
        stderr_of(&o)
    );
}

/// A faulty compressor or encryptor (COFFRE_FAULT_INJECT flips a byte after
/// compression, or of the sealed envelope) is caught by the read-back
/// verification before any pack is written: nothing committed, nothing
/// written, the repository as it was.
#[test]
fn a_faulty_compressor_or_encryptor_is_caught_before_the_pack_is_written() {
    for fault in ["after-compression", "after-sealing"] {
        let r = TestRepo::small_chunks();
        let first = random_bytes(200_000, 5);
        r.backup_bytes("db", &first, &[]);
        let packs = r.pack_files();
        let snaps = r.snapshot_ids();

        // every chunk read back: a stream is enough
        let mut c = r.cmd();
        c.env("COFFRE_FAULT_INJECT", fault)
            .args(["backup", "--name", "db", "--stdin", "--verify-all"])
            .stdin(std::process::Stdio::piped());
        let o = {
            use std::io::Write;
            let mut child = c
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut stdin = child.stdin.take().unwrap();
            let _ = stdin.write_all(&random_bytes(300_000, 6));
            drop(stdin);
            child.wait_with_output().unwrap()
        };
        assert_code(&o, 1);
        assert!(
            stderr_of(&o).contains("does not read back as written"),
            "{fault}: {}",
            stderr_of(&o)
        );
        // by default trees and chunk lists are always verified
        let d = r.path("tree");
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("f"), random_bytes(10_000, 7)).unwrap();
        let mut c = r.cmd();
        c.env("COFFRE_FAULT_INJECT", fault)
            .args(["backup", "--name", "tree"])
            .arg(&d);
        let o = output_within(c, std::time::Duration::from_secs(60));
        assert_code(&o, 1);

        assert_eq!(r.pack_files(), packs, "{fault}: no pack written");
        assert_eq!(r.snapshot_ids(), snaps, "{fault}: nothing committed");
        assert!(r.dump(&["latest", "--name", "db"]) == first, "{fault}");
        let o = r.run(&["check"]);
        assert_ok(&o);
    }
}

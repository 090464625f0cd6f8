//! Write seed corpora: valid encodings of every format the targets decode,
//! under the fixed key of `coffre_fuzz`, into `<dir>/<target>/` (default
//! `fuzz/corpus`). Run from fuzz/: `cargo run --release --example seeds`.
//! File names are content hashes, so running it twice changes nothing.

use std::path::{Path, PathBuf};

use coffre::compress;
use coffre::crypto::{KdfParams, MasterKey, SecretKey};
use coffre::format::chunklist;
use coffre::format::config::{self, ChunkerParams, RepoConfig};
use coffre::format::envelope::{self, Binding};
use coffre::format::keyfile::KeyFile;
use coffre::format::pack::{self, PackEntry};
use coffre::format::snapshot::{Entry, EntryKind, Snapshot, Stats};
use coffre::format::tree::{Node, NodeKind, RawName, Tree};
use coffre::format::{BlobId, SnapshotId};
use coffre_fuzz::*;

struct Out {
    dir: PathBuf,
    count: usize,
}

impl Out {
    fn put(&mut self, target: &str, bytes: &[u8]) {
        let dir = self.dir.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        let name = blake3::hash(bytes).to_hex();
        std::fs::write(dir.join(&name[..16]), bytes).unwrap();
        self.count += 1;
    }
}

fn id(n: u8) -> BlobId {
    BlobId([n; 32])
}

fn zstd_frame(data: &[u8], level: i32) -> Vec<u8> {
    let mut out = Vec::new();
    assert!(compress::compress_into(data, level, &mut out), "not compressible");
    out
}

fn text(n: usize) -> Vec<u8> {
    b"CREATE TABLE t (id int primary key, name text);\nINSERT INTO t VALUES (1, 'x');\n"
        .iter()
        .copied()
        .cycle()
        .take(n)
        .collect()
}

fn node(name: &[u8], kind: NodeKind) -> Node {
    Node {
        name: RawName(name.to_vec()),
        kind,
        mode: 0o644,
        uid: 1000,
        gid: 1000,
        mtime_ns: 1_700_000_000_123_456_789,
        ctime_ns: -1,
        inode: 42,
        size: 0,
        chunks: vec![],
        lists: vec![],
        subtree: None,
        target: None,
    }
}

fn trees() -> Vec<Tree> {
    let mut file = node(b"a.sql", NodeKind::File);
    file.size = 123;
    file.chunks = vec![id(1), id(2)];
    let mut big = node(b"big.bin", NodeKind::File);
    big.lists = vec![id(3)];
    big.mode = 0o7777;
    let mut dir = node(b"dir", NodeKind::Dir);
    dir.subtree = Some(id(4));
    dir.mode = 0o755;
    let mut fifo = node(b"fifo", NodeKind::Fifo);
    fifo.mode = 0o600;
    let mut link = node(b"link", NodeKind::Symlink);
    link.target = Some(RawName(b"../a.sql".to_vec()));
    let mut bin = node(b"\xff\xfenot utf-8", NodeKind::Symlink);
    bin.target = Some(RawName(b"\x80target".to_vec()));
    vec![
        Tree::default(),
        Tree { nodes: vec![file.clone()] },
        Tree { nodes: vec![file, big, dir, fifo, link, bin] },
    ]
}

fn snapshots() -> Vec<Snapshot> {
    let stats = Stats {
        bytes_read: 1 << 30,
        bytes_new: 12345,
        bytes_stored: 6789,
        chunks_new: 3,
        chunks_reused: 4,
        files: 5,
        dirs: 6,
        files_unchanged: 7,
        duration_ms: 8,
    };
    let mut meta = serde_json::Map::new();
    meta.insert("server_version".into(), "PostgreSQL 15.18".into());
    meta.insert("rows".into(), 12345678901234u64.into());
    meta.insert("neg".into(), (-5i64).into());
    meta.insert("ratio".into(), 0.1f64.into());
    meta.insert("tiny".into(), 5e-324f64.into());
    meta.insert("ok".into(), true.into());
    meta.insert("none".into(), serde_json::Value::Null);
    meta.insert("list".into(), serde_json::json!([1, "two", {"three": [3.0]}]));
    let stream = Entry {
        name: "postgres/app".into(),
        kind: EntryKind::Stream,
        size: 123,
        chunks: vec![id(1), id(2)],
        lists: vec![],
        tree: None,
        root: None,
        path: None,
        parent: Some(SnapshotId([9; 32])),
        command: Some(vec!["pg_dump".into(), "-Fc".into(), "app".into()]),
        started: "2026-11-21T08:00:00.000000001Z".into(),
        finished: "2026-11-21T08:00:01Z".into(),
        stats: stats.clone(),
        meta,
    };
    let mut root = node(b"volume", NodeKind::Dir);
    root.subtree = Some(id(7));
    let tree = Entry {
        name: "files/volume".into(),
        kind: EntryKind::Tree,
        size: 0,
        chunks: vec![],
        lists: vec![],
        tree: Some(id(7)),
        root: Some(root),
        path: Some(RawName(b"/srv/\xffvolume".to_vec())),
        parent: None,
        command: None,
        started: "2026-11-21T08:00:00Z".into(),
        finished: "2026-11-21T08:00:00Z".into(),
        stats: Stats::default(),
        meta: serde_json::Map::new(),
    };
    let lists = Entry {
        name: "stdin".into(),
        lists: vec![id(5), id(6)],
        chunks: vec![],
        command: None,
        parent: None,
        meta: serde_json::Map::new(),
        ..stream.clone()
    };
    let snap = |entries: Vec<Entry>| Snapshot {
        version: 1,
        time: "2026-11-21T08:00:00.123456789Z".into(),
        host: "db1".into(),
        user: "postgres".into(),
        tags: vec!["daily".into(), "ünïcode".into()],
        program: "coffre 0.1.0".into(),
        entries,
        partial: false,
        failed: vec![],
    };
    vec![snap(vec![lists.clone()]), snap(vec![stream, tree, lists])]
}

fn main() {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus"));
    let mut out = Out { dir, count: 0 };
    let key = key();
    let ztext = zstd_frame(&text(20_000), 3);

    // envelope: sealed objects of every type (raw path), and `codec || body`
    // plaintexts (forged path).
    for ty in ALL_TYPES {
        for (pt, level) in [(&b"hello"[..], None), (&text(5000)[..], Some(3)), (&b""[..], None)] {
            out.put("envelope", &envelope::seal(&key, binding(ty), pt, level, Some(NONCE)));
        }
    }
    out.put("envelope", &[&[compress::CODEC_NONE][..], b"raw body"].concat());
    out.put("envelope", &[&[compress::CODEC_ZSTD][..], &ztext].concat());
    out.put("envelope", &[compress::CODEC_ZSTD_DELTA, 0, 0]);

    // decompress: frames that declare their size, at several levels.
    for (data, level) in [(text(100), 1), (text(20_000), 3), (text(300_000), 19), (vec![0; 1 << 20], 3)] {
        out.put("decompress", &zstd_frame(&data, level));
    }
    out.put("decompress", &[]);

    // chunklist
    out.put("chunklist", &chunklist::encode(&[id(1)]));
    out.put("chunklist", &chunklist::encode(&[id(1), id(2), id(3)]));

    // tree and snapshot
    for t in trees() {
        Tree::decode(&t.encode()).expect("seed tree is valid");
        out.put("tree", &t.encode());
    }
    for s in snapshots() {
        Snapshot::decode(&s.encode()).expect("seed snapshot is valid");
        out.put("snapshot", &s.encode());
    }

    // pack_header: whole packs of real blobs, and header plaintexts.
    for n in [1usize, 3] {
        let mut pack_bytes = Vec::new();
        let mut entries = Vec::new();
        for i in 0..n {
            let ty = BLOB_TYPES[i % 3];
            let pt = text(100 + 1000 * i);
            let blob_id = id(i as u8 + 1);
            let b = Binding { repo_id: &REPO_ID, object_type: ty, object_id: &blob_id.0 };
            let blob = envelope::seal(&key, b, &pt, Some(3), Some(NONCE));
            entries.push(PackEntry {
                blob_type: ty,
                id: blob_id,
                offset: pack_bytes.len() as u64,
                length: blob.len() as u32,
                raw_length: pt.len() as u32,
            });
            pack_bytes.extend(blob);
        }
        pack_bytes.extend(pack::encode_header(&key, &REPO_ID, &entries, Some(NONCE)));
        assert_eq!(pack::decode_pack_header(&key, &REPO_ID, &pack_bytes).unwrap(), entries);
        out.put("pack_header", &pack_bytes);
        // flags byte, then count || entries as the plaintext of a header
        let mut plain = vec![0u8, n as u8, 0, 0, 0];
        for e in &entries {
            plain.push(e.blob_type as u8);
            plain.extend_from_slice(&e.id.0);
            plain.extend_from_slice(&e.length.to_le_bytes());
            plain.extend_from_slice(&e.raw_length.to_le_bytes());
        }
        out.put("pack_header", &plain);
    }

    // config: whole config files, and the JSON the envelope holds.
    let cfgs = [
        RepoConfig {
            chunker: ChunkerParams::DEFAULT,
            zstd_level: 3,
            pack_size: 64 << 20,
            created: "2026-11-21T08:00:00Z".into(),
        },
        RepoConfig {
            chunker: ChunkerParams { min_size: 4096, avg_size: 4096, max_size: 16 << 20 },
            zstd_level: 19,
            pack_size: 1 << 20,
            created: String::new(),
        },
    ];
    for cfg in &cfgs {
        let bytes = config::encode(&key, &REPO_ID, cfg, Some(NONCE));
        assert_eq!(&config::decode(&key, &bytes).unwrap(), cfg);
        out.put("config", &bytes);
        out.put("config", &serde_json::to_vec(cfg).unwrap());
    }

    // keyfile: the cheapest Argon2 parameters allowed, run once here.
    let mut kdf = KdfParams::new(8 * 1024, 1, 1).unwrap();
    kdf.salt = [7; 32];
    let master = MasterKey(SecretKey::from_bytes([3; 32]));
    let mut kf =
        KeyFile::create(&REPO_ID, &master, b"password", kdf, "host", "user", Some((NONCE, [5; 16])))
            .unwrap();
    kf.created = "2026-11-21T08:00:00Z".into(); // a fixed date, so the seed is reproducible
    out.put("keyfile", &kf.to_bytes());
    out.put("keyfile", &serde_json::to_vec(&kf).unwrap());

    // lock: one as `RepoLock::acquire` writes it
    let lock = serde_json::json!({
        "version": 1, "exclusive": false, "command": "backup", "host": "db1", "user": "root",
        "pid": 4242, "pid_start": 81237, "created": "2026-11-21T03:00:00.000000000Z",
        "expires": 1795230600000i64,
    });
    coffre::repo::lock::LockInfo::decode(lock.to_string().as_bytes()).unwrap();
    out.put("lock", lock.to_string().as_bytes());

    eprintln!("wrote {} seed files under {}", out.count, out.dir.display());
}

//! Checks every vector in format-spec/vectors/ (see its README for the file format).
//! `COFFRE_REGEN_VECTORS=1 cargo test --test spec_vectors -- --ignored regenerate`
//! rewrites them from the current code; review the diff like a format change.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use coffre::chunker::chunk_lengths;
use coffre::crypto::{self, KdfParams, Keys, MasterKey, SecretKey};
use coffre::format::config::{self, ChunkerParams, RepoConfig};
use coffre::format::envelope::{self, Binding, ObjectType};
use coffre::format::keyfile::KeyFile;
use coffre::format::pack::{self, PackEntry};
use coffre::format::snapshot::Snapshot;
use coffre::format::tree::{Node, NodeKind, RawName, Tree};
use coffre::format::{BlobId, RepoId, chunklist};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("format-spec/vectors")
}

struct Vector {
    name: String,
    fields: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Vector {
    fn get(&self, k: &str) -> &str {
        self.fields
            .get(k)
            .unwrap_or_else(|| panic!("{}: missing field {k}", self.name))
    }
    fn hex(&self, k: &str) -> Vec<u8> {
        hex::decode(self.get(k)).unwrap_or_else(|_| panic!("{}: {k} is not hex", self.name))
    }
    fn arr<const N: usize>(&self, k: &str) -> [u8; N] {
        self.hex(k)
            .try_into()
            .unwrap_or_else(|_| panic!("{}: {k} has the wrong length", self.name))
    }
    fn success(&self) -> bool {
        match self.get("expect") {
            "success" => true,
            "failure" => false,
            other => panic!(
                "{}: expect must be success or failure, not {other}",
                self.name
            ),
        }
    }
    fn keys(&self) -> Keys {
        Keys::derive(&MasterKey(SecretKey::from_bytes(self.arr("master_key"))))
    }
    fn repo_id(&self) -> RepoId {
        RepoId(self.arr("repo_id"))
    }
}

/// `pattern(n)`: byte i is (i * 31 + (i >> 8)) mod 251 — stated in the vectors README.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 31 + (i >> 8)) % 251) as u8).collect()
}

/// `xorshift(n, seed)`: 64-bit xorshift (13, 7, 17), byte = state >> 24 — stated in the README.
fn xorshift(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn parse(path: &Path) -> Vector {
    let text = std::fs::read_to_string(path).unwrap();
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let mut fields = BTreeMap::new();
    for line in head.lines().filter(|l| !l.starts_with('#')) {
        let (k, v) = line
            .split_once(": ")
            .unwrap_or_else(|| panic!("{}: bad header line {line:?}", path.display()));
        fields.insert(k.to_string(), v.to_string());
    }
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let body = match fields.get("body").map(String::as_str) {
        Some("text") => body.trim_end_matches('\n').as_bytes().to_vec(),
        _ => hex::decode(body.split_whitespace().collect::<String>())
            .unwrap_or_else(|_| panic!("{name}: body is not hex")),
    };
    Vector { name, fields, body }
}

fn type_of(v: &Vector) -> ObjectType {
    let t = u8::from_str_radix(v.get("type").trim_start_matches("0x"), 16).unwrap();
    ObjectType::from_byte(t).unwrap()
}

fn check(v: &Vector) -> Result<(), String> {
    let kind = v.get("kind");
    let r: Result<(), String> = match kind {
        "subkeys" => {
            let k = v.keys();
            assert_eq!(
                hex::encode(k.encryption.expose()),
                v.get("k_enc"),
                "{}",
                v.name
            );
            assert_eq!(hex::encode(k.blob_id.expose()), v.get("k_id"), "{}", v.name);
            assert_eq!(
                k.chunker_seed.to_string(),
                v.get("chunker_seed"),
                "{}",
                v.name
            );
            Ok(())
        }
        "blob-id" => {
            let k = v.keys();
            for (len, want) in v
                .fields
                .iter()
                .filter_map(|(f, val)| f.strip_prefix("id_pattern_").map(|n| (n, val)))
            {
                let got = k.blob_id(&pattern(len.parse().unwrap()));
                assert_eq!(&got.to_hex(), want, "{} pattern({len})", v.name);
            }
            Ok(())
        }
        "envelope" => {
            let k = v.keys();
            let id: [u8; 32] = v.arr("object_id");
            let b = Binding {
                repo_id: &v.repo_id(),
                object_type: type_of(v),
                object_id: &id,
            };
            envelope::open(&k.encryption, b, &v.body, v.get("cap").parse().unwrap())
                .map_err(|e| e.to_string())
                .map(|plain| {
                    assert_eq!(plain, v.hex("plaintext"), "{}", v.name);
                    if v.get("codec") == "0x00" {
                        let again =
                            envelope::seal(&k.encryption, b, &plain, None, Some(v.arr("nonce")));
                        assert_eq!(again, v.body, "{}: re-sealing differs", v.name);
                    }
                })
        }
        "config" => {
            let k = v.keys();
            config::read_header(&v.body)
                .map_err(|e| e.to_string())
                .and_then(|id| {
                    if v.success() {
                        assert_eq!(id, v.repo_id(), "{}", v.name);
                    }
                    config::decode(&k.encryption, &v.body)
                        .map_err(|e| e.to_string())
                        .map(|c| {
                            assert_eq!(
                                serde_json::to_string(&c).unwrap(),
                                v.get("json"),
                                "{}",
                                v.name
                            );
                        })
                })
        }
        "keyfile" => KeyFile::parse(&v.body)
            .and_then(|kf| kf.unwrap(&v.repo_id(), v.get("password").as_bytes()))
            .map_err(|e| e.to_string())
            .map(|mk| {
                assert_eq!(
                    hex::encode(mk.0.expose()),
                    v.get("master_key"),
                    "{}",
                    v.name
                )
            }),
        "pack" => {
            let k = v.keys();
            pack::decode_pack_header(&k.encryption, &v.repo_id(), &v.body)
                .map_err(|e| e.to_string())
                .map(|entries| {
                    let got: Vec<String> = entries
                        .iter()
                        .map(|e| {
                            format!(
                                "{:#04x} {} {} {} {}",
                                e.blob_type as u8, e.id, e.offset, e.length, e.raw_length
                            )
                        })
                        .collect();
                    assert_eq!(got.join(","), v.get("entries"), "{}", v.name);
                    for e in &entries {
                        let blob =
                            &v.body[e.offset as usize..(e.offset + e.length as u64) as usize];
                        let plain = envelope::open(
                            &k.encryption,
                            Binding {
                                repo_id: &v.repo_id(),
                                object_type: e.blob_type,
                                object_id: &e.id.0,
                            },
                            blob,
                            1 << 20,
                        )
                        .unwrap();
                        assert_eq!(k.blob_id(&plain), e.id, "{}", v.name);
                    }
                })
        }
        "chunklist" => chunklist::decode(&v.body)
            .map_err(|e| e.to_string())
            .map(|ids| {
                let got: Vec<String> = ids.iter().map(|i| i.to_hex()).collect();
                assert_eq!(got.join(","), v.get("ids"), "{}", v.name);
                assert_eq!(chunklist::encode(&ids), v.body);
            }),
        "tree" => Tree::decode(&v.body).map_err(|e| e.to_string()).map(|t| {
            assert_eq!(t.encode(), v.body, "{}: re-encoding differs", v.name);
            assert_eq!(
                v.keys().blob_id(&v.body).to_hex(),
                v.get("blob_id"),
                "{}",
                v.name
            );
        }),
        "snapshot" => {
            let k = v.keys();
            let id: [u8; 32] = v.arr("object_id");
            let b = Binding {
                repo_id: &v.repo_id(),
                object_type: ObjectType::Snapshot,
                object_id: &id,
            };
            envelope::open(&k.encryption, b, &v.body, 1 << 26)
                .and_then(|plain| Snapshot::decode(&plain))
                .map_err(|e| e.to_string())
                .map(|s| assert_eq!(s.entries.len().to_string(), v.get("entries"), "{}", v.name))
        }
        "chunker" => {
            let k = v.keys();
            let p = ChunkerParams {
                min_size: v.get("min_size").parse().unwrap(),
                avg_size: v.get("avg_size").parse().unwrap(),
                max_size: v.get("max_size").parse().unwrap(),
            };
            let input = xorshift(
                v.get("input_len").parse().unwrap(),
                v.get("input_seed").parse().unwrap(),
            );
            let mut pos = 0;
            let got: Vec<String> = chunk_lengths(p, k.chunker_seed, &input)
                .into_iter()
                .map(|len| {
                    let id = k.blob_id(&input[pos..pos + len]);
                    pos += len;
                    format!("{len} {}", id.short())
                })
                .collect();
            let want = String::from_utf8(v.body.clone()).unwrap();
            assert_eq!(
                got.join("\n"),
                want.trim_end(),
                "{}: chunk boundaries changed",
                v.name
            );
            Ok(())
        }
        other => panic!("{}: unknown kind {other}", v.name),
    };
    r
}

#[test]
fn all_vectors() {
    let mut n = 0;
    let mut names: Vec<_> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for path in names
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
    {
        let v = parse(path);
        let fail_name = v.name.starts_with("fail_");
        assert_eq!(
            fail_name,
            !v.success(),
            "{}: fail_ files must expect failure and only they",
            v.name
        );
        match (check(&v), v.success()) {
            (Ok(()), true) => {}
            (Err(e), false) => {
                let want = v.get("error");
                assert!(
                    e.contains(want),
                    "{}: error {e:?} does not mention {want:?}",
                    v.name
                );
            }
            (Ok(()), false) => panic!("{}: was accepted but must be rejected", v.name),
            (Err(e), true) => panic!("{}: rejected: {e}", v.name),
        }
        n += 1;
    }
    assert!(n >= 20, "expected at least 20 vectors, found {n}");
}

// ---------------------------------------------------------------- generator

const MK: [u8; 32] = [7; 32];
const REPO: [u8; 16] = [0xa5; 16];

fn hex_body(b: &[u8]) -> String {
    let h = hex::encode(b);
    h.as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

fn write(name: &str, fields: &[(&str, String)], body: &str) {
    let mut s = String::new();
    for (k, v) in fields {
        s.push_str(&format!("{k}: {v}\n"));
    }
    s.push('\n');
    s.push_str(body);
    s.push('\n');
    std::fs::write(dir().join(name), s).unwrap();
}

fn common() -> Vec<(&'static str, String)> {
    vec![
        ("master_key", hex::encode(MK)),
        ("repo_id", hex::encode(REPO)),
    ]
}

#[allow(clippy::too_many_arguments)]
fn env_vector(
    file: &str,
    expect: &str,
    ty: ObjectType,
    id: [u8; 32],
    plain: &[u8],
    level: Option<i32>,
    mutate: impl Fn(&mut Vec<u8>),
    open_as: (ObjectType, [u8; 32], [u8; 16]),
    error: &str,
) {
    let keys = Keys::derive(&MasterKey(SecretKey::from_bytes(MK)));
    let nonce = [9u8; 24];
    let mut env = envelope::seal(
        &keys.encryption,
        Binding {
            repo_id: &RepoId(REPO),
            object_type: ty,
            object_id: &id,
        },
        plain,
        level,
        Some(nonce),
    );
    let codec = if level.is_some() && env.len() < plain.len() {
        "0x01"
    } else {
        "0x00"
    };
    mutate(&mut env);
    let mut f = vec![
        ("kind", "envelope".to_string()),
        ("expect", expect.to_string()),
    ];
    f.push(("master_key", hex::encode(MK)));
    f.push(("repo_id", hex::encode(open_as.2)));
    f.push(("type", format!("{:#04x}", open_as.0 as u8)));
    f.push(("object_id", hex::encode(open_as.1)));
    f.push(("nonce", hex::encode(nonce)));
    f.push(("codec", codec.to_string()));
    f.push(("cap", "1048576".to_string()));
    f.push(("plaintext", hex::encode(plain)));
    if !error.is_empty() {
        f.push(("error", error.to_string()));
    }
    write(file, &f, &hex_body(&env));
}

#[test]
#[ignore = "writes format-spec/vectors; run with COFFRE_REGEN_VECTORS=1"]
fn regenerate() {
    if std::env::var_os("COFFRE_REGEN_VECTORS").is_none() {
        return;
    }
    let keys = Keys::derive(&MasterKey(SecretKey::from_bytes(MK)));
    let ok = "success".to_string();
    let fail = "failure".to_string();
    // subkeys and blob ids
    let mut f = vec![("kind", "subkeys".to_string()), ("expect", ok.clone())];
    f.extend(common());
    f.push(("k_enc", hex::encode(keys.encryption.expose())));
    f.push(("k_id", hex::encode(keys.blob_id.expose())));
    f.push(("chunker_seed", keys.chunker_seed.to_string()));
    write("subkeys.txt", &f, "");
    let mut f = vec![("kind", "blob-id".to_string()), ("expect", ok.clone())];
    f.extend(common());
    let lens = ["0", "1", "1023", "1024", "1025", "65536"];
    let ids: Vec<(String, String)> = lens
        .iter()
        .map(|l| {
            (
                format!("id_pattern_{l}"),
                keys.blob_id(&pattern(l.parse().unwrap())).to_hex(),
            )
        })
        .collect();
    for (k, v) in &ids {
        f.push((k.as_str(), v.clone()));
    }
    write("blob-id.txt", &f, "");
    // envelopes
    let id = keys.blob_id(&pattern(1000)).0;
    let same = (ObjectType::Data, id, REPO);
    env_vector(
        "envelope-data-raw.txt",
        &ok,
        ObjectType::Data,
        id,
        &pattern(1000),
        None,
        |_| {},
        same,
        "",
    );
    let text = b"COPY public.t (a, b) FROM stdin;\n".repeat(40);
    let tid = keys.blob_id(&text).0;
    env_vector(
        "envelope-data-zstd.txt",
        &ok,
        ObjectType::Data,
        tid,
        &text,
        Some(3),
        |_| {},
        (ObjectType::Data, tid, REPO),
        "",
    );
    env_vector(
        "envelope-empty.txt",
        &ok,
        ObjectType::Data,
        keys.blob_id(b"").0,
        b"",
        None,
        |_| {},
        (ObjectType::Data, keys.blob_id(b"").0, REPO),
        "",
    );
    env_vector(
        "fail_envelope-tag.txt",
        &fail,
        ObjectType::Data,
        id,
        &pattern(1000),
        None,
        |e| {
            let n = e.len();
            e[n - 1] ^= 1
        },
        same,
        "failed authentication",
    );
    env_vector(
        "fail_envelope-ciphertext.txt",
        &fail,
        ObjectType::Data,
        id,
        &pattern(1000),
        None,
        |e| e[40] ^= 0x80,
        same,
        "failed authentication",
    );
    env_vector(
        "fail_envelope-type.txt",
        &fail,
        ObjectType::Data,
        id,
        &pattern(1000),
        None,
        |_| {},
        (ObjectType::Tree, id, REPO),
        "type byte",
    );
    env_vector(
        "fail_envelope-relabelled.txt",
        &fail,
        ObjectType::Data,
        id,
        &pattern(1000),
        None,
        |e| e[1] = ObjectType::Tree as u8,
        (ObjectType::Tree, id, REPO),
        "failed authentication",
    );
    env_vector(
        "fail_envelope-wrong-id.txt",
        &fail,
        ObjectType::Data,
        id,
        &pattern(1000),
        None,
        |_| {},
        (ObjectType::Data, [1; 32], REPO),
        "failed authentication",
    );
    env_vector(
        "fail_envelope-other-repo.txt",
        &fail,
        ObjectType::Data,
        id,
        &pattern(1000),
        None,
        |_| {},
        (ObjectType::Data, id, [0x5a; 16]),
        "failed authentication",
    );
    env_vector(
        "fail_envelope-truncated.txt",
        &fail,
        ObjectType::Data,
        id,
        &pattern(1000),
        None,
        |e| e.truncate(30),
        same,
        "truncated",
    );
    env_vector(
        "fail_envelope-version.txt",
        &fail,
        ObjectType::Data,
        id,
        &pattern(1000),
        None,
        |e| e[0] = 2,
        same,
        "format version",
    );
    // unknown codec and oversized zstd frame: built by hand around the AEAD
    for (file, body, error) in [
        (
            "fail_envelope-codec.txt",
            {
                let mut b = vec![0x07];
                b.extend(pattern(100));
                b
            },
            "unknown codec",
        ),
        (
            "fail_envelope-zstd-cap.txt",
            {
                let mut b = vec![0x01];
                b.extend(zstd::bulk::compress(&vec![0u8; 2 << 20], 3).unwrap());
                b
            },
            "more than the limit",
        ),
    ] {
        let nonce = [3u8; 24];
        let oid = [4u8; 32];
        let mut ad = b"coffre\0".to_vec();
        ad.extend(REPO);
        ad.push(1);
        ad.push(ObjectType::Data as u8);
        ad.extend(oid);
        let mut buf = body.clone();
        let tag = crypto::seal_in_place(&keys.encryption, &nonce, &ad, &mut buf);
        let mut env = vec![1, ObjectType::Data as u8];
        env.extend(nonce);
        env.extend(buf);
        env.extend(tag);
        let mut f = vec![("kind", "envelope".to_string()), ("expect", fail.clone())];
        f.extend(common());
        f.extend([
            ("type", "0x10".to_string()),
            ("object_id", hex::encode(oid)),
            ("nonce", hex::encode(nonce)),
            ("codec", format!("{:#04x}", body[0])),
            ("cap", "1048576".to_string()),
            ("plaintext", String::new()),
            ("error", error.to_string()),
        ]);
        write(file, &f, &hex_body(&env));
    }
    // config
    let cfg = RepoConfig {
        chunker: ChunkerParams::DEFAULT,
        zstd_level: 3,
        pack_size: 16 << 20,
        created: "2026-11-21T00:00:00Z".into(),
    };
    let bytes = config::encode(&keys.encryption, &RepoId(REPO), &cfg, Some([5; 24]));
    let mut f = vec![("kind", "config".to_string()), ("expect", ok.clone())];
    f.extend(common());
    f.push(("json", serde_json::to_string(&cfg).unwrap()));
    write("config.txt", &f, &hex_body(&bytes));
    for (file, m, error) in [
        ("fail_config-magic.txt", 0usize, "bad magic"),
        ("fail_config-version.txt", 8, "version 2"),
        ("fail_config-other-repo.txt", 9, "failed authentication"),
    ] {
        let mut b = bytes.clone();
        b[m] = if m == 8 { 2 } else { b[m] ^ 0x20 };
        let mut f = vec![("kind", "config".to_string()), ("expect", fail.clone())];
        f.extend(common());
        f.push(("json", String::new()));
        f.push(("error", error.to_string()));
        write(file, &f, &hex_body(&b));
    }
    let bad_cfg = RepoConfig {
        zstd_level: 99,
        ..cfg.clone()
    };
    let b = config::encode(&keys.encryption, &RepoId(REPO), &bad_cfg, Some([5; 24]));
    let mut f = vec![("kind", "config".to_string()), ("expect", fail.clone())];
    f.extend(common());
    f.extend([("json", String::new()), ("error", "zstd_level".to_string())]);
    write("fail_config-level.txt", &f, &hex_body(&b));
    // key files
    let master = MasterKey(SecretKey::from_bytes(MK));
    let kdf = KdfParams {
        salt: [6; 32],
        ..KdfParams::new(8192, 1, 1).unwrap()
    };
    let mut kf = KeyFile::create(
        &RepoId(REPO),
        &master,
        b"correct horse",
        kdf,
        "host",
        "user",
        Some(([8; 24], [2; 16])),
    )
    .unwrap();
    kf.created = "2026-11-21T00:00:00Z".into();
    let kfv = |file: &str, expect: &str, kf: &KeyFile, pw: &str, error: &str| {
        let mut f = vec![
            ("kind", "keyfile".to_string()),
            ("expect", expect.to_string()),
            ("body", "text".to_string()),
        ];
        f.extend(common());
        f.push(("password", pw.to_string()));
        if !error.is_empty() {
            f.push(("error", error.to_string()));
        }
        write(
            file,
            &f,
            String::from_utf8(kf.to_bytes()).unwrap().trim_end(),
        );
    };
    kfv("keyfile.txt", &ok, &kf, "correct horse", "");
    kfv(
        "fail_keyfile-wrong-password.txt",
        &fail,
        &kf,
        "battery staple",
        "wrong password",
    );
    let mut huge = kf.clone();
    huge.kdf.memory_kib = u32::MAX;
    kfv(
        "fail_keyfile-memory.txt",
        &fail,
        &huge,
        "correct horse",
        "memory",
    );
    let mut iters = kf.clone();
    iters.kdf.iterations = 1_000_000;
    kfv(
        "fail_keyfile-iterations.txt",
        &fail,
        &iters,
        "correct horse",
        "iterations",
    );
    let mut algo = kf.clone();
    algo.kdf.algorithm = "scrypt".into();
    kfv(
        "fail_keyfile-algorithm.txt",
        &fail,
        &algo,
        "correct horse",
        "algorithm",
    );
    // shown by `key list`: a planted escape sequence is rejected
    let mut planted = kf.clone();
    planted.host = "host\u{1b}]0;pwned\u{7}".into();
    kfv(
        "fail_keyfile-control-character.txt",
        &fail,
        &planted,
        "correct horse",
        "key file host holds a control character",
    );
    // packs
    let blobs: Vec<(ObjectType, Vec<u8>)> = vec![
        (ObjectType::Data, pattern(3000)),
        (ObjectType::Data, text.clone()),
        (ObjectType::ChunkList, chunklist::encode(&[BlobId([1; 32])])),
    ];
    let mut sealed: Vec<(PackEntry, Vec<u8>)> = blobs
        .iter()
        .enumerate()
        .map(|(i, (t, p))| {
            let id = keys.blob_id(p);
            let e = envelope::seal(
                &keys.encryption,
                Binding {
                    repo_id: &RepoId(REPO),
                    object_type: *t,
                    object_id: &id.0,
                },
                p,
                Some(3),
                Some([i as u8 + 10; 24]),
            );
            (
                PackEntry {
                    blob_type: *t,
                    id,
                    offset: 0,
                    length: e.len() as u32,
                    raw_length: p.len() as u32,
                },
                e,
            )
        })
        .collect();
    sealed.sort_by_key(|s| s.0.id);
    let mut packb = Vec::new();
    let mut entries = Vec::new();
    for (mut e, data) in sealed {
        e.offset = packb.len() as u64;
        packb.extend(&data);
        entries.push(e);
    }
    let header = pack::encode_header(&keys.encryption, &RepoId(REPO), &entries, Some([20; 24]));
    let desc: Vec<String> = entries
        .iter()
        .map(|e| {
            format!(
                "{:#04x} {} {} {} {}",
                e.blob_type as u8, e.id, e.offset, e.length, e.raw_length
            )
        })
        .collect();
    let mut full = packb.clone();
    full.extend(&header);
    let pv = |file: &str, expect: &str, bytes: &[u8], error: &str| {
        let mut f = vec![("kind", "pack".to_string()), ("expect", expect.to_string())];
        f.extend(common());
        f.push(("entries", desc.join(",")));
        if !error.is_empty() {
            f.push(("error", error.to_string()));
        }
        write(file, &f, &hex_body(bytes));
    };
    pv("pack.txt", &ok, &full, "");
    let mut bad = full.clone();
    let n = bad.len();
    bad[n - 4..].copy_from_slice(&(n as u32).to_le_bytes());
    pv("fail_pack-header-len.txt", &fail, &bad, "does not fit");
    let mut short = packb[1..].to_vec();
    short.extend(&header);
    pv("fail_pack-lengths.txt", &fail, &short, "header starts at");
    let mut flipped = full.clone();
    let hn = flipped.len() - 10;
    flipped[hn] ^= 1;
    pv(
        "fail_pack-header-tampered.txt",
        &fail,
        &flipped,
        "failed authentication",
    );
    // chunk lists
    let ids = [BlobId([1; 32]), BlobId([2; 32])];
    let cl = |file: &str, expect: &str, bytes: &[u8], error: &str| {
        let mut f = vec![
            ("kind", "chunklist".to_string()),
            ("expect", expect.to_string()),
        ];
        f.push((
            "ids",
            ids.iter().map(|i| i.to_hex()).collect::<Vec<_>>().join(","),
        ));
        if !error.is_empty() {
            f.push(("error", error.to_string()));
        }
        write(file, &f, &hex_body(bytes));
    };
    let good = chunklist::encode(&ids);
    cl("chunklist.txt", &ok, &good, "");
    let mut badc = good.clone();
    badc[0] = 3;
    cl("fail_chunklist-count.txt", &fail, &badc, "says 3 ids");
    cl(
        "fail_chunklist-empty.txt",
        &fail,
        &chunklist::encode(&[]),
        "says 0 ids",
    );
    // trees
    let node = |name: &[u8], kind: NodeKind| Node {
        name: RawName(name.to_vec()),
        kind,
        mode: 0o644,
        uid: 1000,
        gid: 1000,
        mtime_ns: 1_763_683_200_123_456_789,
        ctime_ns: 1_763_683_200_123_456_789,
        inode: 42,
        size: 0,
        chunks: vec![],
        lists: vec![],
        subtree: None,
        target: None,
    };
    let mut file = node("données.sql".as_bytes(), NodeKind::File);
    file.size = 3000;
    file.chunks = vec![keys.blob_id(&pattern(3000))];
    let mut link = node(b"link", NodeKind::Symlink);
    link.target = Some(RawName(b"../\xff\xfetarget".to_vec()));
    let mut sub = node(b"sub", NodeKind::Dir);
    sub.subtree = Some(keys.blob_id(b"{\"nodes\":[]}"));
    let weird = node(b"\xff\xfe\nname", NodeKind::File);
    let mut nodes = vec![file, link, sub, weird];
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    let tree = Tree {
        nodes: nodes.clone(),
    };
    let tv = |file: &str, expect: &str, bytes: &[u8], error: &str| {
        let mut f = vec![
            ("kind", "tree".to_string()),
            ("expect", expect.to_string()),
            ("body", "text".to_string()),
        ];
        f.extend(common());
        f.push(("blob_id", keys.blob_id(bytes).to_hex()));
        if !error.is_empty() {
            f.push(("error", error.to_string()));
        }
        write(file, &f, std::str::from_utf8(bytes).unwrap());
    };
    tv("tree.txt", &ok, &tree.encode(), "");
    let mut rev = nodes.clone();
    rev.reverse();
    tv(
        "fail_tree-unsorted.txt",
        &fail,
        &serde_json::to_vec(&Tree { nodes: rev }).unwrap(),
        "not strictly sorted",
    );
    let dotdot = Tree {
        nodes: vec![node(b"..", NodeKind::File)],
    };
    tv(
        "fail_tree-dotdot.txt",
        &fail,
        &serde_json::to_vec(&dotdot).unwrap(),
        "invalid file name",
    );
    let slash = Tree {
        nodes: vec![node(b"a/b", NodeKind::File)],
    };
    tv(
        "fail_tree-slash.txt",
        &fail,
        &serde_json::to_vec(&slash).unwrap(),
        "invalid file name",
    );
    tv(
        "fail_tree-unknown-field.txt",
        &fail,
        br#"{"nodes":[],"extra":1}"#,
        "unknown field",
    );
    let dir_without_subtree = Tree {
        nodes: vec![node(b"d", NodeKind::Dir)],
    };
    tv(
        "fail_tree-dir-without-subtree.txt",
        &fail,
        &serde_json::to_vec(&dir_without_subtree).unwrap(),
        "do not fit its type",
    );
    // snapshot
    let snap_json = format!(
        r#"{{"version":1,"time":"2026-11-21T03:00:00.000000001Z","host":"db1","user":"root","tags":["nightly"],"program":"coffre 0.1.0","entries":[{{"name":"postgres/app","kind":"stream","size":3000,"chunks":["{}"],"command":["pg_dump","-Fc","--compress=0","app"],"started":"2026-11-21T03:00:00Z","finished":"2026-11-21T03:00:00Z","stats":{{"bytes_read":3000,"bytes_new":3000,"bytes_stored":3043,"chunks_new":1,"chunks_reused":0,"files":0,"dirs":0,"files_unchanged":0,"duration_ms":5}}}}]}}"#,
        keys.blob_id(&pattern(3000))
    );
    let sid = [0x11u8; 32];
    let sv = |file: &str, expect: &str, json: &str, error: &str| {
        let env = envelope::seal(
            &keys.encryption,
            Binding {
                repo_id: &RepoId(REPO),
                object_type: ObjectType::Snapshot,
                object_id: &sid,
            },
            json.as_bytes(),
            None,
            Some([30; 24]),
        );
        let mut f = vec![
            ("kind", "snapshot".to_string()),
            ("expect", expect.to_string()),
        ];
        f.extend(common());
        f.push(("object_id", hex::encode(sid)));
        f.push(("entries", "1".to_string()));
        f.push(("json", json.to_string()));
        if !error.is_empty() {
            f.push(("error", error.to_string()));
        }
        write(file, &f, &hex_body(&env));
    };
    sv("snapshot.txt", &ok, &snap_json, "");
    sv(
        "fail_snapshot-entry-name.txt",
        &fail,
        &snap_json.replace("postgres/app", "../etc"),
        "invalid entry name",
    );
    sv(
        "fail_snapshot-version.txt",
        &fail,
        &snap_json.replace(r#""version":1"#, r#""version":9"#),
        "version 9",
    );
    // a plan run in which one source failed and --allow-partial was given
    let partial_json = snap_json.replace(
        r#""program":"coffre 0.1.0","#,
        r#""program":"coffre 0.1.0","partial":true,"failed":[{"name":"redis","kind":"redis","error":"redis-cli exited with status 1"}],"#,
    );
    sv("snapshot-partial.txt", &ok, &partial_json, "");
    sv(
        "fail_snapshot-partial-without-failed.txt",
        &fail,
        &snap_json.replace(
            r#""program":"coffre 0.1.0","#,
            r#""program":"coffre 0.1.0","partial":true,"#,
        ),
        "partial without failed",
    );
    // chunker golden
    let p = ChunkerParams {
        min_size: 4096,
        avg_size: 16384,
        max_size: 65536,
    };
    let input = xorshift(1 << 20, 2026);
    let mut pos = 0;
    let lines: Vec<String> = chunk_lengths(p, keys.chunker_seed, &input)
        .into_iter()
        .map(|len| {
            let id = keys.blob_id(&input[pos..pos + len]);
            pos += len;
            format!("{len} {}", id.short())
        })
        .collect();
    let mut f = vec![
        ("kind", "chunker".to_string()),
        ("expect", ok.clone()),
        ("body", "text".to_string()),
    ];
    f.extend(common());
    f.extend([
        ("min_size", "4096".to_string()),
        ("avg_size", "16384".to_string()),
        ("max_size", "65536".to_string()),
        ("input_len", (1 << 20).to_string()),
        ("input_seed", "2026".to_string()),
    ]);
    write("chunker-golden.txt", &f, &lines.join("\n"));
}

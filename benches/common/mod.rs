//! Deterministic inputs shared by the benchmarks.
//!
//! * [`dump_like`]: SQL `COPY` lines shaped like a `pg_dump` of a pgbench
//!   database (`aid bid abalance filler`, the filler being 84 blanks): very
//!   repetitive, compresses ~100x, like the real thing.
//! * [`high_entropy`]: `COPY` lines of an "orders" table full of hex (md5-like)
//!   strings, random amounts and timestamps: compresses only ~2x.
//!
//! Both are generated from a fixed seed, so every run sees the same bytes.

#![allow(dead_code)]

use std::io::Write;

pub const MIB: usize = 1 << 20;

/// splitmix64: small, fast, deterministic.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn hex(out: &mut Vec<u8>, rng: &mut Rng, n: usize) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut left = n;
    while left > 0 {
        let mut x = rng.next();
        for _ in 0..left.min(16) {
            out.push(DIGITS[(x & 15) as usize]);
            x >>= 4;
        }
        left -= left.min(16);
    }
}

/// About `n` bytes (exactly `n`) of a pgbench-like plain-format dump.
pub fn dump_like(n: usize) -> Vec<u8> {
    let mut rng = Rng::new(0x5eed_0001);
    let mut out = Vec::with_capacity(n + 4096);
    out.extend_from_slice(
        b"--\n-- PostgreSQL database dump\n--\n\nSET statement_timeout = 0;\n\
          SET client_encoding = 'UTF8';\n\n\
          COPY public.pgbench_accounts (aid, bid, abalance, filler) FROM stdin;\n",
    );
    let filler = [b' '; 84];
    let mut aid: u64 = 1;
    while out.len() < n {
        // 1% of the rows were touched by a pgbench run: a small non-zero balance
        let abalance: i64 = if rng.below(100) == 0 {
            rng.below(10_000) as i64 - 5_000
        } else {
            0
        };
        write!(out, "{aid}\t{}\t{abalance}\t", (aid - 1) / 100_000 + 1).unwrap();
        out.extend_from_slice(&filler);
        out.push(b'\n');
        aid += 1;
    }
    out.truncate(n);
    out
}

/// Exactly `n` bytes of a dump of a table full of hex strings (~2x compressible).
pub fn high_entropy(n: usize) -> Vec<u8> {
    const STATUS: [&str; 4] = ["new", "paid", "shipped", "cancelled"];
    let mut rng = Rng::new(0x5eed_0002);
    let mut out = Vec::with_capacity(n + 4096);
    out.extend_from_slice(
        b"COPY public.orders (id, customer_id, email, amount, status, created, sku, note) FROM stdin;\n",
    );
    let mut id: u64 = 1;
    while out.len() < n {
        write!(out, "{id}\t{}\t", rng.below(1_000_000)).unwrap();
        hex(&mut out, &mut rng, 12);
        write!(
            out,
            "@example.com\t{}.{:02}\t{}\t2024-{:02}-{:02} {:02}:{:02}:{:02}.{:06}+00\t",
            rng.below(10_000),
            rng.below(100),
            STATUS[rng.below(4) as usize],
            1 + rng.below(12),
            1 + rng.below(28),
            rng.below(24),
            rng.below(60),
            rng.below(60),
            rng.below(1_000_000),
        )
        .unwrap();
        let sku_at = out.len();
        hex(&mut out, &mut rng, 10);
        out[sku_at..].make_ascii_uppercase();
        out.push(b'\t');
        let note = rng.below(65) as usize;
        hex(&mut out, &mut rng, note);
        out.push(b'\n');
        id += 1;
    }
    out.truncate(n);
    out
}

/// The two inputs, by name.
pub fn inputs(n: usize) -> Vec<(&'static str, Vec<u8>)> {
    vec![("dump", dump_like(n)), ("entropy", high_entropy(n))]
}

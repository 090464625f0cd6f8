#!/usr/bin/env bash
# End-to-end throughput of the coffre CLI (release build), from the repository alone.
#
#   bash benches/e2e.sh            build, generate data (once), run, print a table
#
# Data (generated with python3 on the first run, deterministic, kept in $DATA):
#   dump0.sql    ~1 GB plain SQL dump shaped like pg_dump of a pgbench database
#                (COPY rows "aid bid abalance <84 blanks>"; compresses ~100x)
#   dump1.sql    the "next night": ~1% of the rows changed in place, spread over
#                the whole file, plus 5000 appended rows
#   entropy.sql  ~500 MB dump of an "orders" table full of hex strings (~2x)
#   vol/         ~2,000 files, ~500 MB: 45% random, 40% text, 10% semi-binary,
#                5% small json, ~2% duplicate files (the logic of
#                /work/shared/bench/gen_volume.py, copied here)
#
# Steps, all in one repository, each timed with GNU time (wall, user+sys, max RSS):
#   init, backup dump0, backup dump1 (incremental), backup dump1 again (unchanged),
#   dump latest to /dev/null, volume backup, volume backup again (unchanged, uses the
#   parent snapshot), volume restore, high-entropy backup, high-entropy dump to /dev/null.
# Restored bytes are compared with the inputs (cmp, diff -r), outside the timings.
# All inputs are read from the page cache (warmed first): figures are CPU-bound.
#
# Env: DATA (/tmp/coffre-e2e), DUMP_MB (1024), ENTROPY_MB (500), VOL_SCALE (1.0: ~500 MB),
#      COFFRE (default: target/release/coffre of this checkout, built unless SKIP_BUILD=1),
#      NICE (nice level for the measured commands, default 0), GEN_ONLY=1 (stop after the data).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="${DATA:-/tmp/coffre-e2e}"
DUMP_MB="${DUMP_MB:-1024}"
ENTROPY_MB="${ENTROPY_MB:-500}"
VOL_SCALE="${VOL_SCALE:-1.0}"
NICE="${NICE:-0}"
COFFRE_GIVEN="${COFFRE:+1}"
COFFRE="${COFFRE:-$ROOT/target/release/coffre}"
REPO="$DATA/repo"
RESULTS="$DATA/results.tsv"
LOG="$DATA/e2e.log"
export COFFRE_REPO="$REPO" COFFRE_PASSWORD="e2e-bench-password-not-secret"
unset COFFRE_PASSWORD_FILE COFFRE_PASSWORD_COMMAND

# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"

# ----------------------------------------------------------------------------- tools
need_gnu_time
command -v python3 >/dev/null || die "python3 is needed to generate the data"

build_coffre

# ----------------------------------------------------------------------------- data
gen() {
  python3 - "$@" <<'PY'
import os, random, shutil, sys

def dumps(d, mb):
    """dump0.sql (~mb MiB, pgbench-like) and dump1.sql (1% rows changed, rows appended)."""
    target = mb << 20
    r = random.Random(1)
    header = ("--\n-- PostgreSQL database dump\n--\n\nSET statement_timeout = 0;\n"
              "SET client_encoding = 'UTF8';\n\n"
              "CREATE TABLE public.pgbench_accounts (aid integer NOT NULL, bid integer, "
              "abalance integer, filler character(84));\n\n"
              "COPY public.pgbench_accounts (aid, bid, abalance, filler) FROM stdin;\n")
    filler = " " * 84
    with open(os.path.join(d, "dump0.sql"), "w") as f0, open(os.path.join(d, "dump1.sql"), "w") as f1:
        f0.write(header); f1.write(header)
        size = len(header); aid = 1; step = 100000
        while size < target:
            rows0 = []; rows1 = []
            for a in range(aid, aid + step):
                bal = r.randrange(-5000, 5000) if r.random() < 0.01 else 0
                line = "%d\t%d\t%d\t%s\n" % (a, (a - 1) // 100000 + 1, bal, filler)
                rows0.append(line)
                if r.random() < 0.01:   # the night's UPDATE
                    line = "%d\t%d\t%d\t%s\n" % (a, (a - 1) // 100000 + 1, bal + r.randrange(1, 5000), filler)
                rows1.append(line)
            s0 = "".join(rows0); s1 = "".join(rows1)
            f0.write(s0); f1.write(s1)
            size += len(s0); aid += step
        extra = "".join("%d\t%d\t%d\tnight-insert %d%s\n" % (aid + g, 1 + g % 100, g % 1000, g, " " * 60)
                        for g in range(5000))
        tail = "\\.\n\n\n--\n-- PostgreSQL database dump complete\n--\n\n"
        f0.write(tail); f1.write(extra + tail)

def entropy(d, mb):
    """entropy.sql: an 'orders' table of hex strings, ~2x compressible."""
    target = mb << 20
    r = random.Random(2)
    st = ("new", "paid", "shipped", "cancelled")
    with open(os.path.join(d, "entropy.sql"), "w") as f:
        head = "COPY public.orders (id, customer_id, email, amount, status, created, sku, note) FROM stdin;\n"
        f.write(head); size = len(head); i = 1
        while size < target:
            rows = []
            for _ in range(20000):
                rows.append("%d\t%d\t%012x@example.com\t%d.%02d\t%s\t2024-%02d-%02d %02d:%02d:%02d.%06d+00\t%010X\t%s\n" % (
                    i, r.randrange(1000000), r.getrandbits(48), r.randrange(10000), r.randrange(100),
                    st[r.randrange(4)], r.randrange(1, 13), r.randrange(1, 29), r.randrange(24),
                    r.randrange(60), r.randrange(60), r.randrange(1000000), r.getrandbits(40),
                    ("%064x" % r.getrandbits(256))[: r.randrange(65)]))
                i += 1
            s = "".join(rows); f.write(s); size += len(s)
        f.write("\\.\n")

# ---- volume: the logic of /work/shared/bench/gen_volume.py ("make"), scaled
WORDS = ("the of and to in is for on that with as by at from this be are was it an or "
         "not which have has but were their more all can one other its new also been "
         "backup restore snapshot chunk index database table row column value commit "
         "transaction error warning info debug request response user account balance "
         "server client latency throughput cache memory disk network packet retry").split()

def rnd_bytes(r, n):
    return r.randbytes(n)

def text_log(r, n):
    out = []; size = 0; t = 1700000000 + r.randrange(10**6)
    levels = ["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"]
    while size < n:
        t += r.randrange(5)
        line = "%d %s [%s] req=%08x user=%d %s %s %s dur=%dms\n" % (
            t, levels[r.randrange(6)], r.choice(("api", "db", "auth", "worker")),
            r.getrandbits(32), r.randrange(100000), r.choice(WORDS), r.choice(WORDS),
            r.choice(WORDS), r.randrange(2000))
        out.append(line); size += len(line)
    return "".join(out).encode()[:n]

def text_csv(r, n):
    out = ["id,name,email,amount,created,status\n"]; size = len(out[0]); i = r.randrange(10**6)
    while size < n:
        i += 1
        name = r.choice(WORDS) + r.choice(WORDS)
        line = "%d,%s,%s%d@example.com,%d.%02d,2024-%02d-%02d,%s\n" % (
            i, name, name, r.randrange(1000), r.randrange(100000), r.randrange(100),
            r.randrange(1, 13), r.randrange(1, 29), r.choice(("ok", "pending", "failed")))
        out.append(line); size += len(line)
    return "".join(out).encode()[:n]

def text_prose(r, n):
    out = []; size = 0
    while size < n:
        line = " ".join(r.choices(WORDS, k=8 + r.randrange(20))).capitalize() + ".\n"
        out.append(line); size += len(line)
    return "".join(out).encode()[:n]

def text_source(r, n):
    out = []; size = 0
    while size < n:
        fn = r.choice(WORDS) + "_" + r.choice(WORDS)
        blk = ("fn %s(x: u64, y: &str) -> Result<u64> {\n"
               "    let %s = x.wrapping_mul(%d) ^ %d;\n"
               "    if %s > %d { return Err(Error::new(\"%s %s\")); }\n"
               "    Ok(%s + y.len() as u64)\n}\n\n") % (
            fn, r.choice(WORDS), r.randrange(10**9), r.randrange(10**9), r.choice(WORDS),
            r.randrange(10**6), r.choice(WORDS), r.choice(WORDS), r.choice(WORDS))
        out.append(blk); size += len(blk)
    return "".join(out).encode()[:n]

def semi_binary(r, n):
    parts = []; size = 0
    while size < n:
        k = 512 + r.randrange(8192)
        parts.append(r.randbytes(k) if r.random() < 0.5 else bytes([r.randrange(256)]) * k)
        size += k
    return b"".join(parts)[:n]

def small_cfg(r, n):
    out = ["{\n"]; size = 2
    while size < n:
        line = '  "%s_%s": %d,\n' % (r.choice(WORDS), r.choice(WORDS), r.randrange(10**6))
        out.append(line); size += len(line)
    return ("".join(out) + '  "end": 0\n}\n').encode()[:n]

def volume(out, scale):
    r = random.Random(20240611)
    if os.path.exists(out):
        shutil.rmtree(out)
    dirs = [os.path.join(out, "d%02d" % a, "s%02d" % b) for a in range(20) for b in range(5)]
    for d in dirs:
        os.makedirs(d)
    plan = [(300, rnd_bytes, "jpg", 700_000), (20, rnd_bytes, "zip", 1_000_000),
            (350, text_log, "log", 250_000), (200, text_csv, "csv", 300_000),
            (250, text_prose, "txt", 120_000), (300, text_source, "rs", 60_000),
            (100, semi_binary, "bin", 500_000), (440, small_cfg, "json", 6_000)]
    specs = []; idx = 0
    for count, gen, ext, mean in plan:
        for _ in range(count):
            size = max(64, int(r.lognormvariate(0, 0.6) * mean * 0.84 * scale))
            path = os.path.join(dirs[r.randrange(len(dirs))], "f%05d.%s" % (idx, ext))
            idx += 1
            with open(path, "wb") as f:
                f.write(gen(r, size))
            specs.append(path)
    for i in range(40):   # ~2% exact duplicates
        src = specs[r.randrange(len(specs))]
        dst = os.path.join(dirs[r.randrange(len(dirs))], "dup%03d_%s" % (i, os.path.basename(src)))
        shutil.copyfile(src, dst)

what, d = sys.argv[1], sys.argv[2]
if what == "dumps": dumps(d, int(sys.argv[3]))
elif what == "entropy": entropy(d, int(sys.argv[3]))
elif what == "volume": volume(os.path.join(d, "vol"), float(sys.argv[3]))
PY
}

mkdir -p "$DATA"
STAMP="$DATA/.generated-v1-$DUMP_MB-$ENTROPY_MB-$VOL_SCALE"
if [ ! -f "$STAMP" ]; then
  rm -f "$DATA"/.generated-*
  log "generating dumps (${DUMP_MB} MiB) in $DATA"; gen dumps "$DATA" "$DUMP_MB"
  log "generating high-entropy dump (${ENTROPY_MB} MiB)"; gen entropy "$DATA" "$ENTROPY_MB"
  log "generating volume (scale $VOL_SCALE)"; gen volume "$DATA" "$VOL_SCALE"
  touch "$STAMP"
fi
[ "${GEN_ONLY:-0}" = 1 ] && { log "data ready in $DATA (GEN_ONLY=1)"; exit 0; }

# ----------------------------------------------------------------------------- measurement
sz() { stat -c %s "$1"; }
reposize() { if [ -d "$REPO" ]; then du -sb "$REPO" | cut -f1; else echo 0; fi; }
TF="$DATA/time.tmp"

# step NAME INPUT_BYTES STDIN STDOUT CMD...   (STDIN/STDOUT: a path; /dev/null for none)
step() {
  local name=$1 inb=$2 in=$3 out=$4; shift 4
  local before after rc=0
  sync
  before=$(reposize)
  echo "=== $name: $*" >>"$LOG"
  nice -n "$NICE" /usr/bin/time -f '%e %U %S %M' -o "$TF" "$@" <"$in" >"$out" 2>>"$LOG" || rc=$?
  sync
  after=$(reposize)
  local wall usr sys rss
  read -r wall usr sys rss <<<"$(tail -1 "$TF")"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$inb" "$wall" "$usr" "$sys" "$rss" "$((after - before))" "$rc" >>"$RESULTS"
  log "$name: ${wall}s (user ${usr}s sys ${sys}s) rss=${rss}KiB repo+$((after - before)) rc=$rc"
  [ "$rc" = 0 ] || log "WARNING: $name failed (rc=$rc), see $LOG"
}

FAIL=0
check() { # check DESCRIPTION CMD... : run an untimed verification
  local what=$1; shift
  if "$@" >>"$LOG" 2>&1; then log "verified: $what"; else log "MISMATCH: $what"; FAIL=1; fi
}

rm -rf "$REPO" "$DATA/restore"
: >"$LOG"
printf 'step\tinput_bytes\twall_s\tuser_s\tsys_s\tmaxrss_kib\trepo_added\trc\n' >"$RESULTS"
log "warming the page cache"
cat "$DATA/dump0.sql" "$DATA/dump1.sql" "$DATA/entropy.sql" >/dev/null
tar -C "$DATA" -cf - vol >/dev/null
VOLB=$(du -sb "$DATA/vol" | cut -f1)
VOLN=$(find "$DATA/vol" -type f | wc -l)

C="$COFFRE"
step init 0 /dev/null /dev/null "$C" init --kdf-memory 8 --kdf-iterations 1 --kdf-parallelism 1
step "backup dump0" "$(sz "$DATA/dump0.sql")" "$DATA/dump0.sql" /dev/null "$C" backup -n dump --stdin
step "backup dump1 (incremental)" "$(sz "$DATA/dump1.sql")" "$DATA/dump1.sql" /dev/null "$C" backup -n dump --stdin
step "backup dump1 again (unchanged)" "$(sz "$DATA/dump1.sql")" "$DATA/dump1.sql" /dev/null "$C" backup -n dump --stdin
step "dump restore (to /dev/null)" "$(sz "$DATA/dump1.sql")" /dev/null /dev/null "$C" dump -n dump
check "dump restore == dump1.sql" bash -c '"$0" dump -n dump | cmp - "$1"' "$C" "$DATA/dump1.sql"
step "backup volume ($VOLN files)" "$VOLB" /dev/null /dev/null "$C" backup -n vol "$DATA/vol"
step "backup volume again (unchanged)" "$VOLB" /dev/null /dev/null "$C" backup -n vol "$DATA/vol"
step "restore volume" "$VOLB" /dev/null /dev/null "$C" restore -n vol --target "$DATA/restore"
check "restored volume == vol/" diff -r "$DATA/restore" "$DATA/vol"
rm -rf "$DATA/restore"
step "backup high-entropy" "$(sz "$DATA/entropy.sql")" "$DATA/entropy.sql" /dev/null "$C" backup -n entropy --stdin
step "high-entropy restore (to /dev/null)" "$(sz "$DATA/entropy.sql")" /dev/null /dev/null "$C" dump -n entropy
check "high-entropy restore == entropy.sql" bash -c '"$0" dump -n entropy | cmp - "$1"' "$C" "$DATA/entropy.sql"

# ----------------------------------------------------------------------------- report
{
  echo
  echo "coffre e2e, $(date -Is), $(nproc) cores, $("$C" --version 2>/dev/null), git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo "inputs: dump0 $(sz "$DATA/dump0.sql") B, dump1 $(sz "$DATA/dump1.sql") B, entropy $(sz "$DATA/entropy.sql") B, volume $VOLB B in $VOLN files"
  echo "MB = 10^6 bytes; MB/s = input bytes / wall; CPU = (user+sys)/wall (200% = both cores busy);"
  echo "RSS = peak resident set (MiB); repo + = growth of the repository directory (du -sb)."
  echo
  python3 - "$RESULTS" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
hdr = ["step", "input MB", "wall s", "MB/s", "CPU %", "RSS MiB", "repo + MB", "rc"]
out = []
for r in rows:
    wall = float(r["wall_s"]); inb = int(r["input_bytes"])
    cpu = (float(r["user_s"]) + float(r["sys_s"])) / max(wall, 1e-3) * 100
    out.append([r["step"], "%.0f" % (inb / 1e6), "%.2f" % wall,
                "%.0f" % (inb / 1e6 / max(wall, 1e-3)) if inb else "-", "%.0f" % cpu,
                "%.0f" % (int(r["maxrss_kib"]) / 1024), "%.2f" % (int(r["repo_added"]) / 1e6), r["rc"]])
w = [max(len(str(x)) for x in col) for col in zip(hdr, *out)]
line = lambda cells: "| " + " | ".join(str(c).ljust(w[i]) if i == 0 else str(c).rjust(w[i]) for i, c in enumerate(cells)) + " |"
print(line(hdr))
print("|" + "|".join("-" * (n + 2) for n in w) + "|")
for o in out:
    print(line(o))
PY
  echo
  echo "repository: $(du -sb "$REPO" | cut -f1) bytes in $(find "$REPO/packs" -type f | wc -l) packs"
} | tee "$DATA/report.md"
if [ "$FAIL" != 0 ] || grep -qv $'\t0$' <(tail -n +2 "$RESULTS"); then
  log "some steps failed or did not verify; see $LOG"
  exit 1
fi

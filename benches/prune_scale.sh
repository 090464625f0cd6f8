#!/usr/bin/env bash
# Prune at scale (issue 4): a repository of ~1 million chunks and 100 snapshots;
# wall time and peak RSS of prune (target: under 300 MiB), before and after a forget.
#
#   bash benches/prune_scale.sh                  # CHUNKS=1000000: ~14 GB per big backup, ~11 min in all
#   CHUNKS=250000 DATA=/tmp/prune-250k bash benches/prune_scale.sh
#
# Repository: `init --chunk-size 16` (avg 16 KiB, min 4 KiB: the smallest allowed), fast KDF,
# password from COFFRE_PASSWORD (set here unless already set; never on a command line).
#
# Data, generated on the fly by a small C program (gen.c below, ~1 GB/s on one core) and
# piped into `coffre backup --stdin`, so nothing large touches the disk but the repository:
# order-like rows "counter<TAB>status<TAB>2026-0M-DD HH:MM<TAB>amount<TAB>status" (~52 bytes,
# ~3.4x with coffre's zstd -2), every row unique. No constant run is longer than 7 bytes:
# with long constant runs (e.g. a fixed 40-byte tail) the gear hash at many offsets sees only
# constant bytes and whether it cuts there depends on the repository's chunker key, so the
# average chunk came out between 14 and 29 KiB depending on the key; these rows chunk like
# random data, ~19.5 KiB on average whatever the key (FastCDC cuts only after the 4 KiB min).
# A stream is a sequence of "regions" of 2,400 rows (~124 kB, ~6.2 chunks); variant V of a
# stream rewrites the random fields of some regions (a region holds the content of the last
# variant that changed it).
#   big  ~70% of CHUNKS: one backup of variant 0, then BIG_REBACKUPS (3) full re-backups of
#        variants 1..3, each changing ~1% of the regions: 0.3% of the first 90% of the stream
#        and 8% of the "hot" last 10% (recent rows change more), so after forgetting all but
#        the newest, the packs of the hot tail are ~20% unused and get repacked.
#   db   100 - 1 - BIG_REBACKUPS (96) backups of a smaller stream (~0.5% of CHUNKS chunks),
#        each changing DB_CHURN (50%) of its regions: a nightly dump that churns; ~27% of
#        all chunks. forget keeps the newest DB_KEEP (10): most of its packs die whole,
#        the few just before the kept ones die partly (geometric).
# => ~100 snapshots, ~CHUNKS unique chunks; after `forget` ~20-30% of the blobs are unused.
#
# Steps, each timed with GNU time (wall, user+sys, max RSS); the backups are timed too:
#   init, backup big (first), 3 re-backups of big, 96 db backups (one summary row),
#   prune --dry-run (all live), forget big (--keep-last 1), forget db (--keep-last DB_KEEP),
#   prune --dry-run (after forget), prune, prune again (nothing to do), scrub --all.
# Outside the timings: the newest big snapshot and the newest and oldest kept db snapshots
# are dumped and compared byte for byte (cmp) with their regenerated streams.
# "prune" minus "prune --dry-run (after forget)" is roughly the repack+delete phase; the
# dry run itself is index sync + mark + plan.
#
# Env: CHUNKS (1000000), DATA (/tmp/coffre-prune-scale), BIG_REBACKUPS (3), DB_CHURN
#      (permille of db regions changed per backup, 500), DB_KEEP (10), SCRUB (1: time
#      `scrub --all`; 0 skips it), VERIFY (1), KEEP (0: remove the repository at the end;
#      1 keeps it), NICE (0), COFFRE (default: target/release/coffre of this checkout,
#      built unless SKIP_BUILD=1). Needs a C compiler (cc) and python3 (report).
# Output: a table on stdout and $DATA/report.md, rows in $DATA/prune_scale.tsv, prune JSON
# in $DATA/out/, command output in $DATA/prune_scale.log.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="${DATA:-/tmp/coffre-prune-scale}"
CHUNKS="${CHUNKS:-1000000}"
BIG_REBACKUPS="${BIG_REBACKUPS:-3}"
DB_CHURN="${DB_CHURN:-500}"
DB_KEEP="${DB_KEEP:-10}"
SCRUB="${SCRUB:-1}"
VERIFY="${VERIFY:-1}"
KEEP="${KEEP:-0}"
NICE="${NICE:-0}"
COFFRE_GIVEN="${COFFRE:+1}"
COFFRE="${COFFRE:-$ROOT/target/release/coffre}"
REPO="$DATA/repo"
RESULTS="$DATA/prune_scale.tsv"
LOG="$DATA/prune_scale.log"
OUT="$DATA/out"
GEN="$DATA/gen"
export COFFRE_REPO="$REPO" COFFRE_PASSWORD="${COFFRE_PASSWORD:-prune-scale-bench-not-secret}"
unset COFFRE_PASSWORD_FILE COFFRE_PASSWORD_COMMAND COFFRE_CONFIG

# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"

# ----------------------------------------------------------------------------- tools
need_gnu_time
command -v python3 >/dev/null || die "python3 is needed for the report"
command -v cc >/dev/null || die "a C compiler (cc) is needed for the data generator"

build_coffre
C="$COFFRE"

mkdir -p "$DATA" "$OUT"
# ----------------------------------------------------------------------------- generator
# gen STREAM REGIONS VARIANT COLD_PERMILLE HOT_PERMILLE HOT_FROM
# Region r of variant V holds the content of the last variant u <= V that changed it;
# variant u changes region r when hash(stream, r, u) % 1000 < (r >= HOT_FROM ? HOT : COLD).
cat >"$DATA/gen.c" <<'EOF'
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static inline uint64_t mix(uint64_t x) { /* splitmix64 */
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
static const char *W[16] = {"new", "paid", "shipped", "cancelled", "refunded", "pending", "on-hold", "returned",
                            "active", "closed", "archived", "open", "billed", "disputed", "settled", "draft"};
#define LINES 2400 /* per region */
static char buf[1 << 20];
static size_t n;
static void flush(void) {
  size_t o = 0;
  while (o < n) {
    ssize_t w = write(1, buf + o, n - o);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EPIPE) exit(0);
      perror("gen: write");
      exit(1);
    }
    o += (size_t)w;
  }
  n = 0;
}
int main(int argc, char **argv) {
  if (argc != 7) {
    fprintf(stderr, "usage: gen STREAM REGIONS VARIANT COLD_PERMILLE HOT_PERMILLE HOT_FROM\n");
    return 2;
  }
  uint64_t sid = strtoull(argv[1], 0, 10), nreg = strtoull(argv[2], 0, 10), var = strtoull(argv[3], 0, 10);
  uint64_t cold = strtoull(argv[4], 0, 10), hot = strtoull(argv[5], 0, 10), hotfrom = strtoull(argv[6], 0, 10);
  char ctr[12];
  memset(ctr, '0', sizeof ctr);
  for (uint64_t r = 0; r < nreg; r++) {
    uint64_t pm = r >= hotfrom ? hot : cold, ver = 0;
    for (uint64_t u = var; u >= 1; u--)
      if (mix(mix(sid * 0x100000001b3ULL + r) ^ u) % 1000 < pm) { ver = u; break; }
    uint64_t seed = mix(mix(sid ^ 0x5bd1e995ULL) + mix(r) + (ver << 32));
    for (int k = 0; k < LINES; k++) {
      uint64_t h = mix(seed + (uint64_t)k);
      char *p = buf + n;
      uint64_t h2 = mix(h);
      unsigned mo = 1 + (h2 & 7), d = 1 + ((h2 >> 3) % 28), hh = (h2 >> 8) % 24, mi = (h2 >> 13) % 60;
      unsigned eu = (h2 >> 19) % 1000, ct = (h2 >> 29) % 100;
      memcpy(p, ctr, 12); p += 12; *p++ = '\t';
      const char *w = W[h & 15];
      size_t wl = strlen(w);
      memcpy(p, w, wl); p += wl;
      memcpy(p, "\t2026-0", 7); p += 7;
      *p++ = '0' + mo; *p++ = '-'; *p++ = '0' + d / 10; *p++ = '0' + d % 10; *p++ = ' ';
      *p++ = '0' + hh / 10; *p++ = '0' + hh % 10; *p++ = ':'; *p++ = '0' + mi / 10; *p++ = '0' + mi % 10; *p++ = '\t';
      if (eu >= 100) *p++ = '0' + eu / 100;
      if (eu >= 10) *p++ = '0' + eu / 10 % 10;
      *p++ = '0' + eu % 10; *p++ = '.'; *p++ = '0' + ct / 10; *p++ = '0' + ct % 10; *p++ = '\t';
      w = W[(h >> 4) & 15]; wl = strlen(w);
      memcpy(p, w, wl); p += wl; *p++ = '\n';
      n = (size_t)(p - buf);
      for (int i = 11; i >= 0; i--) { if (ctr[i] == '9') ctr[i] = '0'; else { ctr[i]++; break; } }
      if (n > sizeof buf - 256) flush();
    }
  }
  flush();
  return 0;
}
EOF
cc -O2 -o "$GEN" "$DATA/gen.c"

# Sizes. ~6.22 chunks per region (124,237 bytes; measured average chunk 19.3-19.6 KiB over 5
# repository keys at --chunk-size 16).
read -r BIG_REGIONS HOT_FROM DB_REGIONS DB_SNAPS <<<"$(python3 - "$CHUNKS" "$BIG_REBACKUPS" "$DB_CHURN" <<'PY'
import sys
chunks, rebackups, churn = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]) / 1000
cpr = 6.22
big = max(10, round(chunks * 0.70 / cpr))
db_snaps = 100 - 1 - rebackups
# db chunks ~ regions * cpr * (1 + (snaps - 1) * (churn + 0.05)) (a changed run of regions
# also changes the chunks across its two ends)
db = max(4, round(chunks * 0.27 / cpr / (1 + (db_snaps - 1) * min(1, churn + 0.05))))
print(big, big - big // 10, db, db_snaps)
PY
)"
BIG_COLD=3 BIG_HOT=80
gen_big() { "$GEN" 0 "$BIG_REGIONS" "$1" "$BIG_COLD" "$BIG_HOT" "$HOT_FROM"; }
gen_db() { "$GEN" 1 "$DB_REGIONS" "$1" "$DB_CHURN" "$DB_CHURN" 0; }

log "generator speed:"
GEN_T0=$(date +%s.%N)
GEN_B=$("$GEN" 0 3000 0 0 0 0 | wc -c)
GEN_T1=$(date +%s.%N)
GEN_MBS=$(python3 -c "print('%.0f' % ($GEN_B / 1e6 / max($GEN_T1 - $GEN_T0, 1e-3)))")
log "  ${GEN_MBS} MB/s (one core, to wc)"
log "scale: CHUNKS=$CHUNKS -> big $BIG_REGIONS regions (~$((BIG_REGIONS * 124 / 1000)) MB, hot from $HOT_FROM), db $DB_REGIONS regions (~$((DB_REGIONS * 124 / 1000)) MB) x $DB_SNAPS"

# ----------------------------------------------------------------------------- measurement
TF="$DATA/time.tmp"
reposize() { du -sb "$REPO" | cut -f1; }
npacks() { find "$REPO/packs" -type f | wc -l; }

# step NAME OUTFILE CMD...       the timed command reads stdin from $STEP_IN (a generator
# command line, run untimed in front of it through a pipe) or /dev/null
STEP_IN=""
step() {
  local name=$1 outf=$2; shift 2
  local rc=0
  echo "=== $name: $*${STEP_IN:+ < $STEP_IN}" >>"$LOG"
  if [ -n "$STEP_IN" ]; then
    $STEP_IN | nice -n "$NICE" /usr/bin/time -f '%e %U %S %M' -o "$TF" "$@" >"$outf" 2>>"$LOG" || rc=$?
  else
    nice -n "$NICE" /usr/bin/time -f '%e %U %S %M' -o "$TF" "$@" </dev/null >"$outf" 2>>"$LOG" || rc=$?
  fi
  STEP_IN=""
  local wall usr sys rss inb=0
  read -r wall usr sys rss <<<"$(tail -1 "$TF")"
  if [ -s "$outf" ] && head -c1 "$outf" | grep -q '{'; then
    inb=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline()).get("bytes_read", 0))' "$outf" 2>/dev/null || echo 0)
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$inb" "$wall" "$usr" "$sys" "$rss" "$rc" >>"$RESULTS"
  [ "$rc" = 0 ] || { log "$name failed (rc=$rc), see $LOG"; FAIL=1; }
  LAST_WALL=$wall LAST_RSS=$rss
}

FAIL=0
check() { # check DESCRIPTION CMD... : an untimed verification
  local what=$1; shift
  if "$@" >>"$LOG" 2>&1; then log "verified: $what"; else log "MISMATCH: $what"; FAIL=1; fi
}

rm -rf "$REPO" "$OUT"
mkdir -p "$OUT"
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
: >"$LOG"
printf 'step\tinput_bytes\twall_s\tuser_s\tsys_s\tmaxrss_kib\trc\n' >"$RESULTS"

step init "$OUT/init.txt" "$C" init -q --chunk-size 16 --kdf-memory 8 --kdf-iterations 1 --kdf-parallelism 1
log "backup big (variant 0, first)"
STEP_IN="gen_big 0"
step "backup big (first)" "$OUT/big0.json" "$C" backup -q --name big --stdin --json
log "  ${LAST_WALL}s, rss $((LAST_RSS / 1024)) MiB"
for v in $(seq 1 "$BIG_REBACKUPS"); do
  STEP_IN="gen_big $v"
  step "backup big (variant $v, ~1% changed)" "$OUT/big$v.json" "$C" backup -q --name big --stdin --json
  log "backup big variant $v: ${LAST_WALL}s, rss $((LAST_RSS / 1024)) MiB"
done
log "backup db x $DB_SNAPS"
for i in $(seq 0 $((DB_SNAPS - 1))); do
  STEP_IN="gen_db $i"
  step "backup db #$i" "$OUT/db$i.json" "$C" backup -q --name db --stdin --json
done
log "  done"
cat "$OUT"/big*.json "$OUT"/db*.json >"$OUT/backups.jsonl"

sync
SIZE0=$(reposize) PACKS0=$(npacks)
log "repository: $SIZE0 bytes in $PACKS0 packs; prune --dry-run (everything live)"
step "prune --dry-run (all live)" "$OUT/prune_dry0.json" "$C" prune -q --dry-run --json
log "  ${LAST_WALL}s, rss $((LAST_RSS / 1024)) MiB"
step "forget big --keep-last 1" "$OUT/forget_big.txt" "$C" forget -q --name big --keep-last 1
step "forget db --keep-last $DB_KEEP" "$OUT/forget_db.txt" "$C" forget -q --name db --keep-last "$DB_KEEP"
sync
step "prune --dry-run (after forget)" "$OUT/prune_dry1.json" "$C" prune -q --dry-run --json
log "  dry run ${LAST_WALL}s, rss $((LAST_RSS / 1024)) MiB: $(cat "$OUT/prune_dry1.json")"
step "prune" "$OUT/prune.json" "$C" prune -q --json
log "  prune ${LAST_WALL}s, rss $((LAST_RSS / 1024)) MiB: $(cat "$OUT/prune.json")"
sync
SIZE1=$(reposize) PACKS1=$(npacks)
step "prune again (nothing to do)" "$OUT/prune2.json" "$C" prune -q --json
log "  ${LAST_WALL}s: $(cat "$OUT/prune2.json")"
if [ "$SCRUB" = 1 ]; then
  step "scrub --all" "$OUT/scrub.json" "$C" scrub -q --all --json
  log "  scrub ${LAST_WALL}s"
fi

# ----------------------------------------------------------------------------- verification
if [ "$VERIFY" = 1 ]; then
  NSNAP=$("$C" snapshots -q --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
  check "$NSNAP snapshots left (expected $((1 + DB_KEEP)))" test "$NSNAP" = $((1 + DB_KEEP))
  check "dump big latest == variant $BIG_REBACKUPS (cmp)" \
    cmp <(gen_big "$BIG_REBACKUPS") <("$C" dump -q --name big latest 2>>"$LOG")
  check "dump db latest == db #$((DB_SNAPS - 1)) (cmp)" \
    cmp <(gen_db $((DB_SNAPS - 1))) <("$C" dump -q --name db latest 2>>"$LOG")
  check "dump db latest~$((DB_KEEP - 1)) == db #$((DB_SNAPS - DB_KEEP)) (cmp)" \
    cmp <(gen_db $((DB_SNAPS - DB_KEEP))) <("$C" dump -q --name db "latest~$((DB_KEEP - 1))" 2>>"$LOG")
fi

# ----------------------------------------------------------------------------- report
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)
{
  echo
  if [ -n "$COFFRE_GIVEN" ]; then BUILT="binary $C"; else BUILT="git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"; fi
  echo "coffre prune at scale, $(date -Is), $(nproc) cores, $("$C" --version 2>/dev/null), $BUILT"
  echo "CHUNKS=$CHUNKS: big $BIG_REGIONS regions x (1 + $BIG_REBACKUPS), db $DB_REGIONS regions x $DB_SNAPS (churn ${DB_CHURN}‰), forget keeps big 1, db $DB_KEEP; generator $GEN_MBS MB/s"
  echo "repository before prune: $SIZE0 bytes in $PACKS0 packs; after: $SIZE1 bytes in $PACKS1 packs"
  echo "load average at start: $LOAD0, at end: $LOAD1 (other work on the machine inflates wall times)"
  echo "CPU % = coffre's (user+sys)/wall (200% = both cores); the generator runs outside the timing"
  echo
  python3 - "$RESULTS" "$OUT" <<'PY'
import csv, json, os, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
out = sys.argv[2]
# the db backups: one summary row (sum of wall and CPU, max RSS)
agg, table = None, []
for r in rows:
    if r["step"].startswith("backup db #"):
        if agg is None:
            agg = dict(r, step="backup db", n=0)
            agg.update(input_bytes=0, wall_s=0.0, user_s=0.0, sys_s=0.0, maxrss_kib=0, rc="0")
            table.append(agg)
        agg["n"] += 1
        agg["input_bytes"] += int(r["input_bytes"])
        for k in ("wall_s", "user_s", "sys_s"):
            agg[k] += float(r[k])
        agg["maxrss_kib"] = max(agg["maxrss_kib"], int(r["maxrss_kib"]))
        if r["rc"] != "0":
            agg["rc"] = r["rc"]
    else:
        table.append(r)
if agg:
    agg["step"] = "backup db x%d (sum; max RSS)" % agg["n"]
hdr = ["step", "input GB", "wall s", "MB/s", "CPU %", "max RSS MiB", "rc"]
lines = []
for r in table:
    wall = float(r["wall_s"]); inb = int(r["input_bytes"])
    cpu = (float(r["user_s"]) + float(r["sys_s"])) / max(wall, 1e-3) * 100
    lines.append([r["step"], "%.2f" % (inb / 1e9) if inb else "-", "%.2f" % wall,
                  "%.0f" % (inb / 1e6 / max(wall, 1e-3)) if inb else "-", "%.0f" % cpu,
                  "%.0f" % (int(r["maxrss_kib"]) / 1024), r["rc"]])
w = [max(len(str(x)) for x in col) for col in zip(hdr, *lines)]
fmt = lambda cells: "| " + " | ".join(str(c).ljust(w[i]) if i == 0 else str(c).rjust(w[i]) for i, c in enumerate(cells)) + " |"
print(fmt(hdr))
print("|" + "|".join("-" * (n + 2) for n in w) + "|")
for l in lines:
    print(fmt(l))
print()
bk = [json.loads(l) for l in open(os.path.join(out, "backups.jsonl")) if l.strip()]
new = sum(b["chunks_new"] for b in bk)
print("backups: %d snapshots, %d new chunks (%.1f GB read, %.2f GB stored)" % (
    len(bk), new, sum(b["bytes_read"] for b in bk) / 1e9, sum(b["bytes_stored"] for b in bk) / 1e9))
def j(name):
    p = os.path.join(out, name)
    return json.load(open(p)) if os.path.exists(p) and os.path.getsize(p) else {}
d0, d1, p, p2 = j("prune_dry0.json"), j("prune_dry1.json"), j("prune.json"), j("prune2.json")
if d0 and d1:
    print("blobs: %d live before forget, %d after (%.1f%% unreferenced)" % (
        d0["live_blobs"], d1["live_blobs"], 100 * (1 - d1["live_blobs"] / d0["live_blobs"])))
for name, x in (("prune --dry-run (all live)", d0), ("prune --dry-run (after forget)", d1),
                ("prune", p), ("prune again", p2)):
    if x:
        print("%s: %s" % (name, json.dumps(x, sort_keys=True)))
wall = {r["step"]: float(r["wall_s"]) for r in rows}
if "prune" in wall and "prune --dry-run (after forget)" in wall:
    d = wall["prune --dry-run (after forget)"]
    print("prune phases: index sync + mark + plan ~ %.1f s (the dry run), repack + delete ~ %.1f s (the rest)" % (
        d, wall["prune"] - d))
prss = [int(r["maxrss_kib"]) for r in rows if r["step"].startswith("prune")]
if prss:
    m = max(prss) / 1024
    print("peak RSS of prune: %.0f MiB (target < 300 MiB: %s)" % (m, "yes" if m < 300 else "NO"))
PY
} | tee "$DATA/report.md"

if [ "$KEEP" != 1 ]; then
  rm -rf "$REPO" "$GEN" "$TF"
  log "repository removed (KEEP=1 keeps it)"
fi
if [ "$FAIL" != 0 ]; then
  log "some steps failed or did not verify; see $LOG"
  exit 1
fi

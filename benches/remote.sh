#!/usr/bin/env bash
# Remote (S3) repositories, end to end: coffre sync against plain S3 uploads of the same files,
# and restores straight from the bucket with a warm and a cold (rebuilt) local index.
#
#   bash benches/remote.sh                 build, start s3s-fs, generate data (once), run, print a table
#   SIZE_MB=500 SKIP_BUILD=1 bash benches/remote.sh
#
# Server: s3s-fs (~/.cargo/bin/s3s-fs, or S3S_FS=PATH; `cargo install s3s-fs --version 0.14.1
# --features binary --locked`) on a free 127.0.0.1 port, random keys, data in a temp dir under
# $WORK, killed on exit (only the PID this script started). One bucket, coffre-bench. s3s-fs writes
# each object as a plain file (no fsync) and keeps the MD5 of every PUT; it shares the 2 cores with
# the client, so every S3 figure here includes the server's work.
#
# Input (python3, deterministic, kept in $WORK): SIZE_MB MiB of a "dump" made of 1-8 MiB segments,
# RANDOM_PCT % of them random bytes (incompressible, like bytea/compressed columns), the rest text:
# pgbench-like COPY rows (~100x compressible), log lines and CSV rows (~3-6x).
#
# Steps, each timed with GNU time (wall, user+sys, max RSS of the largest process):
#   reference  coffre backup --stdin of the input into a fresh local repository;
#              cp -r of the repository directory (local disk, page cache, no fsync)
#   baselines  the objects sync sends (config, keys/, packs/, snapshots/) uploaded with a plain S3
#              client at the same parallelism (JOBS): aws s3 cp --recursive (awscli from pip;
#              installed if missing, skipped if that fails; path style, max_concurrent_requests=JOBS,
#              its default multipart above 8 MiB) and curl --aws-sigv4 -T, one file per curl,
#              xargs -P JOBS; and curl again, each object PUT, then GET back and cmp'd, which is the
#              work sync does (it reads every object it copied back and compares it)
#   sync       coffre sync --to s3://coffre-bench/coffre --jobs JOBS --json (MB/s of bytes_sent),
#              then again with nothing to send
#   restore    coffre --repo s3://... dump latest > /dev/null with the index cached (warm);
#              time to first byte and total through a pipe, with a fresh empty COFFRE_CACHE_DIR
#              (cold: the index is rebuilt from the packs' headers on the bucket) and warm;
#              peak RSS of the coffre process itself (wait4); as references, the bucket's copy
#              downloaded with aws s3 cp --recursive and with curl (xargs -P JOBS, to /dev/null),
#              and a dump from the local repository
# Restored streams are compared with the input (cmp), cold and warm, outside the timings; a
# mismatch or any failed step stops the script with exit 1.
#
# Env: SIZE_MB (1000), RANDOM_PCT (40), JOBS (4), WORK (/tmp/coffre-remote; report in
#      $WORK/report.md, TSV in $WORK/remote.tsv, log in $WORK/remote.log), COFFRE (default
#      target/release/coffre of this checkout, built unless SKIP_BUILD=1), S3S_FS, NO_AWS=1 (skip
#      awscli), KEEP=1 (keep the repository and the server's data afterwards).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SIZE_MB="${SIZE_MB:-1000}"
RANDOM_PCT="${RANDOM_PCT:-40}"
JOBS="${JOBS:-4}"
WORK="${WORK:-/tmp/coffre-remote}"
COFFRE_GIVEN="${COFFRE:+1}"
COFFRE="${COFFRE:-$ROOT/target/release/coffre}"
S3S_FS="${S3S_FS:-$HOME/.cargo/bin/s3s-fs}"
REPO="$WORK/repo"
INPUT="$WORK/input-v1-$SIZE_MB-$RANDOM_PCT.bin"
RESULTS="$WORK/remote.tsv"
LOG="$WORK/remote.log"
BUCKET="coffre-bench"
unset COFFRE_REPO COFFRE_PASSWORD_FILE COFFRE_PASSWORD_COMMAND COFFRE_CONFIG
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_DEFAULT_REGION
export COFFRE_PASSWORD="remote-bench-password-not-secret"

# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"
die() {
  log "ERROR: $*"
  [ -f "$LOG" ] && { log "last lines of $LOG:"; tail -n 15 "$LOG" >&2; }
  exit 1
}

# ----------------------------------------------------------------------------- tools
need_gnu_time
command -v python3 >/dev/null || die "python3 is needed (data, free port, timing, table)"
command -v curl >/dev/null || die "curl is needed (the curl baseline)"
[ -x "$S3S_FS" ] || die "no s3s-fs at $S3S_FS: cargo install s3s-fs --version 0.14.1 --features binary --locked"

AWS=""
if [ "${NO_AWS:-0}" != 1 ]; then
  if command -v aws >/dev/null && aws --version >/dev/null 2>&1; then
    AWS="$(command -v aws)"
  else
    log "installing awscli (pip)"
    if python3 -m pip install -q awscli >/dev/null 2>&1 ||
      python3 -m pip install -q --break-system-packages awscli >/dev/null 2>&1; then
      hash -r
      AWS="$(command -v aws || true)"
    fi
    [ -n "$AWS" ] || log "WARNING: no awscli; the aws baseline is skipped (curl only)"
  fi
fi

build_coffre
C="$COFFRE"

mkdir -p "$WORK"
: >"$LOG"

# ----------------------------------------------------------------------------- data
if [ ! -f "$INPUT" ]; then
  rm -f "$WORK"/input-v1-*.bin
  log "generating $SIZE_MB MiB of input ($RANDOM_PCT % random segments) in $INPUT"
  python3 - "$INPUT.tmp" "$SIZE_MB" "$RANDOM_PCT" <<'PY'
import random, sys

path, mb, pct = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
target = mb << 20
r = random.Random(0xC0FFEE)
WORDS = ("the of and to in is for on that with as by at from this be are was it an or not which "
         "backup restore snapshot chunk index database table row column value commit transaction "
         "error warning info debug request response user account balance server client latency "
         "throughput cache memory disk network packet retry").split()
LEVELS = ("INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR")
MODS = ("api", "db", "auth", "worker")
FILLER = " " * 84
state = {"aid": 1, "t": 1700000000, "id": 1}

def pgbench(n):
    out = []; size = 0; aid = state["aid"]
    while size < n:
        bal = r.randrange(-5000, 5000) if r.random() < 0.01 else 0
        line = "%d\t%d\t%d\t%s\n" % (aid, (aid - 1) // 100000 + 1, bal, FILLER)
        out.append(line); size += len(line); aid += 1
    state["aid"] = aid
    return "".join(out).encode()[:n]

def logs(n):
    out = []; size = 0; t = state["t"]
    while size < n:
        t += r.randrange(5)
        line = "%d\t%s\t[%s] req=%08x user=%d %s %s %s dur=%dms\n" % (
            t, LEVELS[r.randrange(6)], MODS[r.randrange(4)], r.getrandbits(32), r.randrange(100000),
            r.choice(WORDS), r.choice(WORDS), r.choice(WORDS), r.randrange(2000))
        out.append(line); size += len(line)
    state["t"] = t
    return "".join(out).encode()[:n]

def csv(n):
    out = []; size = 0; i = state["id"]
    while size < n:
        name = r.choice(WORDS) + r.choice(WORDS)
        line = "%d\t%s\t%s%d@example.com\t%d.%02d\t2024-%02d-%02d\t%s\n" % (
            i, name, name, r.randrange(1000), r.randrange(100000), r.randrange(100),
            r.randrange(1, 13), r.randrange(1, 29), ("ok", "pending", "failed")[r.randrange(3)])
        out.append(line); size += len(line); i += 1
    state["id"] = i
    return "".join(out).encode()[:n]

TEXT = (pgbench, logs, csv)
with open(path, "wb") as f:
    head = b"--\n-- PostgreSQL database dump (coffre benches/remote.sh)\n--\n\nCOPY public.mixed (data) FROM stdin;\n"
    f.write(head); size = len(head); k = 0
    while size < target:
        n = min(r.randrange(1, 9) << 20, target - size)
        if r.randrange(100) < pct:
            b = r.randbytes(n)
        else:
            b = TEXT[k % 3](n); k += 1
        f.write(b); size += len(b)
PY
  mv "$INPUT.tmp" "$INPUT"
fi
INB=$(stat -c %s "$INPUT")

# ----------------------------------------------------------------------------- server
SRV="$(mktemp -d "$WORK/s3.XXXXXX")"
S3DATA="$SRV/data"
S3PID=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$S3PID" ]; then
    kill "$S3PID" 2>/dev/null || true
    wait "$S3PID" 2>/dev/null || true
  fi
  if [ "${KEEP:-0}" != 1 ]; then
    rm -rf "$SRV" "$REPO" "$WORK/repo-copy" "$WORK/download" "$WORK"/cache-*
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$S3DATA/$BUCKET"   # s3s-fs's CreateBucket is this mkdir
chmod 700 "$SRV"
AK="CFB$(python3 -c 'import secrets; print(secrets.token_hex(9).upper())')"
SK="$(python3 -c 'import secrets; print(secrets.token_hex(20))')"
PORT=""
for _ in 1 2 3 4 5; do
  p="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  # the secret is on s3s-fs's command line (it has no other way to take it): throwaway keys only
  RUST_LOG=info "$S3S_FS" --host 127.0.0.1 --port "$p" --access-key "$AK" --secret-key "$SK" "$S3DATA" \
    </dev/null >"$SRV/server.log" 2>&1 &
  S3PID=$!
  for _ in $(seq 200); do
    grep -q "server is running at http://127.0.0.1:$p" "$SRV/server.log" 2>/dev/null && { PORT=$p; break; }
    kill -0 "$S3PID" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$PORT" ] && break
  kill "$S3PID" 2>/dev/null || true
  wait "$S3PID" 2>/dev/null || true
  S3PID=""
done
[ -n "$PORT" ] || { cat "$SRV/server.log" >&2; die "s3s-fs did not start"; }
ENDPOINT="http://127.0.0.1:$PORT"
log "s3s-fs (pid $S3PID) at $ENDPOINT, data in $S3DATA"

# coffre and awscli read the same variables; awscli's config: path style, same parallelism
umask 077
cat >"$SRV/aws.config" <<EOF
[default]
region = us-east-1
s3 =
    addressing_style = path
    max_concurrent_requests = $JOBS
EOF
printf 'user = "%s:%s"\n' "$AK" "$SK" >"$SRV/curl.config"
umask 022
# curl with SigV4, the keys from a config file (not the command line); Debian 12's curl 7.88 does
# not send x-amz-content-sha256, which s3s requires
S3CURL="$SRV/s3curl"
printf '#!/bin/sh\nexec curl -sS --fail -K "%s" --aws-sigv4 aws:amz:us-east-1:s3 -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@"\n' \
  "$SRV/curl.config" >"$S3CURL"
chmod 700 "$S3CURL"
export AWS_ACCESS_KEY_ID="$AK" AWS_SECRET_ACCESS_KEY="$SK" AWS_REGION=us-east-1 AWS_ENDPOINT_URL="$ENDPOINT"
export AWS_CONFIG_FILE="$SRV/aws.config" AWS_SHARED_CREDENTIALS_FILE=/dev/null

# ----------------------------------------------------------------------------- measurement
TF="$WORK/time.tmp"
printf 'step\tbytes\twall_s\tuser_s\tsys_s\tmaxrss_kib\tttfb_s\tnote\n' >"$RESULTS"

# record NAME BYTES WALL USER SYS RSS_KIB TTFB NOTE
record() {
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"
}

# step NAME BYTES STDIN STDOUT CMD... : GNU time; a failure stops the script
step() {
  local name=$1 bytes=$2 in=$3 out=$4; shift 4
  local rc=0 wall usr sys rss
  sync
  echo "=== $name: $*" >>"$LOG"
  /usr/bin/time -f '%e %U %S %M' -o "$TF" "$@" <"$in" >"$out" 2>>"$LOG" || rc=$?
  read -r wall usr sys rss <<<"$(tail -1 "$TF")"
  log "$name: ${wall}s (user ${usr}s sys ${sys}s) rss=${rss}KiB rc=$rc"
  [ "$rc" = 0 ] || die "$name failed (rc=$rc)"
  STEP_WALL=$wall STEP_USR=$usr STEP_SYS=$sys STEP_RSS=$rss
}

# first-byte timer: runs CMD with stdout on a pipe (1 MiB), reads it to the end, prints
# "ttfb total bytes user sys maxrss_kib rc" of CMD itself (wait4: the coffre process, not a shell)
cat >"$WORK/ttfb.py" <<'PY'
import fcntl, os, subprocess, sys, time
cmd = sys.argv[1:]
t0 = time.monotonic()
p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, bufsize=0)
fd = p.stdout.fileno()
try:
    fcntl.fcntl(fd, 1031, 1 << 20)  # F_SETPIPE_SZ
except OSError:
    pass
first = None; n = 0
while True:
    b = os.read(fd, 1 << 20)
    if not b:
        break
    if first is None:
        first = time.monotonic() - t0
    n += len(b)
_, status, ru = os.wait4(p.pid, 0)
total = time.monotonic() - t0
rc = os.waitstatus_to_exitcode(status)
p.returncode = rc
print("%.3f %.3f %d %.2f %.2f %d %d" % (first if first is not None else -1, total, n,
      ru.ru_utime, ru.ru_stime, ru.ru_maxrss, rc))
PY

# first_byte NAME CACHE_DIR : time to first byte and total of a dump from the bucket
first_byte() {
  local name=$1 cache=$2 ttfb total n usr sys rss rc
  sync
  echo "=== $name (COFFRE_CACHE_DIR=$cache)" >>"$LOG"
  local res
  res="$(COFFRE_CACHE_DIR="$cache" python3 "$WORK/ttfb.py" "$C" --repo "$S3URL" dump -q --name dump latest \
    2>>"$LOG")" || die "$name: the timer failed"
  read -r ttfb total n usr sys rss rc <<<"$res"
  log "$name: first byte ${ttfb}s, total ${total}s, $n bytes (user ${usr}s sys ${sys}s) rss=${rss}KiB rc=$rc"
  [ "$rc" = 0 ] || die "$name failed (rc=$rc)"
  [ "$n" = "$INB" ] || die "$name wrote $n bytes, the input has $INB"
  record "$name" "$INB" "$total" "$usr" "$sys" "$rss" "$ttfb" "$3"
}

sizeof_objects() { # total bytes of the objects sync sends from the local repository
  (cd "$REPO" && find config keys packs snapshots -type f -printf '%s\n') | awk '{s+=$1} END {print s+0}'
}
nobjects() { (cd "$REPO" && find config keys packs snapshots -type f | wc -l); }
remote_bytes() { # PREFIX : bytes and objects under BUCKET/PREFIX on the server's disk
  find "$S3DATA/$BUCKET/$1" -type f -printf '%s\n' | awk '{s+=$1; n++} END {print s+0, n+0}'
}
jget() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

log "warming the page cache"
cat "$INPUT" >/dev/null

# ---- reference: backup into a fresh local repository, and cp -r of it
rm -rf "$REPO" "$WORK/repo-copy" "$WORK/download" "$WORK"/cache-*
"$C" init -q --repo "$REPO" --kdf-memory 8 >>"$LOG" 2>&1 || die "init failed"
step "local: backup --stdin" "$INB" "$INPUT" /dev/null "$C" backup -q --repo "$REPO" --name dump --stdin
record "local: backup --stdin" "$INB" "$STEP_WALL" "$STEP_USR" "$STEP_SYS" "$STEP_RSS" "" ""
OBJB=$(sizeof_objects)
OBJN=$(nobjects)
REPOB=$(du -sb "$REPO" | cut -f1)
log "repository: $REPOB bytes; the $OBJN objects sync sends: $OBJB bytes"

step "local: cp -r repository" "$REPOB" /dev/null /dev/null cp -r "$REPO" "$WORK/repo-copy"
record "local: cp -r repository (reference)" "$REPOB" "$STEP_WALL" "$STEP_USR" "$STEP_SYS" "$STEP_RSS" "" "page cache, no fsync"
rm -rf "$WORK/repo-copy"

step "local: dump > /dev/null" "$INB" /dev/null /dev/null "$C" --repo "$REPO" dump -q --name dump latest
record "local: dump > /dev/null (reference)" "$INB" "$STEP_WALL" "$STEP_USR" "$STEP_SYS" "$STEP_RSS" "" ""

# ---- baselines: the same objects with plain S3 clients
if [ -n "$AWS" ]; then
  step "aws s3 cp --recursive (upload)" "$OBJB" /dev/null /dev/null "$AWS" s3 cp --recursive --only-show-errors \
    --exclude '*' --include 'config' --include 'keys/*' --include 'packs/*' --include 'snapshots/*' \
    "$REPO" "s3://$BUCKET/aws"
  read -r got n <<<"$(remote_bytes aws)"
  [ "$got" = "$OBJB" ] && [ "$n" = "$OBJN" ] || die "aws uploaded $got bytes in $n objects, expected $OBJB in $OBJN"
  record "aws s3 cp --recursive, upload" "$OBJB" "$STEP_WALL" "$STEP_USR" "$STEP_SYS" "$STEP_RSS" "" \
    "$OBJN objects, $JOBS at once, $("$AWS" --version 2>&1 | cut -d' ' -f1)"
  rm -rf "${S3DATA:?}/$BUCKET/aws"
fi

(cd "$REPO" && find config keys packs snapshots -type f -print0) >"$WORK/files.list"
step "curl -T, xargs -P $JOBS (upload)" "$OBJB" "$WORK/files.list" /dev/null \
  xargs -0 -P "$JOBS" -n 1 bash -c 'cd "$0" && exec "$1" -o /dev/null -T "$3" "$2/$3"' \
  "$REPO" "$S3CURL" "$ENDPOINT/$BUCKET/curl"
read -r got n <<<"$(remote_bytes curl)"
[ "$got" = "$OBJB" ] && [ "$n" = "$OBJN" ] || die "curl uploaded $got bytes in $n objects, expected $OBJB in $OBJN"
record "curl --aws-sigv4 -T, xargs -P $JOBS, upload" "$OBJB" "$STEP_WALL" "$STEP_USR" "$STEP_SYS" "$STEP_RSS" "" \
  "one curl per object"
rm -rf "${S3DATA:?}/$BUCKET/curl"

step "curl -T + GET back + cmp, xargs -P $JOBS" "$OBJB" "$WORK/files.list" /dev/null \
  xargs -0 -P "$JOBS" -n 1 bash -c 'set -o pipefail; cd "$0" && "$1" -o /dev/null -T "$3" "$2/$3" &&
    "$1" "$2/$3" | cmp -s - "$3"' "$REPO" "$S3CURL" "$ENDPOINT/$BUCKET/curlv"
read -r got n <<<"$(remote_bytes curlv)"
[ "$got" = "$OBJB" ] && [ "$n" = "$OBJN" ] || die "curl uploaded $got bytes in $n objects, expected $OBJB in $OBJN"
record "curl -T, then GET back and cmp, xargs -P $JOBS" "$OBJB" "$STEP_WALL" "$STEP_USR" "$STEP_SYS" "$STEP_RSS" "" \
  "what sync does: 2x the bytes on the wire"
rm -rf "${S3DATA:?}/$BUCKET/curlv"

# ---- coffre sync
S3URL="s3://$BUCKET/coffre"
step "coffre sync" 0 /dev/null "$WORK/sync1.json" "$C" sync -q --repo "$REPO" --to "$S3URL" --jobs "$JOBS" --json
SENT=$(jget "$WORK/sync1.json" bytes_sent)
record "coffre sync --to s3://… --jobs $JOBS" "$SENT" "$STEP_WALL" "$STEP_USR" "$STEP_SYS" "$STEP_RSS" "" \
  "$(jget "$WORK/sync1.json" objects_sent) objects, each read back and compared"
read -r got n <<<"$(remote_bytes coffre)"
log "sync: bytes_sent $SENT; bucket holds $got bytes in $n objects (local objects: $OBJB in $OBJN)"
[ "$SENT" -ge "$OBJB" ] || die "sync sent $SENT bytes, fewer than the repository's $OBJB"

step "coffre sync again" 0 /dev/null "$WORK/sync2.json" "$C" sync -q --repo "$REPO" --to "$S3URL" --jobs "$JOBS" --json
[ "$(jget "$WORK/sync2.json" bytes_sent)" = 0 ] || die "the second sync sent $(jget "$WORK/sync2.json" bytes_sent) bytes"
record "coffre sync again (nothing to send)" 0 "$STEP_WALL" "$STEP_USR" "$STEP_SYS" "$STEP_RSS" "" \
  "$(jget "$WORK/sync2.json" objects_present) objects present"

# ---- restores from the bucket
COLD="$WORK/cache-cold"
rm -rf "$COLD" && mkdir -p "$COLD"
first_byte "remote: dump, cold (no index), first byte" "$COLD" "index rebuilt from the bucket"
first_byte "remote: dump, warm index, first byte" "$COLD" "through a pipe"
step "remote: dump > /dev/null, warm" "$INB" /dev/null /dev/null env COFFRE_CACHE_DIR="$COLD" \
  "$C" --repo "$S3URL" dump -q --name dump latest
record "remote: dump > /dev/null, warm index" "$INB" "$STEP_WALL" "$STEP_USR" "$STEP_SYS" "$STEP_RSS" "" ""

if [ -n "$AWS" ]; then
  step "aws s3 cp --recursive (download)" "$got" /dev/null /dev/null "$AWS" s3 cp --recursive --only-show-errors \
    "$S3URL" "$WORK/download"
  record "aws s3 cp --recursive, download of the copy (reference)" "$got" "$STEP_WALL" "$STEP_USR" "$STEP_SYS" \
    "$STEP_RSS" "" "$n objects"
  rm -rf "$WORK/download"
fi
step "curl GET, xargs -P $JOBS (download)" "$OBJB" "$WORK/files.list" /dev/null \
  xargs -0 -P "$JOBS" -n 1 bash -c 'exec "$0" -o /dev/null "$1/$2"' "$S3CURL" "$ENDPOINT/$BUCKET/coffre"
record "curl GET, xargs -P $JOBS, download of the copy (reference)" "$OBJB" "$STEP_WALL" "$STEP_USR" "$STEP_SYS" \
  "$STEP_RSS" "" "to /dev/null"

# ---- verification, outside the timings
log "verifying: warm dump from the bucket == input"
COFFRE_CACHE_DIR="$COLD" "$C" --repo "$S3URL" dump -q --name dump latest 2>>"$LOG" | cmp - "$INPUT" ||
  die "MISMATCH: the warm dump from $S3URL differs from the input"
log "verifying: cold dump from the bucket == input"
rm -rf "$WORK/cache-verify" && mkdir -p "$WORK/cache-verify"
COFFRE_CACHE_DIR="$WORK/cache-verify" "$C" --repo "$S3URL" dump -q --name dump latest 2>>"$LOG" | cmp - "$INPUT" ||
  die "MISMATCH: the cold dump from $S3URL differs from the input"
log "verified: both dumps equal the input ($INB bytes)"

# ----------------------------------------------------------------------------- report
COMMIT="$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')"
{
  echo
  echo "coffre remote (S3) benchmark, $(date -Is), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')),"
  echo "coffre $COMMIT, server $("$S3S_FS" --version 2>/dev/null | head -1) on 127.0.0.1 (same machine)"
  echo "input: $INB bytes ($SIZE_MB MiB, $RANDOM_PCT % random segments); repository $REPOB bytes, $OBJN objects ($OBJB bytes) to upload"
  echo "MB = 10^6 bytes; MB/s = bytes / wall (uploads: bytes sent; dumps: the restored stream);"
  echo "CPU = (user+sys)/wall of the client (the server's CPU is not counted but shares the 2 cores);"
  echo "RSS = peak resident set of the client (MiB); first byte = seconds until the dump's first byte on a pipe."
  echo
  python3 - "$RESULTS" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
hdr = ["step", "MB", "wall s", "MB/s", "first byte s", "CPU %", "RSS MiB", "note"]
out = []
for r in rows:
    wall = float(r["wall_s"]); b = int(r["bytes"] or 0)
    cpu = (float(r["user_s"]) + float(r["sys_s"])) / max(wall, 1e-3) * 100
    out.append([r["step"], "%.0f" % (b / 1e6) if b else "-", "%.2f" % wall,
                "%.0f" % (b / 1e6 / max(wall, 1e-3)) if b else "-",
                "%.2f" % float(r["ttfb_s"]) if r["ttfb_s"] else "-",
                "%.0f" % cpu, "%.0f" % (int(r["maxrss_kib"]) / 1024), r["note"]])
w = [max(len(str(x)) for x in col) for col in zip(hdr, *out)]
line = lambda cells: "| " + " | ".join(str(c).ljust(w[i]) if i in (0, 7) else str(c).rjust(w[i]) for i, c in enumerate(cells)) + " |"
print(line(hdr))
print("|" + "|".join("-" * (n + 2) for n in w) + "|")
for o in out:
    print(line(o))
PY
} | tee "$WORK/report.md"

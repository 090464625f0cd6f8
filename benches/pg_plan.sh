#!/usr/bin/env bash
# End-to-end benchmark of coffre's PostgreSQL path (a plan with one postgres source) against the
# shell scripts our users run today (pg_dump -Fc / pg_dump | gzip, pg_restore, gunzip | psql).
#
#   bash benches/pg_plan.sh                 build, start a throwaway PostgreSQL 15, run, print a table
#   SCALE=20 SKIP_BUILD=1 bash benches/pg_plan.sh
#
# A throwaway cluster (initdb as `postgres` in a temp dir, Unix socket in that dir, 127.0.0.1 on a
# free port, trust auth, fsync=off) is loaded with `pgbench -i -s $SCALE` into database `app`.
# Steps, each timed with GNU time (wall, user+sys, max RSS):
#   baseline  pg_dump -Fc (its own compression) to a file; pg_dump | gzip to a file
#   coffre    init; backup --config plan.toml (first); pgbench -t 2000 -c 2 (untimed);
#             backup again (incremental: bytes new/stored from --json)
#   restore   baseline pg_restore -d (and -j 2) into a created database, gunzip | psql;
#             coffre restore latest --only postgres/app --to …/app_copyN --yes --no-safety-snapshot
#             (and --jobs 2)
#   drill     coffre drill latest --only postgres/app (coffre's own throwaway cluster)
# After each restore, outside the timings: count(*) of pgbench_accounts (and pgbench_history)
# compared with `app`, then the copy is dropped (disk).
#
# MB/s = the size of the uncompressed custom archive (the coffre entry's size, i.e. what
# `pg_dump -Fc --compress=0` writes) / wall seconds, the same reference for every dump and restore
# step so that rows compare. RSS is the largest single client process (GNU time reports the max
# over the process tree, not the sum); the PostgreSQL server's own work is in the wall time only.
# Notes: coffre restore also compares row counts and runs ANALYZE (pg_restore does neither);
# coffre restore --jobs N first writes the archive to a temp file (pg_restore --jobs needs to seek).
# The cluster runs with fsync=off for every tool alike; a CHECKPOINT and sync precede each step.
# One run; the server-bound steps vary by 10-30 % from run to run on a 2-core VM.
#
# Env: SCALE (50), DATA (/tmp/coffre-pgbench; TSV in $DATA/pg_plan.tsv, log in $DATA/pg_plan.log),
#      PGBIN (/usr/lib/postgresql/15/bin), COFFRE (default target/release/coffre of this checkout,
#      built unless SKIP_BUILD=1), KEEP_DATA=1 (keep dump files and repository afterwards).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCALE="${SCALE:-50}"
DATA="${DATA:-/tmp/coffre-pgbench}"
PGBIN="${PGBIN:-/usr/lib/postgresql/15/bin}"
COFFRE_GIVEN="${COFFRE:+1}"
COFFRE="${COFFRE:-$ROOT/target/release/coffre}"
RESULTS="$DATA/pg_plan.tsv"
RAW="$DATA/pg_plan.raw.tsv"
LOG="$DATA/pg_plan.log"
PLAN="$DATA/plan.toml"
NAME="postgres/app"
# the plan names the repository and its password file; nothing from the caller's environment
unset COFFRE_REPO COFFRE_PASSWORD COFFRE_PASSWORD_FILE COFFRE_PASSWORD_COMMAND COFFRE_CONFIG

# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"

# ----------------------------------------------------------------------------- tools
[ "$(id -u)" = 0 ] || die "run as root (initdb/pg_ctl run as the postgres user through runuser)"
id postgres >/dev/null 2>&1 || die "no postgres user (apt-get install postgresql)"
[ -x "$PGBIN/initdb" ] || die "no PostgreSQL server binaries in $PGBIN (set PGBIN)"
need_gnu_time
command -v python3 >/dev/null || die "python3 is needed (free port, JSON, table)"

build_coffre
C="$COFFRE"

mkdir -p "$DATA"
chmod 700 "$DATA"
rm -rf "$DATA/repo" "$DATA"/*.dump "$DATA"/*.sql.gz "$DATA"/*.json
: >"$LOG"

# ----------------------------------------------------------------------------- cluster
PGDIR="$(mktemp -d /tmp/coffre-pgbench-pg.XXXXXX)"
PGDATA_DIR="$PGDIR/data"
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -f "$PGDATA_DIR/postmaster.pid" ]; then
    log "stopping the throwaway cluster"
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m immediate -w stop >>"$LOG" 2>&1 || {
      # only the postmaster of our own data directory
      local pid
      pid="$(head -1 "$PGDATA_DIR/postmaster.pid" 2>/dev/null || true)"
      [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
    }
  fi
  rm -rf "$PGDIR"
  if [ "${KEEP_DATA:-0}" != 1 ]; then
    rm -rf "$DATA/repo" "$DATA"/*.dump "$DATA"/*.sql.gz
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

chown postgres:postgres "$PGDIR"
chmod 700 "$PGDIR"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
log "initdb in $PGDIR, port $PORT"
runuser -u postgres -- "$PGBIN/initdb" -D "$PGDATA_DIR" -A trust -U postgres --no-sync -E UTF8 >>"$LOG" 2>&1
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -w -l "$PGDIR/server.log" \
  -o "-k $PGDIR -p $PORT -c listen_addresses=127.0.0.1 -c fsync=off" start >>"$LOG" 2>&1

URL="postgresql://postgres@127.0.0.1:$PORT"
PGTOOLS=(-h 127.0.0.1 -p "$PORT" -U postgres)
export PGCONNECT_TIMEOUT=10
psql_q() { # psql_q DB SQL : one value
  "$PGBIN/psql" "${PGTOOLS[@]}" -X -A -t -v ON_ERROR_STOP=1 -d "$1" -c "$2"
}

log "pgbench -i -s $SCALE app"
"$PGBIN/createdb" "${PGTOOLS[@]}" app
t0=$SECONDS
"$PGBIN/pgbench" "${PGTOOLS[@]}" -i -s "$SCALE" -q app >>"$LOG" 2>&1
DBSIZE="$(psql_q app "SELECT pg_database_size('app')")"
log "loaded in $((SECONDS - t0)) s: database app is $((DBSIZE / 1000000)) MB"

# ----------------------------------------------------------------------------- repository and plan
umask 077
PWFILE="$DATA/password"
printf 'pg-plan-bench-password-not-secret\n' >"$PWFILE"
cat >"$PLAN" <<EOF
[repository]
path = "repo"
password-file = "password"

[[source]]
name = "$NAME"
kind = "postgres"
url = "$URL/app"
format = "custom"
bin-dir = "$PGBIN"
EOF
umask 022

# ----------------------------------------------------------------------------- measurement
TF="$DATA/time.tmp"
printf 'step\twall_s\tuser_s\tsys_s\tmaxrss_kib\tout_bytes\trc\tref\n' >"$RAW"
LAST_RC=0

# step NAME REF STDOUT CMD... : time CMD (stdin closed); REF=1 if MB/s of the dump size applies.
# Records out_bytes=0; `out NAME BYTES` sets it afterwards.
step() {
  local name=$1 ref=$2 out=$3; shift 3
  local rc=0 wall usr sys rss
  # start every step from a quiet server: the previous step's dirty pages written out
  psql_q postgres CHECKPOINT >>"$LOG" 2>&1 || true
  sync
  echo "=== $name: $*" >>"$LOG"
  /usr/bin/time -f '%e %U %S %M' -o "$TF" "$@" </dev/null >"$out" 2>>"$LOG" || rc=$?
  read -r wall usr sys rss <<<"$(tail -1 "$TF")"
  printf '%s\t%s\t%s\t%s\t%s\t0\t%s\t%s\n' "$name" "$wall" "$usr" "$sys" "$rss" "$rc" "$ref" >>"$RAW"
  log "$name: ${wall}s (user ${usr}s sys ${sys}s) rss=${rss}KiB rc=$rc"
  [ "$rc" = 0 ] || log "WARNING: $name failed (rc=$rc), see $LOG"
  LAST_RC=$rc
}
out() { # out BYTES : the output size of the last step
  python3 - "$RAW" "$1" <<'PY'
import sys
p, b = sys.argv[1], sys.argv[2]
lines = open(p).read().splitlines()
f = lines[-1].split("\t"); f[5] = b
lines[-1] = "\t".join(f)
open(p, "w").write("\n".join(lines) + "\n")
PY
}
sz() { stat -c %s "$1"; }
reposize() { if [ -d "$DATA/repo" ]; then du -sb "$DATA/repo" | cut -f1; else echo 0; fi; }
jfield() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["entries"][0][sys.argv[2]] if sys.argv[2]=="size" else d[sys.argv[2]])' "$1" "$2"; }

FAIL=0
COUNTS_APP=""
counts() { # counts DB : "accounts history" row counts
  echo "$(psql_q "$1" 'SELECT count(*) FROM pgbench_accounts') $(psql_q "$1" 'SELECT count(*) FROM pgbench_history')"
}
verify() { # verify DB : row counts equal to app's, then drop DB
  local db=$1 got
  got="$(counts "$db" 2>>"$LOG" || echo "unreadable")"
  if [ "$got" = "$COUNTS_APP" ]; then
    log "verified: $db has the rows of app (accounts history: $got)"
  else
    log "MISMATCH: $db has '$got', app has '$COUNTS_APP' (accounts history)"
    FAIL=1
  fi
  "$PGBIN/dropdb" "${PGTOOLS[@]}" --if-exists "$db" >>"$LOG" 2>&1 || true
}

# ---- a. baselines: the shell scripts we replace
step "pg_dump -Fc > file" 1 /dev/null "$PGBIN/pg_dump" "${PGTOOLS[@]}" -Fc -f "$DATA/app.dump" app
out "$(sz "$DATA/app.dump")"
step "pg_dump | gzip > file" 1 /dev/null bash -c 'set -o pipefail; "$0" -h 127.0.0.1 -p "$1" -U postgres app | gzip >"$2"' \
  "$PGBIN/pg_dump" "$PORT" "$DATA/app.sql.gz"
out "$(sz "$DATA/app.sql.gz")"

# ---- b. coffre init + first backup
step "coffre init" 0 /dev/null "$C" init --config "$PLAN"
before=$(reposize)
step "coffre backup (first)" 1 "$DATA/backup1.json" "$C" backup --config "$PLAN" --json -q
out "$(($(reposize) - before))"
[ "$LAST_RC" = 0 ] || die "the first coffre backup failed; see $LOG"
REF="$(jfield "$DATA/backup1.json" size)"
log "first backup: entry size $REF B, new $(jfield "$DATA/backup1.json" bytes_new) B, stored $(jfield "$DATA/backup1.json" bytes_stored) B"

# ---- c. a night of transactions, then the incremental backup
log "pgbench -t 2000 -c 2 app"
"$PGBIN/pgbench" "${PGTOOLS[@]}" -t 2000 -c 2 app >>"$LOG" 2>&1
COUNTS_APP="$(counts app)"
before=$(reposize)
step "coffre backup (after pgbench)" 1 "$DATA/backup2.json" "$C" backup --config "$PLAN" --json -q
out "$(($(reposize) - before))"
INC_NEW="$(jfield "$DATA/backup2.json" bytes_new 2>/dev/null || echo '?')"
INC_STORED="$(jfield "$DATA/backup2.json" bytes_stored 2>/dev/null || echo '?')"
REF2="$(jfield "$DATA/backup2.json" size 2>/dev/null || echo "$REF")"
log "incremental backup: entry size $REF2 B, new $INC_NEW B, stored $INC_STORED B"

# the baseline archives were taken before pgbench ran (accounts count is the same; history is not):
# dump again, untimed, so that every restore below restores the same state
"$PGBIN/pg_dump" "${PGTOOLS[@]}" -Fc -f "$DATA/app.dump" app
"$PGBIN/pg_dump" "${PGTOOLS[@]}" app | gzip >"$DATA/app.sql.gz"

# ---- d. restores
"$PGBIN/createdb" "${PGTOOLS[@]}" app_copy
step "pg_restore -d (created db)" 1 /dev/null "$PGBIN/pg_restore" "${PGTOOLS[@]}" -d app_copy "$DATA/app.dump"
verify app_copy
"$PGBIN/createdb" "${PGTOOLS[@]}" app_copy_j2
step "pg_restore -j 2 -d (created db)" 1 /dev/null "$PGBIN/pg_restore" "${PGTOOLS[@]}" -j 2 -d app_copy_j2 "$DATA/app.dump"
verify app_copy_j2
"$PGBIN/createdb" "${PGTOOLS[@]}" app_sql
step "gunzip | psql (created db)" 1 /dev/null bash -c 'set -o pipefail; gzip -dc "$0" | "$1" -h 127.0.0.1 -p "$2" -U postgres -X -q -v ON_ERROR_STOP=1 -d app_sql >/dev/null' \
  "$DATA/app.sql.gz" "$PGBIN/psql" "$PORT"
verify app_sql
step "coffre restore --to" 1 /dev/null "$C" restore --config "$PLAN" latest --only "$NAME" \
  --to "$URL/app_copy2" --yes --no-safety-snapshot -q
verify app_copy2
step "coffre restore --to --jobs 2" 1 /dev/null "$C" restore --config "$PLAN" latest --only "$NAME" \
  --to "$URL/app_copy3" --yes --no-safety-snapshot --jobs 2 -q
verify app_copy3

# ---- e. drill in coffre's own throwaway cluster
step "coffre drill (throwaway cluster)" 1 "$DATA/drill.json" "$C" drill --config "$PLAN" latest --only "$NAME" --json -q
if [ "$LAST_RC" = 0 ]; then log "drill passed"; else log "drill FAILED (rc=$LAST_RC)"; FAIL=1; fi

# ----------------------------------------------------------------------------- report
echo
GITREV="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
[ -z "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ] || GITREV="$GITREV+dirty"
if [ -n "$COFFRE_GIVEN" ]; then BUILT="binary $C"; else BUILT="built from git $GITREV"; fi
echo "coffre pg_plan, $(date -Is), $(nproc) cores, $("$C" --version 2>/dev/null) $BUILT, $("$PGBIN/postgres" --version)"
echo "pgbench scale $SCALE: database $((DBSIZE / 1000000)) MB; custom archive (uncompressed, the MB/s reference) $((REF2 / 1000000)) MB"
echo "incremental backup after pgbench -t 2000 -c 2: $INC_NEW B new, $INC_STORED B stored"
echo "MB = 10^6 B; MB/s = archive size / wall; maxrss = largest client process (MiB); out = file size"
echo "(baselines) or repository growth (coffre backups); cpu = client user+sys / wall (200% = 2 cores)."
echo
python3 - "$RAW" "$RESULTS" "$REF2" <<'PY'
import csv, sys
raw, tsv, ref = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = list(csv.DictReader(open(raw), delimiter="\t"))
hdr = ["step", "wall_s", "MB_per_s", "maxrss_MB", "out_MB", "cpu_pct", "rc"]
out = []
for r in rows:
    wall = float(r["wall_s"])
    mbs = "%.0f" % (ref / 1e6 / max(wall, 1e-3)) if r["ref"] == "1" else "-"
    ob = int(r["out_bytes"])
    cpu = (float(r["user_s"]) + float(r["sys_s"])) / max(wall, 1e-3) * 100
    out.append([r["step"], "%.2f" % wall, mbs, "%.0f" % (int(r["maxrss_kib"]) / 1024),
                "%.1f" % (ob / 1e6) if ob else "-", "%.0f" % cpu, r["rc"]])
with open(tsv, "w") as f:
    f.write("\t".join(hdr) + "\n")
    for o in out:
        f.write("\t".join(o) + "\n")
w = [max(len(h), *(len(o[i]) for o in out)) for i, h in enumerate(hdr)]
print("  ".join(h.ljust(w[i]) if i == 0 else h.rjust(w[i]) for i, h in enumerate(hdr)))
for o in out:
    print("  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(o)))
PY
echo
echo "TSV: $RESULTS; log: $LOG"
[ "$FAIL" = 0 ] || die "some verifications failed; see $LOG"
log "all restores verified"

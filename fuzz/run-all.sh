#!/usr/bin/env bash
# Run every fuzz target for SECONDS each (default 60), one after the other.
#
#   fuzz/run-all.sh [SECONDS]
#
# Environment:
#   FUZZ_FLAGS    cargo-fuzz build flags (default "-s none": stable toolchain,
#                 no sanitizer; with nightly and "" you get ASan). Debug
#                 assertions and overflow checks are on unless -O is given.
#   FUZZ_TARGETS  space-separated subset of targets (default: all)
#   FUZZ_NICE     niceness (default 10: the machine is shared)
#
# Seeds are (re)written into fuzz/corpus/<target>/ first; each run's log goes to
# fuzz/logs/<target>.log. Crashes land in fuzz/artifacts/<target>/. Exits 1 if
# any target failed.
set -uo pipefail
cd "$(dirname "$0")"

secs=${1:-60}
flags=${FUZZ_FLAGS--s none}
nice_n=${FUZZ_NICE:-10}
mkdir -p logs

# A failed stable probe can leave a bad cache behind (see ENVIRONMENT.md).
if [ -f target/.rustc_info.json ] && grep -q '"success":false' target/.rustc_info.json; then
    rm -f target/.rustc_info.json
fi

nice -n "$nice_n" cargo run -q --release --example seeds || exit 1
# shellcheck disable=SC2086
nice -n "$nice_n" cargo fuzz build $flags || exit 1

targets=${FUZZ_TARGETS:-$(cargo fuzz list)}
failed=()
summary=()
for t in $targets; do
    extra=()
    case $t in
        snapshot|tree|keyfile|config) extra+=("-dict=$PWD/dicts/json.dict") ;;
    esac
    echo "=== $t: ${secs}s"
    # shellcheck disable=SC2086
    nice -n "$nice_n" cargo fuzz run $flags "$t" -- \
        -max_total_time="$secs" -timeout=10 -print_final_stats=1 "${extra[@]}" \
        >"logs/$t.log" 2>&1
    rc=$?
    last=$(grep -E '^#[0-9]+' "logs/$t.log" | tail -n 1)
    runs=$(grep -E '^stat::number_of_executed_units' "logs/$t.log" | awk '{print $2}')
    speed=$(grep -E '^stat::average_exec_per_sec' "logs/$t.log" | awk '{print $2}')
    if [ $rc -eq 0 ]; then
        status=ok
    else
        status="FAILED (exit $rc, see fuzz/logs/$t.log and fuzz/artifacts/$t/)"
        failed+=("$t")
        grep -E -m 5 'panicked at|SUMMARY|Test unit written' "logs/$t.log"
    fi
    summary+=("$(printf '%-12s %-8s runs=%-10s exec/s=%-8s %s' "$t" "$status" "${runs:-?}" "${speed:-?}" "${last#\#}")")
done

echo
echo "=== summary (${secs}s per target)"
printf '%s\n' "${summary[@]}"
[ ${#failed[@]} -eq 0 ] || { echo "failed: ${failed[*]}"; exit 1; }

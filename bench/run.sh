#!/usr/bin/env bash
# Runs the benchmarks of issue 7 against a release build and writes their figures into BENCHMARKS.md.
#
#   bench/run.sh            # the full run (about 15 minutes on a 2-core machine)
#   QUICK=1 bench/run.sh    # smaller sizes, to check that everything runs (about 5 minutes)
#
# Environment:
#   TEOSD=path     the teosd binary the end-to-end scenarios start (default: target/release/teosd)
#   OUT=path       the file to write (default: BENCHMARKS.md at the workspace root)
#   ROWS=n         appointments stored for the big scenarios and benches (default 1,000,000)
#   FLEET=1        also run the PostgreSQL fleet scenarios (issue 12) after the others: add_appointment
#                  load on one and on two instances of a fleet, breach-to-broadcast with ROWS
#                  appointments on PostgreSQL, leader takeover after SIGKILL (about 10 more minutes)
#   FLEET=only     run only the fleet scenarios plus an SQLite load with the same parameters (for a
#                  fair comparison); OUT then defaults to target/bench-fleet.md, so the tables of
#                  BENCHMARKS.md are not replaced by a partial run
#   DATABASE_URL=postgresql://user:pw@host:port/db
#                  the PostgreSQL server of the fleet scenarios (its role may CREATE DATABASE; a fresh
#                  database per scenario); default: a throwaway cluster started by teos-bench
#                  (PostgreSQL's initdb must be installed; that cluster runs with fsync=off)
#   TAKEOVER_TRIALS=n, TAKEOVER_SECONDS=s
#                  leader kills timed (default 20; QUICK: 5) and leader_takeover_seconds of that
#                  scenario (default: teosd's, 10)
#
# The figures go between the "generated" markers of $OUT; text outside them is kept, so notes
# written around the tables survive a re-run. Not part of CI: it takes long and its figures depend
# on the machine. It never touches a running tower: every scenario starts its own bitcoind-sim and
# teosd in temporary directories.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
FLEET=${FLEET:-}
if [[ "$FLEET" == only ]]; then
    OUT=${OUT:-$ROOT/target/bench-fleet.md}
else
    OUT=${OUT:-$ROOT/BENCHMARKS.md}
fi
if [[ -n "${QUICK:-}" ]]; then
    ROWS=${ROWS:-100000}
    LOAD_N=30000
    ROUNDS=3
    CATCHUP=20
    RPC_COUNT=10
    MEMPOOL_ROUNDS=5
    MEMPOOL_SECONDS=10
    TAKEOVER_TRIALS=${TAKEOVER_TRIALS:-5}
else
    ROWS=${ROWS:-1000000}
    LOAD_N=200000
    ROUNDS=10
    CATCHUP=100
    RPC_COUNT=30
    MEMPOOL_ROUNDS=50
    MEMPOOL_SECONDS=60
    TAKEOVER_TRIALS=${TAKEOVER_TRIALS:-20}
fi
SMALL_ROWS=$((ROWS / 10))

echo "== building (release)" >&2
cargo build --release -p teosd -p teos-bench -p bitcoind-sim >&2
BENCH=$ROOT/target/release/teos-bench
TEOSD=${TEOSD:-$ROOT/target/release/teosd}

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
SECTIONS=$WORK/sections.md
ROWS_MD=$WORK/rows.md
: >"$SECTIONS"
: >"$ROWS_MD"

# run TITLE COMMAND...: runs a command, keeps its output for the report and its markdown rows
# ("| ... |" lines) for the summary table, tagged with the section number.
SECTION=0
run() {
    local title=$1
    shift
    SECTION=$((SECTION + 1))
    echo "== $SECTION. $title: $*" >&2
    local log=$WORK/out.$SECTION
    local load_before load_after
    load_before=$(cut -d' ' -f1-3 /proc/loadavg)
    if ! "$@" >"$log" 2>"$WORK/err.$SECTION"; then
        echo "   failed; its stderr:" >&2
        tail -20 "$WORK/err.$SECTION" >&2
        echo "(failed: $(tail -1 "$WORK/err.$SECTION"))" >>"$log"
    fi
    load_after=$(cut -d' ' -f1-3 /proc/loadavg)
    {
        echo "### $SECTION. $title"
        echo
        echo "Load average (1, 5, 15 min) before: $load_before; after: $load_after."
        echo
        echo '```'
        # (a password in a --database-url is not written out)
        echo "${*/#$ROOT\//}" | sed -E 's#(postgres(ql)?://[^:/@]*:)[^@]*@#\1***@#g'
        echo '```'
        echo
        echo '```'
        grep -v '^|' "$log" || true
        echo '```'
        echo
    } >>"$SECTIONS"
    grep '^|' "$log" | sed "s/\$/ [§$SECTION](#$SECTION-$(echo "$title" | tr 'A-Z ' 'a-z-' | tr -cd 'a-z0-9_-')) |/" >>"$ROWS_MD" || true
}

# criterion TITLE PACKAGE BENCH: one criterion bench, one line per benchmark (bencher format).
criterion() {
    local title=$1 package=$2 bench=$3
    run "$title" env TEOS_BENCH_ROWS="$ROWS" cargo bench -q -p "$package" --bench "$bench" -- --output-format bencher
}

if [[ "$FLEET" != only ]]; then
run "Disk sync latency" "$BENCH" --markdown fsync --dir "$WORK"
criterion "Protocol crypto (criterion)" teos-common crypto
criterion "Breach lookup, find_by_locators (criterion)" teosd locator_lookup
criterion "Appointment writes through group commit (criterion)" teosd storage_write
run "getblock of a 4,000-tx block" "$BENCH" --markdown rpc --count "$RPC_COUNT"
run "add_appointment load, empty tower" \
    "$BENCH" --teosd "$TEOSD" --markdown load --connections 16 --appointments "$LOAD_N" --commit-stats
run "add_appointment load, $SMALL_ROWS appointments stored" \
    "$BENCH" --teosd "$TEOSD" --markdown load --connections 16 --appointments "$LOAD_N" --prefill "$SMALL_ROWS"
run "Breach, block processing, memory, catch-up, restarts ($ROWS appointments)" \
    "$BENCH" --teosd "$TEOSD" --markdown chain --appointments "$ROWS" --users 10000 \
    --rounds "$ROUNDS" --catchup-blocks "$CATCHUP" --startup-runs 3
run "Memory and restarts with $SMALL_ROWS appointments" \
    "$BENCH" --teosd "$TEOSD" --markdown chain --appointments "$SMALL_ROWS" --users 10000 \
    --rounds 2 --catchup-blocks 0 --startup-runs 3
run "Breaches answered from the mempool, CPU of watching it ($ROWS appointments)" \
    "$BENCH" --teosd "$TEOSD" --markdown mempool --appointments "$ROWS" --users 10000 \
    --rounds "$MEMPOOL_ROUNDS" --rate 1000 --seconds "$MEMPOOL_SECONDS"
fi

# The fleet scenarios (issue 12): the same load parameters for SQLite, one PostgreSQL instance and
# two (connections spread over both), so the three throughputs compare.
if [[ -n "$FLEET" ]]; then
    PG=(--postgres)
    if [[ -n "${DATABASE_URL:-}" ]]; then
        PG=(--database-url "$DATABASE_URL")
    fi
    FLEET_LOAD=(load --connections 16 --appointments "$LOAD_N")
    if [[ "$FLEET" == only ]]; then
        run "add_appointment load, SQLite (same parameters as the fleet loads)" \
            "$BENCH" --teosd "$TEOSD" --markdown "${FLEET_LOAD[@]}"
    fi
    run "add_appointment load, PostgreSQL, one instance" \
        "$BENCH" --teosd "$TEOSD" --markdown "${PG[@]}" "${FLEET_LOAD[@]}" --instances 1
    run "add_appointment load, PostgreSQL, two instances" \
        "$BENCH" --teosd "$TEOSD" --markdown "${PG[@]}" "${FLEET_LOAD[@]}" --instances 2
    run "Breach-to-broadcast on PostgreSQL ($ROWS appointments)" \
        "$BENCH" --teosd "$TEOSD" --markdown "${PG[@]}" chain --appointments "$ROWS" --users 10000 \
        --rounds "$ROUNDS" --catchup-blocks 0 --startup-runs 0
    run "Fleet takeover after the leader's SIGKILL" \
        "$BENCH" --teosd "$TEOSD" --markdown "${PG[@]}" takeover --instances 2 \
        --trials "$TAKEOVER_TRIALS" ${TAKEOVER_SECONDS:+--takeover-seconds "$TAKEOVER_SECONDS"}
fi

GENERATED=$WORK/generated.md
{
    echo "<!-- generated:start (bench/run.sh; do not edit between the markers) -->"
    echo
    echo "Generated by \`bench/run.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC') at commit \`$(git rev-parse --short HEAD 2>/dev/null || echo unknown)\`${QUICK:+ (QUICK run: reduced sizes)}."
    echo
    echo "Machine:"
    echo
    echo '```'
    echo "\$ nproc"
    nproc
    echo "\$ free -h"
    free -h
    echo "\$ uname -a"
    uname -a
    echo '```'
    echo
    echo "## Figures"
    echo
    echo "| figure | value | target | verdict | section |"
    echo "|---|---|---|---|---|"
    cat "$ROWS_MD"
    echo
    if [[ "$FLEET" != only ]]; then
        echo "Criterion benches print one line per benchmark: \`ns/iter\` is the median time of one"
        echo "operation (for \`storage_write\`'s \"writer CPU time\" line: CPU time of the storage writer thread per"
        echo "appointment)."
        echo
    fi
    echo "## Commands and their output"
    echo
    cat "$SECTIONS"
    echo "<!-- generated:end -->"
} >"$GENERATED"

if [[ -f "$OUT" ]] && grep -q '<!-- generated:start' "$OUT" && grep -q '<!-- generated:end -->' "$OUT"; then
    awk -v gen="$GENERATED" '
        /<!-- generated:start/ { while ((getline line < gen) > 0) print line; skip = 1; next }
        /<!-- generated:end -->/ { skip = 0; next }
        !skip { print }
    ' "$OUT" >"$WORK/out.md"
    mv "$WORK/out.md" "$OUT"
else
    { echo "# Benchmarks"; echo; cat "$GENERATED"; } >"$OUT"
fi
echo "== wrote $OUT" >&2

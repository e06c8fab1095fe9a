#!/usr/bin/env bash
# The test command of the README: every unit, integration and end-to-end test of the workspace, a
# check of the systemd unit and of the Prometheus alert rules. Binaries are built first because
# end-to-end tests run teosd, teos-cli and bitcoind-sim as real processes.
set -euo pipefail
cd "$(dirname "$0")/.."
# Tests that need PostgreSQL (teosd/tests/fleet_leader.rs) start their own throwaway cluster when
# initdb is installed (Debian: apt-get install postgresql), use TEOS_TEST_DATABASE_URL when set,
# and otherwise print a SKIPPED line; TEOS_TEST_REQUIRE_POSTGRES=1 (set by .ci/run) makes them fail.
cargo build --workspace --bins
cargo test --workspace --all-targets "$@"
# --all-targets leaves doctests out; teos-common's crate docs carry a client example that must compile.
cargo test -p teos-common --all-features --doc
if command -v systemd-analyze >/dev/null; then
    contrib/verify-service.sh target/debug/teosd
else
    echo "systemd-analyze not installed: contrib/teosd.service not verified (apt-get install systemd)"
fi
if command -v promtool >/dev/null; then
    contrib/check-alerts.sh
else
    echo "promtool not installed: contrib/prometheus-alerts.yml not checked (apt-get install prometheus)"
fi

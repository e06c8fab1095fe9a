#!/usr/bin/env bash
# The demo command of the README: builds bitcoind-sim, teosd and the demo client, then runs the demo
# end to end (bitcoind-sim and teosd as real processes; each step printed).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --bin teosd --bin bitcoind-sim --example demo
exec target/debug/examples/demo

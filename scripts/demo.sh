#!/usr/bin/env bash
# The demo command of the README: builds teosd and the demo client, then runs the demo end to end
# (bitcoind-sim in the demo's process on loopback RPC and ZMQ, teosd as a real process; each step
# printed).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --bin teosd --example demo
exec target/debug/examples/demo

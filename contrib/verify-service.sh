#!/usr/bin/env bash
# Checks contrib/teosd.service with `systemd-analyze verify`, pointing ExecStart at a built teosd
# (the unit names /usr/local/bin/teosd, which verify requires to exist).
# Usage: contrib/verify-service.sh [path/to/teosd]   (default: target/debug/teosd)
set -euo pipefail
cd "$(dirname "$0")/.."
teosd=$(realpath "${1:-target/debug/teosd}")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed "s#/usr/local/bin/teosd#$teosd#" contrib/teosd.service > "$tmp/teosd.service"
systemd-analyze verify "$tmp/teosd.service"
echo "contrib/teosd.service: systemd-analyze verify OK"

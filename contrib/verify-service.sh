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
# What teosd relies on, beyond what verify checks: readiness and EXTEND_TIMEOUT_USEC come from the
# main process, and `systemctl reload` sends SIGHUP (teosd reopens its log file).
for line in 'Type=notify' 'NotifyAccess=main' 'ExecReload=/bin/kill -HUP $MAINPID'; do
    if ! grep -qxF "$line" contrib/teosd.service; then
        echo "contrib/teosd.service: missing '$line'" >&2
        exit 1
    fi
done
echo "contrib/teosd.service: systemd-analyze verify OK"

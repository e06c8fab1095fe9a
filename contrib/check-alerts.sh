#!/usr/bin/env bash
# Checks contrib/prometheus-alerts.yml with promtool (Debian's `prometheus` package): its syntax and
# expressions (`promtool check rules`), then its unit tests (`promtool test rules`,
# contrib/prometheus-alerts.test.yml: each alert fires when it should and not before).
set -euo pipefail
cd "$(dirname "$0")"
promtool check rules prometheus-alerts.yml
promtool test rules prometheus-alerts.test.yml
echo "contrib/prometheus-alerts.yml: promtool check and test OK"

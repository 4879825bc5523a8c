#!/usr/bin/env bash
# Render the bundled sample's HTML report in headless Chromium and save a screenshot:
#   docs/render_report.sh [ENGINE]      # ENGINE: rust (default) or python
# Writes docs/report-screenshot.png (shown in docs/output.md). Installs Debian's chromium
# package when it is missing (needs root); the report itself never needs a network.
set -euo pipefail
cd "$(dirname "$0")/.."
engine=${1:-rust}
sample=bench/sample/ecs-sample.ndjson
shot=docs/report-screenshot.png

if ! command -v chromium >/dev/null; then
    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Exit 1 means "hits", which the sample is built to have; anything else is a failure.
status=0
python3 -m imds_scan "$sample" --engine "$engine" --quiet --output "$work/hits.ndjson" \
    --report "$work/report.html" || status=$?
[ "$status" -eq 1 ] || { echo "imds-scan exited $status" >&2; exit 1; }

# --no-sandbox: Chromium refuses to run as root otherwise; the page has no script anyway.
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --window-size=1280,1700 --screenshot="$PWD/$shot" "file://$work/report.html" \
    2>"$work/chromium.log" || { cat "$work/chromium.log" >&2; exit 1; }
echo "wrote $shot"

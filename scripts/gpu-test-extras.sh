#!/usr/bin/env bash
# Packs the npm packages that some tests import but that a GPU pack of the checkout leaves out for size
# (openai for the server tests, playwright-core for the browser tests, better-sqlite3 with its native
# build for the SUS study's ratings) into one archive, ~5 MB:
#   bash scripts/gpu-test-extras.sh [ARCHIVE]            (default: .gpu-pack/test-extras.tar.xz)
# On the GPU machine, `GPU_TEST_EXTRAS=ARCHIVE bash scripts/gpu-check.sh tests` unpacks it into the
# packed checkout before the suite runs, so that the whole suite loads there. The native module is this
# machine's build: the GPU machine must run the same Node on Linux x86-64.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.gpu-pack/test-extras.tar.xz}
mkdir -p "$(dirname "$out")"
paths=(node_modules/openai node_modules/playwright-core node_modules/better-sqlite3/package.json
  node_modules/better-sqlite3/lib node_modules/better-sqlite3/build/Release/better_sqlite3.node
  node_modules/bindings node_modules/file-uri-to-path)
for p in "${paths[@]}"; do [ -e "$p" ] || { echo "missing $p: run 'npm install' first" >&2; exit 1; }; done
tar -cf - "${paths[@]}" | xz -T0 -6 > "$out"
ls -la "$out"

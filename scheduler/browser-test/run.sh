#!/usr/bin/env bash
# Runs the scheduler's browser test: builds the floorwatch binary, installs
# playwright-core from package-lock.json, and drives /usr/bin/chromium
# headless against a scheduler on 127.0.0.1. Screenshots go to out/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

cargo build -p floorwatch --manifest-path "$root/Cargo.toml"
cd "$here"
npm ci --no-audit --no-fund
FLOORWATCH_BIN="${FLOORWATCH_BIN:-$root/target/debug/floorwatch}" npm test

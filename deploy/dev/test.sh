#!/usr/bin/env bash
# The README's test command: start what the tests need, then run the whole test suite.
# Extra arguments go to cargo test (e.g. `deploy/dev/test.sh -p shadowsync-schema`).
set -euo pipefail
cd "$(dirname "$0")/../.."
deploy/dev/services.sh
# The chart's tests render it with helm (installed, pinned, into a cache outside the clone).
SHADOWSYNC_HELM="$(deploy/dev/tools.sh)/helm"
export SHADOWSYNC_HELM
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/shadowsync-target}
if [ $# -eq 0 ]; then set -- --workspace; fi
cargo test --locked "$@"

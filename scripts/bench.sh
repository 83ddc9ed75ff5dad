#!/usr/bin/env bash
# Runs the benchmarks, each printing its figure beside a baseline measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-plugins.sh
cargo bench --locked -p plugboard-tests --bench introspect
cargo bench --locked -p plugboard-tests --bench introspect_mariadb
cargo bench --locked -p plugboard-tests --bench wasm_plugins
cargo bench --locked -p plugboard-tests --bench streaming
cargo bench --locked -p plugboard-tests --bench small_query

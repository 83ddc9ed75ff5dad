#!/usr/bin/env bash
# Builds the WebAssembly plugins (components for wasm32-wasip2, `plugin` profile), installing
# the Rust target first when it is missing. The .wasm files land in
# target/wasm32-wasip2/plugin/.
#
#   scripts/build-plugins.sh          the ClickHouse plugin, the test plugin, the SDK's template
#   scripts/build-plugins.sh -p plugboard-plugin-clickhouse    only that one
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    echo "installing the wasm32-wasip2 Rust target"
    rustup target add wasm32-wasip2
fi
packages=("$@")
if [ ${#packages[@]} = 0 ]; then
    packages=(-p plugboard-plugin-clickhouse -p plugboard-test-plugin-hostile -p plugboard-plugin-template)
fi
cargo build --locked --profile plugin --target wasm32-wasip2 "${packages[@]}"

#!/usr/bin/env bash
# Runs Plugboard with the WebAssembly plugins it ships: builds the ClickHouse plugin, puts
# it in the plugins folder (DATA_DIR/plugins, or --plugins-dir), and serves.
# Arguments go to `plugboard serve` (see `cargo run --release -- serve --help`).
#
#   scripts/run.sh
#   scripts/run.sh --listen 127.0.0.1:9000 --data-dir /var/lib/plugboard
set -euo pipefail
cd "$(dirname "$0")/.."

data_dir=./plugboard-data
plugins_dir=
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[i]}" in
        --data-dir) data_dir=${args[i+1]:-$data_dir} ;;
        --data-dir=*) data_dir=${args[i]#--data-dir=} ;;
        --plugins-dir) plugins_dir=${args[i+1]:-} ;;
        --plugins-dir=*) plugins_dir=${args[i]#--plugins-dir=} ;;
    esac
done
plugins_dir=${plugins_dir:-$data_dir/plugins}

scripts/build-plugins.sh -p plugboard-plugin-clickhouse
mkdir -p "$plugins_dir"
# Written beside, then renamed: a running server never sees half a file.
cp target/wasm32-wasip2/plugin/plugboard_plugin_clickhouse.wasm "$plugins_dir/.clickhouse.wasm.partial"
mv "$plugins_dir/.clickhouse.wasm.partial" "$plugins_dir/clickhouse.wasm"
exec cargo run --release --locked -p plugboard -- serve "$@"

#!/usr/bin/env bash
# Runs every test on a fresh machine: installs what the tests need and is missing, then runs
# the whole workspace's tests. The tests start (and stop) their own servers on loopback.
#
#   scripts/test.sh              all tests
#   scripts/test.sh -- --nocapture   extra arguments go to `cargo test`
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=
apt_install() {
    if [ -z "$apt_updated" ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        apt_updated=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# PostgreSQL: the server programs (initdb, pg_ctl, postgres) and psql.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
    echo "installing PostgreSQL (Debian package postgresql)"
    apt_install postgresql postgresql-client
fi
# MariaDB: mariadb-install-db, mariadbd, mariadb-admin and the mariadb client.
if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then
    echo "installing MariaDB (Debian package mariadb-server)"
    apt_install mariadb-server mariadb-client
fi
# ClickHouse (Debian ships 18.16): clickhouse-server, for the ClickHouse plugin's tests.
if ! command -v clickhouse-server >/dev/null 2>&1 && [ ! -x /usr/sbin/clickhouse-server ]; then
    echo "installing ClickHouse (Debian package clickhouse-server)"
    apt_install clickhouse-server clickhouse-client
fi
# A MongoDB-wire-compatible server (not mongod, which Debian does not ship), pinned.
if ! command -v secantusd-py >/dev/null 2>&1; then
    echo "installing secantusdb (PyPI) for the MongoDB tests"
    python3 -m pip install --quiet --disable-pip-version-check "secantusdb==0.7.0b3"
    # Under pyenv, new console scripts appear on the PATH only after a rehash.
    if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
fi
# The test set-up runs PostgreSQL as the postgres user when started as root.
if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
    echo "the postgres user is missing: reinstall the postgresql package" >&2
    exit 1
fi

if [ -z "${PLUGBOARD_TEST_MSSQL_URL:-}" ]; then
    echo "note: no SQL Server here; its conformance suite is skipped (set PLUGBOARD_TEST_MSSQL_URL to run it)"
fi

# The WebAssembly plugins the tests load (and the wasm32-wasip2 target they need).
scripts/build-plugins.sh

# Run everything, then close with one line that totals every test binary's results.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;?$/) p += $i; if ($(i+1) ~ /^failed;?$/) f += $i; if ($(i+1) ~ /^ignored;?$/) s += $i } }
     END { printf "\ntotal: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"

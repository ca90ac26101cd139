#!/usr/bin/env bash
# Chaos run against a real server (see bench/chaos.py):
#   bench/chaos.sh [sqlite|s3] [SECONDS]
# sqlite: SQLite + a blob directory; s3: PostgreSQL + Garage, started on
# loopback by scripts/services.sh. The binary is $TINTYPE_BIN, else the
# release build under $CARGO_TARGET_DIR (built when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
backend=${1:-sqlite}
seconds=${2:-120}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tintype-target}
bin=${TINTYPE_BIN:-}
if [ -z "$bin" ]; then
  cargo build --release -p tintype >&2
  bin="$CARGO_TARGET_DIR/release/tintype"
fi
case "$backend" in
  sqlite)
    unset TINTYPE_DATABASE_URL TINTYPE_BLOB_STORE
    ;;
  s3)
    svc=$(mktemp -d /tmp/tintype-chaos-svc.XXXXXX)
    trap 'bash "$root/scripts/services.sh" stop "$svc" >/dev/null 2>&1 || true' EXIT
    bash scripts/services.sh start "$svc" s3 >/dev/null
    set -a; . "$svc/env"; set +a
    export TINTYPE_DATABASE_URL=$TINTYPE_TEST_DATABASE_URL
    export TINTYPE_BLOB_STORE=$TINTYPE_TEST_BLOB_STORE
    ;;
  *) echo "usage: bench/chaos.sh [sqlite|s3] [SECONDS]" >&2; exit 2 ;;
esac
python3 bench/chaos.py --bin "$bin" --seconds "$seconds"

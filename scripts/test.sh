#!/usr/bin/env bash
# The test command: installs what the tests need, then runs every test.
#
# Tiers (TINTYPE_TIERS, default "sqlite postgres s3"):
#   sqlite    every test over SQLite + a blob directory
#   postgres  the storage conformance suite and every HTTP suite again over
#             a real PostgreSQL (started here on loopback)
#   s3        the same over PostgreSQL + a real Garage S3 server, and the
#             two-node test
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tintype-target}
export CARGO_TERM_COLOR=never
tools=${TINTYPE_TOOLS:-$HOME/.cache/tintype-tools}
mkdir -p "$tools"
tiers=${TINTYPE_TIERS:-sqlite postgres s3}

bash scripts/deps.sh

# The official Fulcrum Python client, in a throwaway virtual environment.
venv="$tools/fulcrum-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import fulcrum' 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check fulcrum
fi
export TINTYPE_FULCRUM_PYTHON="$venv/bin/python"

start=$(date +%s)
for tier in $tiers; do
  case "$tier" in
    sqlite)
      echo "== tier sqlite: SQLite + blob directory"
      cargo test --workspace --no-fail-fast
      ;;
    postgres|s3)
      if [ ! -f scripts/services.sh ]; then
        echo "== tier $tier: scripts/services.sh is missing; not run" >&2
        exit 1
      fi
      svc=$(mktemp -d /tmp/tintype-services.XXXXXX)
      trap 'bash "$root/scripts/services.sh" stop "$svc" >/dev/null 2>&1 || true' EXIT
      bash scripts/services.sh start "$svc" "$tier"
      # shellcheck disable=SC1091
      set -a; . "$svc/env"; set +a
      if [ "$tier" = postgres ]; then
        unset TINTYPE_TEST_BLOB_STORE
        echo "== tier postgres: PostgreSQL + blob directory"
      else
        echo "== tier s3: PostgreSQL + Garage S3"
      fi
      cargo test --workspace --no-fail-fast
      bash scripts/services.sh stop "$svc" >/dev/null 2>&1 || true
      trap - EXIT
      unset TINTYPE_TEST_DATABASE_URL TINTYPE_TEST_BLOB_STORE
      ;;
    *) echo "unknown tier $tier" >&2; exit 2 ;;
  esac
done
echo "all tiers passed in $(( $(date +%s) - start ))s"

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

# openapi-spec-validator, the independent check of /v1/openapi.json, in its
# own virtual environment.
oas_venv="$tools/openapi-venv"
if [ ! -x "$oas_venv/bin/python" ] || ! "$oas_venv/bin/python" -c 'import openapi_spec_validator' 2>/dev/null; then
  rm -rf "$oas_venv"
  python3 -m venv "$oas_venv"
  "$oas_venv/bin/pip" install --quiet --disable-pip-version-check 'openapi-spec-validator>=0.7,<1'
fi
export TINTYPE_OPENAPI_PYTHON="$oas_venv/bin/python"

# The published PopIt client for Python (Python 2 only: PopIt-Python 0.1.11,
# which pins requests 2.6.0), in its own Python 2.7 virtual environment with
# pinned dependencies. Python 2.7 comes from pyenv (the machine image has
# 2.7.18; `pyenv install` is tried otherwise). Without it the PopIt client
# test fails and says why.
popit_reqs="PopIt-Python==0.1.11 requests==2.6.0 slumber==0.7.1"
popit_venv="$tools/popit-py27"
if [ ! -x "$popit_venv/bin/python" ] || [ "$(cat "$popit_venv/.pins" 2>/dev/null)" != "$popit_reqs" ] \
   || ! "$popit_venv/bin/python" -c 'import popit_api, slumber' 2>/dev/null; then
  pyenv_root=${PYENV_ROOT:-$HOME/.pyenv}
  find_py27() {
    local c
    for c in "$pyenv_root"/versions/2.7*/bin/python2.7 "$(command -v python2.7 || true)"; do
      if [ -x "$c" ] && "$c" -c 'import sys; assert sys.version_info[:2] == (2, 7)' 2>/dev/null; then
        echo "$c"; return 0
      fi
    done
    return 1
  }
  py27=$(find_py27 || true)
  if [ -z "$py27" ] && command -v pyenv >/dev/null; then
    echo "== installing Python 2.7.18 with pyenv for the PopIt client test"
    pyenv install --skip-existing 2.7.18 || true
    py27=$(find_py27 || true)
  fi
  if [ -z "$py27" ]; then
    echo "!! no Python 2.7 found (pyenv or PATH): the PopIt client test will fail" >&2
  else
    rm -rf "$popit_venv"
    export PIP_NO_PYTHON_VERSION_WARNING=1
    if ! PYTHONPATH="$tools/py27-virtualenv" "$py27" -m virtualenv --version >/dev/null 2>&1; then
      rm -rf "$tools/py27-virtualenv"
      "$py27" -m pip install --quiet --disable-pip-version-check \
        --target "$tools/py27-virtualenv" virtualenv==20.15.1
    fi
    VIRTUALENV_OVERRIDE_APP_DATA="$tools/py27-virtualenv-data" PYTHONPATH="$tools/py27-virtualenv" \
      "$py27" -m virtualenv --quiet --no-download "$popit_venv"
    # requests first, so that slumber's own requirement does not replace it.
    "$popit_venv/bin/pip" install --quiet --disable-pip-version-check requests==2.6.0
    # shellcheck disable=SC2086
    "$popit_venv/bin/pip" install --quiet --disable-pip-version-check $popit_reqs
    echo "$popit_reqs" >"$popit_venv/.pins"
  fi
fi
if [ -x "$popit_venv/bin/python" ]; then
  export TINTYPE_POPIT_PYTHON="$popit_venv/bin/python"
fi

# A short chaos run (bench/chaos.py) on the tier's storage: concurrent
# uploads, reads, deletes, gc and admin commands while the server is killed
# with -9 and restarted; every acknowledged image must read back intact.
# TINTYPE_CHAOS_SECS=0 skips it; bench/chaos.sh runs the long version.
chaos() {
  local secs=${TINTYPE_CHAOS_SECS:-$2}
  [ "$secs" = 0 ] && return 0
  echo "== chaos ($secs s): $1"
  python3 bench/chaos.py --bin "$CARGO_TARGET_DIR/debug/tintype" --seconds "$secs"
}

start=$(date +%s)
for tier in $tiers; do
  case "$tier" in
    sqlite)
      echo "== tier sqlite: SQLite + blob directory"
      cargo test --workspace --no-fail-fast
      chaos "SQLite + blob directory" 20
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
      if [ "$tier" = s3 ]; then
        # A database of its own: the suites above left rows in the shared one.
        pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
        psql=${pg_bin:+$pg_bin/}psql
        chaos_db="chaos_$(date +%s)"
        "$psql" "$TINTYPE_TEST_DATABASE_URL" -qc "CREATE DATABASE $chaos_db"
        TINTYPE_DATABASE_URL=${TINTYPE_TEST_DATABASE_URL%/*}/$chaos_db \
          TINTYPE_BLOB_STORE=$TINTYPE_TEST_BLOB_STORE chaos "PostgreSQL + Garage S3" 10
      fi
      bash scripts/services.sh stop "$svc" >/dev/null 2>&1 || true
      trap - EXIT
      unset TINTYPE_TEST_DATABASE_URL TINTYPE_TEST_BLOB_STORE
      ;;
    *) echo "unknown tier $tier" >&2; exit 2 ;;
  esac
done
echo "all tiers passed in $(( $(date +%s) - start ))s"

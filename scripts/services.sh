#!/usr/bin/env bash
# Starts the scale-out backends on loopback for tests: a real PostgreSQL and
# a single-node Garage (S3-compatible object store), everything under one
# directory.
#
#   scripts/services.sh [start] [DIR] [s3|postgres]
#                                       start (DIR defaults to a new temp dir;
#                                       postgres: PostgreSQL alone)
#   scripts/services.sh stop [DIR]      stop (DIR defaults to the last started)
#
# On success it writes DIR/env (values single-quoted, for the shell) and
# prints it:
#   TINTYPE_TEST_DATABASE_URL=postgres://…
#   TINTYPE_TEST_BLOB_STORE=s3://tintype?endpoint=http://127.0.0.1:PORT&region=garage
#   AWS_ACCESS_KEY_ID=…
#   AWS_SECRET_ACCESS_KEY=…
# Use it with:  set -a; . DIR/env; set +a
#
# Needs: PostgreSQL's initdb/pg_ctl (installed with apt-get when missing) and
# a garage binary at ${GARAGE_BIN:-$HOME/.cache/tintype-tools/bin/garage},
# built once with `cargo install garage` when missing (about 5 minutes).
# Works as root (PostgreSQL then runs as the `postgres` user) and
# non-interactively.
set -euo pipefail

GARAGE_VERSION="${GARAGE_VERSION:-2.5.0}"
TOOLS="${TINTYPE_TOOLS_DIR:-$HOME/.cache/tintype-tools}"
GARAGE_BIN="${GARAGE_BIN:-$TOOLS/bin/garage}"
LAST_FILE="${TMPDIR:-/tmp}/tintype-services.last"
BUCKET=tintype
DB=tintype

log() { echo "services: $*" >&2; }
die() {
    echo "services: error: $*" >&2
    exit 1
}

mode=start
case "${1:-}" in
start | stop)
    mode=$1
    shift
    ;;
esac
DIR="${1:-}"
# What to start: "s3" (PostgreSQL and Garage, the default) or "postgres"
# (PostgreSQL alone: no Garage binary is needed or built).
WHAT="${2:-s3}"

# --- helpers ---------------------------------------------------------------

# In use: something listens there, or any socket (an outgoing connection's
# local end, in the ephemeral range) holds it, which would make bind fail.
port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    command -v ss >/dev/null 2>&1 && [ -n "$(ss -Htan "( sport = :$1 )" 2>/dev/null)" ]
}

# First port from $1 on whose port and the next $2-1 are all free.
free_ports() {
    local p=$1 n=$2 i ok
    while [ "$p" -lt 65000 ]; do
        ok=1
        for ((i = 0; i < n; i++)); do
            if port_in_use $((p + i)); then
                ok=0
                break
            fi
        done
        if [ $ok = 1 ]; then
            echo "$p"
            return
        fi
        p=$((p + n))
    done
    die "no free port found"
}

pg_bindir() {
    if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
        dirname "$(readlink -f "$(command -v pg_ctl)")"
        return
    fi
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
    [ -n "$d" ] && [ -x "$d/initdb" ] && echo "$d"
}

# Runs a command as the PostgreSQL owner ("postgres" when we are root).
as_pg() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# --- stop --------------------------------------------------------------------

if [ "$mode" = stop ]; then
    if [ -z "$DIR" ] && [ -f "$LAST_FILE" ]; then DIR=$(cat "$LAST_FILE"); fi
    [ -n "$DIR" ] && [ -d "$DIR" ] || die "usage: $0 stop DIR (no started directory known)"
    if [ -f "$DIR/garage.pid" ]; then
        pid=$(cat "$DIR/garage.pid")
        if kill "$pid" 2>/dev/null; then
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
            log "garage stopped"
        fi
        rm -f "$DIR/garage.pid"
    fi
    if [ -f "$DIR/pg/data/postmaster.pid" ]; then
        bindir=$(pg_bindir) || die "pg_ctl not found"
        as_pg "$bindir/pg_ctl" -D "$DIR/pg/data" -m fast -w stop >/dev/null && log "postgresql stopped"
    fi
    exit 0
fi

# --- start: directory --------------------------------------------------------

if [ -z "$DIR" ]; then
    DIR=$(mktemp -d "${TMPDIR:-/tmp}/tintype-services.XXXXXX")
fi
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
# The postgres user must be able to reach its data directory.
chmod 755 "$DIR"
echo "$DIR" >"$LAST_FILE"
log "directory $DIR"
start_time=$(date +%s)

# --- PostgreSQL ----------------------------------------------------------------

bindir=$(pg_bindir || true)
if [ -z "$bindir" ]; then
    log "installing PostgreSQL with apt-get"
    [ "$(id -u)" = 0 ] || die "PostgreSQL is not installed and we are not root to install it"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq postgresql >/dev/null
    bindir=$(pg_bindir) || die "PostgreSQL installed but initdb not found"
fi
if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/postgresql --shell /bin/sh postgres
fi

PGDIR="$DIR/pg"
mkdir -p "$PGDIR/sock"
if [ "$(id -u)" = 0 ]; then chown -R postgres: "$PGDIR"; fi
if [ -f "$PGDIR/data/postmaster.pid" ] && as_pg "$bindir/pg_ctl" -D "$PGDIR/data" status >/dev/null 2>&1; then
    PG_PORT=$(cat "$PGDIR/port")
    log "postgresql already running on port $PG_PORT"
else
    if [ ! -f "$PGDIR/data/PG_VERSION" ]; then
        as_pg "$bindir/initdb" -D "$PGDIR/data" -U postgres --auth=trust -E UTF8 --locale=C >"$PGDIR/initdb.log" 2>&1 ||
            die "initdb failed; see $PGDIR/initdb.log"
    fi
    PG_PORT=$(free_ports "${TINTYPE_PG_PORT:-25432}" 1)
    echo "$PG_PORT" >"$PGDIR/port"
    if [ "$(id -u)" = 0 ]; then chown postgres: "$PGDIR/port"; fi
    as_pg "$bindir/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/postgres.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -c unix_socket_directories=$PGDIR/sock -c max_connections=200 -c fsync=off" \
        start >/dev/null || die "postgresql did not start; see $PGDIR/postgres.log"
    log "postgresql on 127.0.0.1:$PG_PORT"
fi
if ! as_pg "$bindir/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -Atc \
    "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
    as_pg "$bindir/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres "$DB"
fi
DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/$DB"

if [ "$WHAT" = postgres ]; then
    cat >"$DIR/env" <<EOF
TINTYPE_TEST_DATABASE_URL='$DATABASE_URL'
EOF
    log "ready in $(($(date +%s) - start_time))s (PostgreSQL only); environment in $DIR/env"
    cat "$DIR/env"
    exit 0
fi

# --- Garage ------------------------------------------------------------------

if [ ! -x "$GARAGE_BIN" ]; then
    command -v cargo >/dev/null 2>&1 || die "garage not found at $GARAGE_BIN and no cargo to build it"
    log "building garage $GARAGE_VERSION into $TOOLS (takes several minutes; log $TOOLS/garage-build.log)"
    mkdir -p "$TOOLS"
    t0=$(date +%s)
    # Only what the tests use (the S3 API on SQLite metadata), optimised
    # lightly: a test server, built in a third of the time of a default
    # release build (measured: 276 s against 821 s on two cores).
    CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_DEBUG=0 \
        CARGO_PROFILE_RELEASE_INCREMENTAL=false CARGO_TARGET_DIR="$TOOLS/target" \
        nice -n 19 cargo install "garage@$GARAGE_VERSION" --locked \
        --no-default-features --features bundled-libs,sqlite \
        --root "$TOOLS" >"$TOOLS/garage-build.log" 2>&1 || die "building garage failed; see $TOOLS/garage-build.log"
    log "garage built in $(($(date +%s) - t0))s"
    [ -x "$GARAGE_BIN" ] || die "garage built but not at $GARAGE_BIN (set GARAGE_BIN)"
fi

GDIR="$DIR/garage"
mkdir -p "$GDIR/meta" "$GDIR/data"
garage() { "$GARAGE_BIN" -c "$GDIR/garage.toml" "$@"; }

if [ -f "$DIR/garage.pid" ] && kill -0 "$(cat "$DIR/garage.pid")" 2>/dev/null; then
    log "garage already running"
else
    G_PORT=$(free_ports "${TINTYPE_GARAGE_PORT:-3900}" 4)
    rpc_secret=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
    admin_token=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
    cat >"$GDIR/garage.toml" <<EOF
metadata_dir = "$GDIR/meta"
data_dir = "$GDIR/data"
db_engine = "sqlite"
metadata_fsync = false
data_fsync = false

replication_factor = 1

rpc_bind_addr = "127.0.0.1:$((G_PORT + 1))"
rpc_public_addr = "127.0.0.1:$((G_PORT + 1))"
rpc_secret = "$rpc_secret"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$G_PORT"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$((G_PORT + 3))"
admin_token = "$admin_token"
EOF
    echo "$G_PORT" >"$GDIR/port"
    RUST_LOG="${GARAGE_LOG:-garage=warn}" setsid "$GARAGE_BIN" -c "$GDIR/garage.toml" server \
        >"$GDIR/garage.log" 2>&1 </dev/null &
    echo $! >"$DIR/garage.pid"
    log "garage starting on 127.0.0.1:$G_PORT (pid $(cat "$DIR/garage.pid"))"
fi
G_PORT=$(cat "$GDIR/port")

# Wait until the node answers and knows its own id.
node_id=""
for _ in $(seq 100); do
    if node_id=$(garage node id -q 2>/dev/null); then break; fi
    kill -0 "$(cat "$DIR/garage.pid")" 2>/dev/null || die "garage exited; see $GDIR/garage.log"
    sleep 0.2
done
[ -n "$node_id" ] || die "garage did not answer; see $GDIR/garage.log"
node_id=${node_id%%@*}
# `node id` reads the key file; wait until the server answers on RPC too.
for _ in $(seq 150); do
    if garage status >/dev/null 2>&1; then break; fi
    kill -0 "$(cat "$DIR/garage.pid")" 2>/dev/null || die "garage exited; see $GDIR/garage.log"
    sleep 0.2
done
garage status >/dev/null 2>&1 || die "garage RPC did not answer; see $GDIR/garage.log"

# Single-node layout (once per directory).
if [ ! -f "$GDIR/layout.done" ]; then
    garage layout assign -z dc1 -c 1G "$node_id" >/dev/null
    garage layout apply --version 1 >/dev/null
    touch "$GDIR/layout.done"
fi

# Bucket and key with read/write on it (once).
for _ in $(seq 50); do
    if garage bucket info "$BUCKET" >/dev/null 2>&1 || garage bucket create "$BUCKET" >/dev/null 2>&1; then
        break
    fi
    sleep 0.2 # the layout may still be propagating
done
garage bucket info "$BUCKET" >/dev/null || die "could not create bucket $BUCKET"
if [ ! -f "$GDIR/key" ]; then
    garage key create tintype-test >"$GDIR/key.out"
    key_id=$(sed -n 's/^Key ID:[[:space:]]*\(GK[0-9a-f]*\).*/\1/p' "$GDIR/key.out" | head -1)
    secret=$(sed -n 's/^Secret key:[[:space:]]*\([0-9a-f]*\).*/\1/p' "$GDIR/key.out" | head -1)
    [ -n "$key_id" ] && [ -n "$secret" ] || die "could not read the new key from garage's output: $GDIR/key.out"
    garage bucket allow --read --write --owner "$BUCKET" --key "$key_id" >/dev/null
    printf '%s %s\n' "$key_id" "$secret" >"$GDIR/key"
fi
read -r key_id secret <"$GDIR/key"

# Values are single-quoted: the blob store spec holds a '&'.
cat >"$DIR/env" <<EOF
TINTYPE_TEST_DATABASE_URL='$DATABASE_URL'
TINTYPE_TEST_BLOB_STORE='s3://$BUCKET?endpoint=http://127.0.0.1:$G_PORT&region=garage'
AWS_ACCESS_KEY_ID='$key_id'
AWS_SECRET_ACCESS_KEY='$secret'
EOF
log "ready in $(($(date +%s) - start_time))s; environment in $DIR/env (use: set -a; . $DIR/env; set +a)"
log "stop with: $0 stop $DIR"
cat "$DIR/env"

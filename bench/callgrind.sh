#!/usr/bin/env bash
# Instructions per request of the byte-serving hot path, counted with
# valgrind's callgrind (user-space instructions of the whole server
# process, every thread): independent of machine load, unlike req/s.
#
# A release `tintype serve` (directory store, SQLite, Bearer token) runs
# under callgrind with instrumentation off; each row is warmed up, then
# counted over N requests on one keep-alive connection. Prints the
# instructions per request of each row (the 17 KB original, the thumbnail,
# If-None-Match -> 304, /healthz and /v1/user for reference).
#
#   bench/callgrind.sh
#   N=1000 TINTYPE_BIN=/path/to/tintype KEEP=1 bench/callgrind.sh
#
# With KEEP=1 the callgrind.out.* files stay in bench/out/callgrind/ for
# callgrind_annotate.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out="$here/out"
n=${N:-1000}
mkdir -p "$out"
# shellcheck source=bench/common.sh
. "$here/common.sh"

command -v valgrind >/dev/null || {
    echo "installing valgrind" >&2
    apt_install valgrind
}

# The same photograph as bench/serve.sh (Debian package lomiri-wallpapers-20.04).
photo=$(wallpaper Kleiber_by_Lukas_Baubkus.jpg)

bin=$(release_tintype)

work=$(mktemp -d /tmp/tintype-callgrind.XXXXXX)
vpid=""
cleanup() {
    [ -n "$vpid" ] && kill "$vpid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT


"$bin" render "$photo" --out "$work/src" --fit 1600x1600 --fit 420x420 --quality 85 >/dev/null
large_src=$(ls -S "$work/src"/* | head -n1)
small_src=$(ls -S "$work/src"/* | tail -n1)

data="$work/data"
port=$(free_port)
export TINTYPE_DATA_DIR="$data" TINTYPE_LISTEN="127.0.0.1:$port" TINTYPE_LOG=warn
"$bin" user create bench >/dev/null
token=$("$bin" token create bench | tail -n1)
dumps="$work/cg"
mkdir -p "$dumps"
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$dumps/callgrind.out.%p" \
    "$bin" serve >"$work/tintype.log" 2>&1 &
vpid=$!
base="http://127.0.0.1:$port"
for _ in $(seq 600); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.2; done

auth=(-H "Authorization: Bearer $token")
up() { curl -sf "${auth[@]}" --data-binary @"$1" "$base/v1/images"; }
field() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(d'"$1"')'; }
small_id=$(up "$small_src" | field '["id"]')
large_id=$(up "$large_src" | field '["id"]')
curl -sf -o /dev/null "${auth[@]}" "$base/v1/images/$large_id/variants/thumbnail"
small_sha=$(curl -sf "${auth[@]}" "$base/v1/images/$small_id" | field '["sha256"]')

# N requests on one keep-alive connection; fails on an unexpected status.
cat >"$work/client.py" <<'EOF'
import http.client, sys
port, path, n, status = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
headers = dict(h.split(": ", 1) for h in sys.argv[5:])
c = http.client.HTTPConnection("127.0.0.1", port)
for _ in range(n):
    c.request("GET", path, headers=headers)
    r = c.getresponse()
    r.read()
    if r.status != status:
        sys.exit(f"{path}: status {r.status}, expected {status}")
EOF

# name | path | expected status | extra header
rows=(
    "17 KB original|/v1/images/$small_id/original|200|"
    "6 KB thumbnail variant|/v1/images/$large_id/variants/thumbnail|200|"
    "If-None-Match → 304|/v1/images/$small_id/original|304|If-None-Match: \"$small_sha\""
    "/v1/user (token check only)|/v1/user|200|"
    "/healthz (no token)|/healthz|200|"
)

pid=$(pgrep -P "$vpid" -f "callgrind" || echo "$vpid")
echo "tintype: $bin; $n requests per row on one connection; instructions per request (callgrind, all threads)"
echo
echo "| request | instructions per request |"
echo "|---|---|"
i=0
for row in "${rows[@]}"; do
    IFS='|' read -r name path status hdr <<<"$row"
    hs=("Authorization: Bearer $token")
    [ -n "$hdr" ] && hs+=("$hdr")
    [ "$path" = /healthz ] && hs=()
    # Warm up (caches filled), uncounted.
    python3 "$work/client.py" "$port" "$path" 50 "$status" "${hs[@]}"
    callgrind_control -z "$pid" >/dev/null 2>&1
    callgrind_control -i on "$pid" >/dev/null 2>&1
    python3 "$work/client.py" "$port" "$path" "$n" "$status" "${hs[@]}"
    callgrind_control -i off "$pid" >/dev/null 2>&1
    i=$((i + 1))
    callgrind_control -d "row$i" "$pid" >/dev/null 2>&1
    f=$(ls -t "$dumps"/callgrind.out.* | head -n1)
    total=$(awk '/^totals:/ {print $2}' "$f")
    printf '| %s | %s |\n' "$name" "$(awk -v t="$total" -v n="$n" 'BEGIN { printf "%.1fk", t / n / 1000 }')"
    [ -n "${KEEP:-}" ] && mkdir -p "$out/callgrind" && cp "$f" "$out/callgrind/$(echo "$name" | tr -c 'a-zA-Z0-9\n' _).out"
done

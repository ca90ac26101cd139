#!/usr/bin/env bash
# Serving stored bytes, side by side on loopback: nginx (one worker,
# sendfile, the same files copied out of the blob store) against a release
# `tintype serve` (Bearer token), with wrk: 1 thread, 64 connections, 8 s,
# three alternating rounds per row. Prints req/s of both (min-max over the
# rounds), the ratio of the medians, and p50/p99 latency at 1 and at 64
# connections.
#
#   bench/serve.sh
#   TINTYPE_BIN=/path/to/tintype DURATION=8s ROUNDS=3 bench/serve.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out="$here/out"
duration=${DURATION:-8s}
rounds=${ROUNDS:-3}
mkdir -p "$out"
# shellcheck source=bench/common.sh
. "$here/common.sh"

missing=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v wrk >/dev/null || missing+=(wrk)
command -v curl >/dev/null || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}" >&2
    apt_install "${missing[@]}"
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

# A real photograph, from the Debian package lomiri-wallpapers-20.04.
photo=$(wallpaper Kleiber_by_Lukas_Baubkus.jpg)

bin=$(release_tintype)

work=$(mktemp -d /tmp/tintype-serve-bench.XXXXXX)
tpid="" npid=""
cleanup() {
    [ -n "$tpid" ] && kill "$tpid" 2>/dev/null || true
    [ -n "$npid" ] && kill "$npid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT


# Two originals of the sizes in question (about 17 KB and 148 KB), made
# from the photograph by tintype's own renderer.
"$bin" render "$photo" --out "$work/src" --fit 1600x1600 --fit 420x420 --quality 85 >/dev/null
large_src=$(ls -S "$work/src"/* | head -n1)
small_src=$(ls -S "$work/src"/* | tail -n1)

# tintype on a fresh data directory, one user with a token.
data="$work/data"
tport=$(free_port)
export TINTYPE_DATA_DIR="$data" TINTYPE_LISTEN="127.0.0.1:$tport" TINTYPE_LOG=warn
"$bin" user create bench >/dev/null
token=$("$bin" token create bench | tail -n1)
"$bin" serve >"$work/tintype.log" 2>&1 &
tpid=$!
tbase="http://127.0.0.1:$tport"
for _ in $(seq 100); do curl -sf "$tbase/healthz" >/dev/null && break; sleep 0.1; done

auth=(-H "Authorization: Bearer $token")
up() { curl -sf "${auth[@]}" --data-binary @"$1" "$tbase/v1/images"; }
field() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(d'"$1"')'; }
small_id=$(up "$small_src" | field '["id"]')
large_id=$(up "$large_src" | field '["id"]')
# The thumbnail of the large one (rendered now if the queue has not yet);
# its ETag is its SHA-256.
etag_of() { curl -sf -D - -o /dev/null "${auth[@]}" "$1" | awk -F': ' 'tolower($1)=="etag" {print $2}' | tr -d '\r"'; }
thumb_sha=$(etag_of "$tbase/v1/images/$large_id/variants/thumbnail")
[ -n "$thumb_sha" ] || { echo "no thumbnail" >&2; exit 1; }
small_sha=$(curl -sf "${auth[@]}" "$tbase/v1/images/$small_id" | field '["sha256"]')
large_sha=$(curl -sf "${auth[@]}" "$tbase/v1/images/$large_id" | field '["sha256"]')

# nginx serves the same bytes, copied out of the blob store.
blob() { echo "$data/blobs/sha256/${1:0:2}/${1:2:2}/$1"; }
mkdir -p "$work/www" "$work/nginx"
cp "$(blob "$small_sha")" "$work/www/small.jpg"
cp "$(blob "$large_sha")" "$work/www/large.jpg"
cp "$(blob "$thumb_sha")" "$work/www/thumb.jpg"
chmod -R a+rX "$work"
nport=$(free_port)
cat >"$work/nginx/nginx.conf" <<EOF
worker_processes 1;
$([ "$(id -u)" = 0 ] && echo "user root;")
daemon off;
error_log $work/nginx/error.log;
pid $work/nginx/nginx.pid;
events { worker_connections 1024; }
http {
    sendfile on;
    tcp_nopush on;
    access_log off;
    types { image/jpeg jpg; }
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    server {
        listen 127.0.0.1:$nport;
        root $work/www;
    }
}
EOF
"$nginx_bin" -c "$work/nginx/nginx.conf" -p "$work/nginx" &
npid=$!
nbase="http://127.0.0.1:$nport"
for _ in $(seq 100); do curl -sf "$nbase/small.jpg" -o /dev/null && break; sleep 0.1; done
n_etag=$(curl -sI "$nbase/small.jpg" | awk -F': ' 'tolower($1)=="etag" {print $2}' | tr -d '\r')

# Both serve the same bytes.
for pair in "small.jpg /v1/images/$small_id/original" "large.jpg /v1/images/$large_id/original" \
    "thumb.jpg /v1/images/$large_id/variants/thumbnail"; do
    set -- $pair
    cmp <(curl -sf "$nbase/$1") <(curl -sf "${auth[@]}" "$tbase$2") ||
        { echo "$1 differs between nginx and tintype" >&2; exit 1; }
done

# name | nginx path | tintype path | extra header for both | extra nginx header | extra tintype header
rows=(
    "17 KB original|/small.jpg|/v1/images/$small_id/original||"
    "148 KB original|/large.jpg|/v1/images/$large_id/original||"
    "7 KB thumbnail variant|/thumb.jpg|/v1/images/$large_id/variants/thumbnail||"
    "Range bytes=0-1023|/large.jpg|/v1/images/$large_id/original|Range: bytes=0-1023|"
    "If-None-Match → 304|/small.jpg|/v1/images/$small_id/original|INM|"
)

# run URL CONNS DURATION [HEADER...] -> "req/s p50_ms p99_ms"
run() {
    local url=$1 conns=$2 dur=$3
    shift 3
    local hs=()
    for h in "$@"; do [ -n "$h" ] && hs+=(-H "$h"); done
    wrk -t1 -c"$conns" -d"$dur" --latency "${hs[@]}" "$url" >"$work/wrk.txt" 2>&1
    awk '
        function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
        /Requests\/sec/ { rps = $2 }
        $1 == "50%" { p50 = ms($2) }
        $1 == "99%" { p99 = ms($2) }
        /Non-2xx or 3xx/ { bad = $NF }
        END { printf "%.0f %.3f %.3f %s\n", rps, p50, p99, (bad == "" ? 0 : bad) }
    ' "$work/wrk.txt"
}
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
minmax() { printf '%s\n' "$@" | sort -g | awk 'NR == 1 {a = $1} {b = $1} END {printf "%.1fk–%.1fk", a / 1000, b / 1000}'; }

echo "photo: $photo; originals $(($(stat -c %s "$small_src") / 1024)) KiB and $(($(stat -c %s "$large_src") / 1024)) KiB, thumbnail $(($(stat -c %s "$work/www/thumb.jpg") / 1024)) KiB"
echo "nginx: $("$nginx_bin" -v 2>&1 | sed 's/.*: //'), 1 worker, sendfile; tintype: $bin (directory store, SQLite)"
echo "wrk: 1 thread, 64 connections, $duration, $rounds alternating rounds; cpu: $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo

results=()
for row in "${rows[@]}"; do
    IFS='|' read -r name npath tpath hdr _ <<<"$row"
    nh="" th=""
    if [ "$hdr" = INM ]; then
        nh="If-None-Match: $n_etag"
        th="If-None-Match: \"$small_sha\""
    elif [ -n "$hdr" ]; then
        nh=$hdr th=$hdr
    fi
    nr=() tr=() n64=() t64=()
    for _ in $(seq "$rounds"); do
        read -r r p50 p99 bad < <(run "$nbase$npath" 64 "$duration" "$nh")
        nr+=("$r") n64+=("$p50/$p99")
        [ "$bad" = 0 ] || echo "nginx $name: $bad non-2xx/3xx" >&2
        read -r r p50 p99 bad < <(run "$tbase$tpath" 64 "$duration" "Authorization: Bearer $token" "$th")
        tr+=("$r") t64+=("$p50/$p99")
        [ "$bad" = 0 ] || echo "tintype $name: $bad non-2xx/3xx" >&2
    done
    read -r _ n1p50 n1p99 _ < <(run "$nbase$npath" 1 4s "$nh")
    read -r _ t1p50 t1p99 _ < <(run "$tbase$tpath" 1 4s "Authorization: Bearer $token" "$th")
    nm=$(median "${nr[@]}") tm=$(median "${tr[@]}")
    ratio=$(awk -v a="$tm" -v b="$nm" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
    # p50/p99 at 64 connections: the round with the median req/s.
    pick() {
        local m=$1
        shift
        local -n rs=$1 ls=$2
        for i in "${!rs[@]}"; do [ "${rs[$i]}" = "$m" ] && { echo "${ls[$i]}"; return; }; done
    }
    results+=("$(printf '| %s | %s | %s | %s | %s / %s | %s / %s | %s | %s |' \
        "$name" "$(minmax "${nr[@]}")" "$(minmax "${tr[@]}")" "$ratio" \
        "$n1p50" "$n1p99" "$t1p50" "$t1p99" "$(pick "$nm" nr n64)" "$(pick "$tm" tr t64)")")
    echo "done: $name" >&2
done

echo "| request | nginx req/s | tintype req/s | ratio (medians) | nginx p50 / p99 ms, 1 conn | tintype p50 / p99 ms, 1 conn | nginx p50/p99 ms, 64 | tintype p50/p99 ms, 64 |"
echo "|---|---|---|---|---|---|---|---|"
printf '%s\n' "${results[@]}"
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

#!/usr/bin/env bash
# Upload throughput of the native API on loopback: starts tintype over a
# fresh data directory, uploads a 5 MB picture N times (sequentially) with
# curl, and prints MB/s. The job workers are off by default so the figure is
# the ingest path alone (stream -> temp file + SHA-256 -> probe -> blob ->
# catalog row); WORKERS=2 measures it with variant rendering competing.
#
#   bench/upload.sh                      # N=20, debug or release build
#   TINTYPE_BIN=/path/to/tintype N=50 WORKERS=2 bench/upload.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
n=${N:-20}
workers=${WORKERS:-0}
if [ -n "${TINTYPE_BIN:-}" ]; then
    bin=$TINTYPE_BIN
elif [ -x "$target/release/tintype" ]; then
    bin=$target/release/tintype
elif [ -x "$target/debug/tintype" ]; then
    bin=$target/debug/tintype
else
    echo "no tintype binary: cargo build -p tintype (or set TINTYPE_BIN)" >&2
    exit 1
fi
command -v curl >/dev/null || { echo "curl is needed" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 is needed (to make the picture)" >&2; exit 1; }

work=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# A 5 MB PNG of noise (1292 x 1292 RGB, stored uncompressed-ish).
pic=$work/noise.png
python3 - "$pic" <<'PY'
import os, struct, sys, zlib
w = h = 1292
def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
raw = b"".join(b"\x00" + os.urandom(w * 3) for _ in range(h))
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) \
    + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b"")
open(sys.argv[1], "wb").write(png)
PY
size=$(stat -c %s "$pic")

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port
TINTYPE_DATA_DIR=$work/data TINTYPE_LISTEN=127.0.0.1:$port TINTYPE_WORKERS=$workers \
    TINTYPE_LOG=warn "$bin" serve >"$work/stdout" 2>"$work/stderr" &
pid=$!
for _ in $(seq 1 200); do
    curl -fsS "$base/healthz" >/dev/null 2>&1 && break
    sleep 0.05
done
curl -fsS "$base/healthz" >/dev/null || { echo "tintype did not start:" >&2; cat "$work/stderr" >&2; exit 1; }
token=$(sed -n 2p "$work/stdout")

# One warm-up upload, not counted.
curl -fsS -o /dev/null -X POST -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/octet-stream' -T "$pic" "$base/v1/images?name=warmup"

start=$(date +%s.%N)
for i in $(seq 1 "$n"); do
    code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $token" \
        -H 'Content-Type: application/octet-stream' -T "$pic" "$base/v1/images?name=bench-$i")
    [ "$code" = 201 ] || { echo "upload $i answered $code" >&2; exit 1; }
done
end=$(date +%s.%N)

python3 - "$size" "$n" "$start" "$end" "$bin" "$workers" <<'PY'
import sys
size, n, start, end, binary, workers = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5], sys.argv[6]
secs = end - start
mb = size * n / 1e6
print(f"binary:    {binary}")
print(f"workers:   {workers}")
print(f"uploads:   {n} x {size / 1e6:.2f} MB, sequential, curl on loopback")
print(f"total:     {secs:.2f} s ({secs / n * 1000:.0f} ms per upload)")
print(f"throughput: {mb / secs:.1f} MB/s")
PY

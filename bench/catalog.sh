#!/usr/bin/env bash
# How listing costs grow with the catalog (issue 14): builds tintype and the
# `catalog_bench` example in release mode, fills a catalog through the
# engine's API with SIZES images spread over the dialects (tiny distinct
# PNGs, SQLite + blob directory, cumulative), and after each size starts
# `tintype serve` over it and prints p50/p99 of the hot reads, one upload,
# and the server's RSS. Not run by CI.
#
#   bench/catalog.sh                          # SIZES=10000,100000 RUNS=200
#   SIZES=10000,100000,1000000 RUNS=100 bench/catalog.sh
#   DIR=/var/tmp/cat bench/catalog.sh         # keep the filled catalog
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
sizes=${SIZES:-10000,100000}
runs=${RUNS:-200}
conc=${CONCURRENCY:-16}

cd "$root"
cargo build --release -p tintype --bin tintype --example catalog_bench
args=(--bin "$target/release/tintype" --sizes "$sizes" --runs "$runs" --concurrency "$conc")
if [ -n "${DIR:-}" ]; then
    mkdir -p "$DIR"
    args+=(--dir "$DIR")
fi
exec "$target/release/examples/catalog_bench" "${args[@]}"

#!/usr/bin/env bash
# Makes three JPEG sizes (fit 1600, 400, 200, quality 85) of a 20-megapixel
# photograph with tintype, vipsthumbnail and ImageMagick, several times each,
# and prints CPU (user+sys), wall time, peak RSS and output sizes.
#
#   bench/variants.sh            # RUNS=5 by default
#   TINTYPE_BIN=/path/to/tintype RUNS=10 bench/variants.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out="$here/out"
runs=${RUNS:-5}
mkdir -p "$out"

apt_install() {
    if [ "$(id -u)" = 0 ]; then
        apt-get install -y -q "$@" >/dev/null
    else
        sudo apt-get install -y -q "$@" >/dev/null
    fi
}
missing=()
command -v vipsthumbnail >/dev/null || missing+=(libvips-tools)
command -v convert >/dev/null || missing+=(imagemagick)
[ -x /usr/bin/time ] || missing+=(time)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}" >&2
    apt_install "${missing[@]}"
fi

photo=$(find "$out/pkg" -name 'Kleiber_by_Lukas_Baubkus.jpg' 2>/dev/null | head -n1 || true)
if [ -z "$photo" ]; then
    echo "downloading lomiri-wallpapers-20.04" >&2
    (cd "$out" && apt-get download lomiri-wallpapers-20.04 >/dev/null 2>&1 && dpkg -x lomiri-wallpapers-20.04_*.deb pkg)
    photo=$(find "$out/pkg" -name 'Kleiber_by_Lukas_Baubkus.jpg' | head -n1)
fi

target=${CARGO_TARGET_DIR:-$root/target}
bin=${TINTYPE_BIN:-$target/release/tintype}
if ! { [ -x "$bin" ] && "$bin" render --help >/dev/null 2>&1; }; then
    # Until the binary has the render command, use the example that compiles
    # the same command module (crates/tintype/src/media_cmd.rs).
    (cd "$root" && cargo build -q --release -p tintype-media --example tintype_media)
    bin="$target/release/examples/tintype_media"
fi

# measure NAME OUTDIR COMMAND: runs COMMAND $runs times under /usr/bin/time -v
# and prints one table row with the medians.
measure() {
    local name=$1 dir=$2 cmd=$3
    local cpu=() wall=() rss=()
    for _ in $(seq "$runs"); do
        rm -rf "$dir" && mkdir -p "$dir"
        /usr/bin/time -v -o "$out/time.txt" bash -c "$cmd" >/dev/null 2>"$out/stderr.txt" || {
            cat "$out/stderr.txt" >&2
            echo "$name failed" >&2
            return 1
        }
        cpu+=("$(awk -F': ' '/User time|System time/ {s += $2} END {printf "%.3f", s}' "$out/time.txt")")
        wall+=("$(awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; printf "%.3f", s}' "$out/time.txt")")
        rss+=("$(awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2 / 1024}' "$out/time.txt")")
    done
    median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
    local sizes
    sizes=$(cd "$dir" && ls -S | while read -r f; do printf '%s ' "$(($(stat -c %s "$f") / 1024))K"; done)
    printf '| %-24s | %8s | %8s | %12s | %-20s |\n' "$name" "$(median "${cpu[@]}")" "$(median "${wall[@]}")" "$(median "${rss[@]}")" "${sizes% }"
}

echo "photo: $photo ($(identify -format '%wx%h' "$photo" 2>/dev/null || echo '?'), $(($(stat -c %s "$photo") / 1024)) KiB)"
echo "tintype: $bin"
echo "runs: $runs (medians); CPU = user + sys; three sizes per run: fit 1600, 400, 200, JPEG quality 85"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo
printf '| %-24s | %8s | %8s | %12s | %-20s |\n' "tool" "CPU s" "wall s" "peak RSS MB" "outputs (1600/400/200)"
printf '|%s|%s|%s|%s|%s|\n' "--------------------------" "----------" "----------" "--------------" "----------------------"

measure "tintype render" "$out/tintype" \
    "'$bin' render '$photo' --out '$out/tintype' --fit 1600x1600 --fit 400x400 --fit 200x200 --quality 85"
measure "vipsthumbnail (x3)" "$out/vips" \
    "for s in 1600 400 200; do vipsthumbnail '$photo' --size \$s -o \"$out/vips/v\$s.jpg[Q=85]\"; done"
measure "convert -thumbnail (x3)" "$out/magick" \
    "for s in 1600 400 200; do convert '$photo' -thumbnail \${s}x\${s} -quality 85 \"$out/magick/m\$s.jpg\"; done"

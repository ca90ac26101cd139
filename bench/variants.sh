#!/usr/bin/env bash
# Makes three JPEG sizes (fit 1600, 400, 200, quality 85) of a 20-megapixel
# photograph with tintype, vipsthumbnail and ImageMagick, several times each,
# and prints CPU (user+sys), wall time, peak RSS and output sizes. Then, for
# seven photographs (five JPEGs, a HEIC, a Display P3 JPEG), JPEG, WebP and
# AVIF at two sizes next to vipsthumbnail, with SSIM (see the part below).
#
#   bench/variants.sh            # RUNS=5 by default
#   TINTYPE_BIN=/path/to/tintype RUNS=10 bench/variants.sh
#   FORMATS=0 bench/variants.sh  # the first table only
#   AVIF_SPEED=5 bench/variants.sh  # tintype's AVIF at libaom speed 5 (default 6)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out="$here/out"
runs=${RUNS:-5}
mkdir -p "$out"
# shellcheck source=bench/common.sh
. "$here/common.sh"

missing=()
command -v vipsthumbnail >/dev/null || missing+=(libvips-tools)
command -v convert >/dev/null || missing+=(imagemagick)
[ -x /usr/bin/time ] || missing+=(time)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}" >&2
    apt_install "${missing[@]}"
fi

photo=$(wallpaper Kleiber_by_Lukas_Baubkus.jpg)

target=${CARGO_TARGET_DIR:-$root/target}
bin=${TINTYPE_BIN:-$target/release/tintype}
if ! { [ -x "$bin" ] && "$bin" render --help 2>/dev/null | grep -q avif; }; then
    # Until the binary has the render command with AVIF, use the example that compiles
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

# ---------- formats and quality ----------
# For five photographs (lomiri-wallpapers-20.04 and -16.04), a HEIC made
# from one of them and a Display P3 JPEG made from another: per output size
# (fit 1600 and 400) and format (JPEG q85, WebP q80, AVIF q60), tintype
# render and vipsthumbnail at the same quality setting, one size per run:
# CPU (user+sys), peak RSS, bytes, and SSIM against a reference made by a
# full decode (converted to sRGB by vips) and a Lanczos3 resize to the same
# size (Pillow; bench/ssim.py). FORMATS=0 skips this part.
[ "${FORMATS:-1}" = 0 ] && exit 0

if [ ! -d "$out/pkg16" ]; then
    echo "downloading lomiri-wallpapers-16.04" >&2
    (cd "$out" && apt-get download lomiri-wallpapers-16.04 >/dev/null 2>&1 && dpkg -x lomiri-wallpapers-16.04_*.deb pkg16)
fi
if [ ! -x "$out/venv/bin/python" ]; then
    python3 -m venv "$out/venv"
    "$out/venv/bin/pip" install -q numpy pillow
fi
bg20="$out/pkg/usr/share/backgrounds"
bg16="$out/pkg16/usr/share/backgrounds"
p3icc="$out/display-p3.icc"
if [ ! -s "$p3icc" ]; then
    (cd "$root" && cargo run -q --release -p tintype-media --example display_p3_icc -- "$p3icc")
fi
mkdir -p "$out/photos" "$out/ref"
[ -s "$out/photos/dragonfly.heic" ] ||
    vips heifsave "$bg16/Dragonfly_by_Bolly.jpg" "$out/photos/dragonfly.heic" --compression hevc -Q 90
[ -s "$out/photos/sunset-p3.jpg" ] ||
    vips icc_transform "$bg16/sunset_by_Aitzol_Berasategi.jpg" "$out/photos/sunset-p3.jpg[Q=95]" "$p3icc"
photos=(
    "$bg20/Kleiber_by_Lukas_Baubkus.jpg"
    "$bg20/Fossa_by_Jasper_Roks.jpg"
    "$bg16/Dragonfly_by_Bolly.jpg"
    "$bg16/seeding_by_Clements_Engelhardt.jpg"
    "$bg16/aitzgorri_by_Aitzol_Berasategi.jpg"
    "$out/photos/dragonfly.heic"
    "$out/photos/sunset-p3.jpg"
)

# once NAME COMMAND: one run under /usr/bin/time -v; sets CPU and RSS.
once() {
    /usr/bin/time -v -o "$out/time.txt" bash -c "$2" >/dev/null 2>"$out/stderr.txt" || {
        cat "$out/stderr.txt" >&2
        echo "$1 failed" >&2
        return 1
    }
    CPU=$(awk -F': ' '/User time|System time/ {s += $2} END {printf "%.2f", s}' "$out/time.txt")
    RSS=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$out/time.txt")
}

echo
echo "formats: tintype render vs vipsthumbnail, one size per run; SSIM against a full decode + Lanczos3"
printf '| %-22s | %4s | %-4s | %13s | %11s | %13s | %15s |\n' "photo" "size" "fmt" "CPU s (t/v)" "RSS MB (t/v)" "KiB (t/v)" "SSIM (t/v)"
printf '|%s|%s|%s|%s|%s|%s|%s|\n' "------------------------" "------" "------" "---------------" "-------------" "---------------" "-----------------"
for photo in "${photos[@]}"; do
    name=$(basename "${photo%.*}")
    ref="$out/ref/$name.tif"
    [ -s "$ref" ] || vips icc_transform "$photo" "$ref" srgb --embedded
    for size in 1600 400; do
        for fq in jpeg:85 webp:80 avif:60; do
            f=${fq%:*} q=${fq#*:}
            ext=$f
            [ "$f" = jpeg ] && ext=jpg
            t="$out/fmt/t" v="$out/fmt/v"
            rm -rf "$t" "$v" && mkdir -p "$t" "$v"
            speed=()
            [ "$f" = avif ] && speed=(--avif-speed "${AVIF_SPEED:-6}")
            once tintype "'$bin' render '$photo' --out '$t' --fit ${size}x${size} --format $f --quality $q ${speed[*]}"
            tcpu=$CPU trss=$RSS
            once vips "vipsthumbnail '$photo' --size $size -o '$v/v.$ext[Q=$q]'"
            vcpu=$CPU vrss=$RSS
            tf=$(ls "$t"/* | head -n1) vf="$v/v.$ext"
            vips copy "$tf" "$t/decoded.png" && vips copy "$vf" "$v/decoded.png"
            read -r tssim vssim < <("$out/venv/bin/python" "$here/ssim.py" "$ref" "$t/decoded.png" "$v/decoded.png" | awk '{print $2}' | paste -sd' ')
            printf '| %-22s | %4s | %-4s | %6s/%-6s | %5s/%-5s | %6s/%-6s | %7s/%-7s |\n' \
                "${name:0:22}" "$size" "$f" "$tcpu" "$vcpu" "$trss" "$vrss" \
                "$(($(stat -c %s "$tf") / 1024))" "$(($(stat -c %s "$vf") / 1024))" "$tssim" "$vssim"
        done
    done
done

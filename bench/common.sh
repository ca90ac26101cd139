# Shared by the benchmark scripts (sourced, not run): installing Debian
# packages, the reference photograph, the release binary, free ports.
# Expects $root (the repository) and $out (bench/out) to be set.

apt_install() {
    if [ "$(id -u)" = 0 ]; then
        apt-get install -y -q "$@" >/dev/null
    else
        sudo apt-get install -y -q "$@" >/dev/null
    fi
}

# wallpaper FILE: the path of FILE from the Debian package
# lomiri-wallpapers-20.04, downloaded into $out/pkg the first time.
wallpaper() {
    local photo
    photo=$(find "$out/pkg" -name "$1" 2>/dev/null | head -n1 || true)
    if [ -z "$photo" ]; then
        echo "downloading lomiri-wallpapers-20.04" >&2
        (cd "$out" && apt-get download lomiri-wallpapers-20.04 >/dev/null 2>&1 && dpkg -x lomiri-wallpapers-20.04_*.deb pkg)
        photo=$(find "$out/pkg" -name "$1" | head -n1)
    fi
    echo "$photo"
}

# release_tintype: the tintype binary to measure, $TINTYPE_BIN or a release
# build made here.
release_tintype() {
    if [ -n "${TINTYPE_BIN:-}" ]; then
        echo "$TINTYPE_BIN"
        return
    fi
    (cd "$root" && cargo build -q --release -p tintype)
    echo "${CARGO_TARGET_DIR:-$root/target}/release/tintype"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

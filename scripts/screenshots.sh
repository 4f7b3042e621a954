#!/usr/bin/env bash
# Renders the screenshots in docs/screenshots/:
# - the update dialog in every state, in English and Simplified Chinese,
#   light and dark: {en,zh-CN}-{state}.png and {en,zh-CN}-{state}-dark.png;
# - the Kuzflow demo's window, from a real install and server:
#   demo-update-available[-dark].png (1.0.0 with the offer of 1.1.0) and
#   demo-restarted[-dark].png (after the update);
# - the PyQt5 dialog, offscreen.
#
# Runs its own Xvfb. Debian/Ubuntu packages:
#   xvfb x11-apps libgl1-mesa-dri libegl1 libxkbcommon-x11-0 fonts-wqy-microhei
set -euo pipefail
cd "$(dirname "$0")/.."

out=docs/screenshots
mkdir -p "$out"
cargo build --workspace --bins --examples
bin="${CARGO_TARGET_DIR:-target}/debug"
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# Starts Xvfb with a screen of $1 (WIDTHxHEIGHT) and exports its DISPLAY.
start_xvfb() {
    local display=:$((90 + RANDOM % 100))
    Xvfb "$display" -screen 0 "$1x24" -nolisten tcp &
    pids+=($!)
    export DISPLAY=$display
    for _ in $(seq 50); do
        [[ -e /tmp/.X11-unix/X${display#:} ]] && break
        sleep 0.1
    done
}
# Xvfb has no GPU: Mesa's software renderer draws the OpenGL.
export LIBGL_ALWAYS_SOFTWARE=1

start_xvfb 1024x768
for theme in light dark; do
    suffix=$([[ $theme == dark ]] && echo -dark || true)
    for language in en zh-CN; do
        for state in prompt forced installing success failure; do
            timeout 60 "$bin/examples/screenshots" "$language" "$state" "$theme" \
                "$out/$language-$state$suffix.png"
            echo "$out/$language-$state$suffix.png"
        done
    done
done

# The demo: a store with 1.0.0 and 1.1.0 from the quickstart, served, and
# an install of 1.0.0 per theme. A screen the size of the demo's window,
# so the dump of the screen is the window.
"$bin/updraft" quickstart --dir "$work/quickstart" >/dev/null
port=$((20000 + RANDOM % 20000))
"$bin/updraft" serve --repo "$work/quickstart/store" --listen "127.0.0.1:$port" >/dev/null 2>&1 &
pids+=($!)
sleep 1
start_xvfb 640x480

# Runs the demo installed in $1 in theme $2 until it has checked for
# updates, and saves the screen as $3.
shoot_demo() {
    UPDRAFT_THEME=$2 LC_ALL=C "$1/current/bin/kuzflow-demo" --dir "$1" >/dev/null 2>&1 &
    local demo=$!
    pids+=($demo)
    sleep 6
    xwd -root -silent >"$work/screen.xwd"
    kill "$demo"
    wait "$demo" 2>/dev/null || true
    python3 scripts/xwd2png.py "$work/screen.xwd" "$3"
    echo "$3"
}

for theme in light dark; do
    suffix=$([[ $theme == dark ]] && echo -dark || true)
    app="$work/app-$theme"
    "$bin/updraft" install --server "http://127.0.0.1:$port" --app kuzflow-demo \
        --version 1.0.0 --dir "$app" \
        --trusted-root "$work/quickstart/store/metadata/root.json" >/dev/null
    shoot_demo "$app" "$theme" "$out/demo-update-available$suffix.png"
    "$bin/updraft" update --dir "$app" --yes >/dev/null
    shoot_demo "$app" "$theme" "$out/demo-restarted$suffix.png"
done

# The PyQt5 dialog and progress widget, offscreen (no display), from a real
# offer: needs the package installed (pip install ./python) and PyQt5.
if [[ ${SKIP_QT:-} != 1 ]]; then
    UPDRAFT_SCREENSHOTS=$out QT_QPA_PLATFORM=offscreen \
        python3 -m pytest -q -p no:cacheprovider python/tests/test_screenshots.py
fi

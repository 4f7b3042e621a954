#!/usr/bin/env bash
# Renders the update dialog in every state, in English and Simplified
# Chinese, into docs/screenshots/{en,zh-CN}-{state}.png.
#
# Needs a display: without $DISPLAY it starts Xvfb. Debian/Ubuntu packages:
#   xvfb libgl1-mesa-dri libegl1 fonts-wqy-microhei   (or fonts-noto-cjk)
set -euo pipefail
cd "$(dirname "$0")/.."

out=docs/screenshots
mkdir -p "$out"
cargo build --workspace --examples
bin="${CARGO_TARGET_DIR:-target}/debug/examples/screenshots"

xvfb_pid=
if [[ -z "${DISPLAY:-}" ]]; then
    display=:$((90 + RANDOM % 100))
    Xvfb "$display" -screen 0 1024x768x24 -nolisten tcp &
    xvfb_pid=$!
    trap 'kill "$xvfb_pid" 2>/dev/null || true' EXIT
    export DISPLAY=$display
    for _ in $(seq 50); do
        [[ -e /tmp/.X11-unix/X${display#:} ]] && break
        sleep 0.1
    done
fi
# Xvfb has no GPU: Mesa's software renderer draws the OpenGL.
export LIBGL_ALWAYS_SOFTWARE=1

for language in en zh-CN; do
    for state in prompt forced installing success failure; do
        timeout 60 "$bin" "$language" "$state" "$out/$language-$state.png"
        echo "$out/$language-$state.png"
    done
done

# The PyQt5 dialog and progress widget, offscreen (no display), from a real
# offer: needs the package installed (pip install ./python) and PyQt5.
UPDRAFT_SCREENSHOTS=$out QT_QPA_PLATFORM=offscreen \
    python3 -m pytest -q -p no:cacheprovider python/tests/test_screenshots.py

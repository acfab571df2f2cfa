#!/usr/bin/env bash
# Regenerate the documentation images in docs/img/:
#   schedule.png                 `lrmon preview` of the demo's schedule
#   lr_vs_loss.png               `lrmon plot` of a demo run (TensorBoard logdir)
#   tensorboard_lr_vs_loss.png   TensorBoard's Custom Scalars "lr vs loss" chart of that run, taken with headless
#                                Chromium (Debian's `chromium` package, installed here with apt-get if missing)
# Usage: scripts/screenshots.sh [STEPS]   (default 600; the demo is examples/quickstart.py)
# TensorBoard listens on 127.0.0.1 only and is stopped when the script ends; the demo run goes to a temporary folder.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
steps="${1:-600}"
bash "$root/scripts/venv.sh" all
cd "$root"
py="$root/.venv/bin/python"
img="$root/docs/img"
mkdir -p "$img"
work="$(mktemp -d -t lrmon-screenshots.XXXXXX)"
tb_pid=""
cleanup() {
  if [ -n "$tb_pid" ] && kill -0 "$tb_pid" 2>/dev/null; then
    kill -TERM -- "-$tb_pid" 2>/dev/null || kill -TERM "$tb_pid" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$tb_pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL -- "-$tb_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "== demo run ($steps steps) -> $work/demo"
WANDB_SILENT=true "$py" examples/quickstart.py --out "$work/demo" --steps "$steps" > "$work/demo.log" 2>&1 \
  || { cat "$work/demo.log"; exit 1; }
logdir="$work/demo/tensorboard"
warmup=$((steps / 10))

echo "== lrmon preview -> docs/img/schedule.png"
"$py" -m lrmon preview --base-lr 3e-3 --warmup-steps "$warmup" --total-steps "$steps" --warmup-start-lr 1e-5 \
  --eta-min 1e-5 --out "$img/schedule.png"

echo "== lrmon plot -> docs/img/lr_vs_loss.png"
"$py" -m lrmon plot "$logdir" --out "$img/lr_vs_loss.png" --title "demo run (examples/quickstart.py)"

echo "== TensorBoard custom scalars -> docs/img/tensorboard_lr_vs_loss.png"
browser="$(command -v chromium || command -v chromium-browser || true)"
if [ -z "$browser" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "chromium is missing; install it as root: apt-get update && apt-get install -y chromium" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium > "$work/apt.log" 2>&1 || { cat "$work/apt.log"; exit 1; }
  browser="$(command -v chromium)"
fi
port="$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
# its own session, so that cleanup stops TensorBoard and its data server together
setsid "$root/.venv/bin/tensorboard" --logdir "$logdir" --host 127.0.0.1 --port "$port" > "$work/tensorboard.log" 2>&1 &
tb_pid=$!
disown "$tb_pid"
url="http://127.0.0.1:$port"
# wait until the server answers and has loaded the run's layout and scalars (TensorBoard imports TensorFlow: ~10 s)
"$py" - "$url" <<'EOF' || { cat "$work/tensorboard.log"; exit 1; }
import json, sys, time, urllib.request
url, deadline = sys.argv[1], time.monotonic() + 180
while time.monotonic() < deadline:
    try:
        tags = json.load(urllib.request.urlopen(url + "/data/plugin/scalars/tags", timeout=5))
        layout = json.load(urllib.request.urlopen(url + "/data/plugin/custom_scalars/layout", timeout=5))
        if any({"lr", "loss"} <= set(run_tags) for run_tags in tags.values()) and layout.get("category"):
            sys.exit(0)
    except OSError:
        pass
    time.sleep(0.5)
sys.exit("TensorBoard did not serve the run in time")
EOF
profile="$work/chromium-profile"
mkdir -p "$profile"
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --disable-dev-shm-usage --hide-scrollbars --user-data-dir="$profile" \
  --window-size=1280,800 --virtual-time-budget=20000 --screenshot="$img/tensorboard_lr_vs_loss.png" \
  "$url/?darkMode=false#custom_scalars&_smoothingWeight=0" > "$work/chromium.log" 2>&1 || { cat "$work/chromium.log"; exit 1; }
[ -s "$img/tensorboard_lr_vs_loss.png" ] || { echo "no screenshot written" >&2; cat "$work/chromium.log"; exit 1; }

echo "wrote:"
ls -l "$img"/schedule.png "$img"/lr_vs_loss.png "$img"/tensorboard_lr_vs_loss.png

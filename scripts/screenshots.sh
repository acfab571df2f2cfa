#!/usr/bin/env bash
# Regenerate the documentation images in docs/img/:
#   schedule.png                 `lrmon preview` of the demo's schedule
#   lr_vs_loss.png               `lrmon plot` of a demo run (TensorBoard logdir)
#   tensorboard_lr_vs_loss.png   TensorBoard's Custom Scalars tab of that run (one chart per quantity: learning
#                                rate, loss, phase)
#   tensorboard_figure.png       TensorBoard's Images tab: the sink's LR-vs-loss figure (tag lrmon/lr_vs_loss)
# The TensorBoard pictures are taken with headless Chromium (Debian's `chromium` package, installed here with
# apt-get if missing).
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

echo "== TensorBoard custom scalars and images -> docs/img/tensorboard_lr_vs_loss.png, tensorboard_figure.png"
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
# wait until the server answers and has loaded the run's layout, scalars and figure (TensorBoard imports TensorFlow:
# ~10 s)
"$py" - "$url" <<'EOF' || { cat "$work/tensorboard.log"; exit 1; }
import json, sys, time, urllib.request
from lrmon.integrations.tensorboard import FIGURE_TAG
url, deadline = sys.argv[1], time.monotonic() + 180
while time.monotonic() < deadline:
    try:
        tags = json.load(urllib.request.urlopen(url + "/data/plugin/scalars/tags", timeout=5))
        layout = json.load(urllib.request.urlopen(url + "/data/plugin/custom_scalars/layout", timeout=5))
        images = json.load(urllib.request.urlopen(url + "/data/plugin/images/tags", timeout=5))
        if (any({"lr", "loss"} <= set(run_tags) for run_tags in tags.values()) and layout.get("category")
                and any(FIGURE_TAG in run_tags for run_tags in images.values())):
            sys.exit(0)
    except OSError:
        pass
    time.sleep(0.5)
sys.exit("TensorBoard did not serve the run in time")
EOF
# Chromium is driven over the DevTools protocol on a pipe (--remote-debugging-pipe: commands on fd 3, replies on
# fd 4, NUL-terminated JSON), so that a page can be clicked before the picture is taken ("Show actual image size").
cat > "$work/screenshot.py" <<'EOF'
"""screenshot.py BROWSER PROFILE URL OUT WIDTH HEIGHT READY_JS: load URL, evaluate READY_JS until it returns true
(it may click first), wait for the charts to draw, and write a WIDTHxHEIGHT PNG of the page to OUT."""
import base64, json, os, subprocess, sys, time

browser, profile, url, out, width, height, ready_js = sys.argv[1:8]
to_child, to_us = os.pipe(), os.pipe()


def child_pipes():  # the protocol pipe: the browser reads fd 3 and writes fd 4
    read, write = os.dup(to_child[0]), os.dup(to_us[1])
    os.dup2(read, 3)
    os.dup2(write, 4)


flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
         "--hide-scrollbars", f"--user-data-dir={profile}", f"--window-size={width},{height}",
         "--remote-debugging-pipe", "about:blank"]
browser_log = open(os.path.join(profile, "chromium.log"), "w")
chromium = subprocess.Popen([browser, *flags], preexec_fn=child_pipes, close_fds=False, stdin=subprocess.DEVNULL,
                            stdout=browser_log, stderr=subprocess.STDOUT)
os.close(to_child[0]), os.close(to_us[1])
pending, last_id = b"", 0


def call(method, session=None, **params):
    """Send one command and return its result (events in between are skipped)."""
    global pending, last_id
    last_id += 1
    message = {"id": last_id, "method": method, "params": params, **({"sessionId": session} if session else {})}
    os.write(to_child[1], json.dumps(message).encode() + b"\0")
    while True:
        while b"\0" not in pending:
            chunk = os.read(to_us[0], 1 << 20)
            if not chunk:
                sys.exit(f"chromium exited during {method}; see {browser_log.name}")
            pending += chunk
        raw, pending = pending.split(b"\0", 1)
        reply = json.loads(raw)
        if reply.get("id") == last_id:
            if "error" in reply:
                sys.exit(f"{method}: {reply['error']}")
            return reply["result"]


try:
    target = call("Target.createTarget", url="about:blank")["targetId"]
    session = call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    call("Emulation.setDeviceMetricsOverride", session, width=int(width), height=int(height), deviceScaleFactor=1,
         mobile=False)
    call("Page.navigate", session, url=url)
    deadline = time.monotonic() + 120
    while call("Runtime.evaluate", session, expression=ready_js, returnByValue=True)["result"].get("value") is not True:
        if time.monotonic() > deadline:
            sys.exit(f"{url}: not ready after 120 s")
        time.sleep(0.5)
    time.sleep(3)  # the charts animate in
    with open(out, "wb") as picture:
        picture.write(base64.b64decode(call("Page.captureScreenshot", session, format="png")["data"]))
finally:
    chromium.terminate()
    chromium.wait(timeout=30)
EOF
# JavaScript: every element of the page, through the shadow roots of TensorBoard's web components
elements='const all = [];
  const walk = (root) => {
    for (const e of root.querySelectorAll("*")) { all.push(e); if (e.shadowRoot) walk(e.shadowRoot); }
  };
  walk(document);'
# screenshot OUT WIDTH HEIGHT FRAGMENT READY_JS: one TensorBoard page, in a fresh browser profile
screenshot() {
  local profile
  profile="$(mktemp -d "$work/chromium-profile.XXXXXX")"
  "$py" "$work/screenshot.py" "$browser" "$profile" "$url/?darkMode=false#$4" "$1" "$2" "$3" "$5" \
    || { cat "$profile/chromium.log"; exit 1; }
  [ -s "$1" ] || { echo "no screenshot written to $1" >&2; exit 1; }
}
# the three custom-scalars charts (TensorBoard's default smoothing: it applies to the loss chart only)
screenshot "$img/tensorboard_lr_vs_loss.png" 1280 800 "custom_scalars" \
  "(() => { $elements return all.filter(e => /^TF-CUSTOM-SCALAR-.*-CARD$/.test(e.tagName)).length >= 3; })()"
# the Images tab with "Show actual image size" ticked (by default the figure is shrunk to a small card)
screenshot "$img/tensorboard_figure.png" 1600 1000 "images" \
  "(() => { $elements
    const box = all.find(e => e.tagName === 'PAPER-CHECKBOX' && e.textContent.includes('actual image size'));
    const shown = all.some(e => e.tagName === 'IMG' && e.complete && e.naturalWidth > 0);
    if (box && shown && !box.checked) box.click();
    return Boolean(box && shown && box.checked); })()"

echo "wrote:"
ls -l "$img"/schedule.png "$img"/lr_vs_loss.png "$img"/tensorboard_lr_vs_loss.png "$img"/tensorboard_figure.png

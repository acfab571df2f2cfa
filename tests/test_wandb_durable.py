"""``commit_and_wait`` and ``last_logged_step`` against real offline wandb 0.31, in child processes.

Each child is a training process: it logs rows with ``run.log(..., step=t)`` and calls ``commit_and_wait``; the
parent SIGKILLs it the moment it prints ``ACK`` (wandb-core then exits too: "parent process exited") and reads the
``.wandb`` file back with wandb's own reader (``leet inspect``). ``x_transaction_log_flush_interval`` stays at
wandb's default (15 s), so only the wait can have put the rows in the file. The child loads
``integrations/_wandb_durable.py`` by path: importing the ``lrmon`` package (jax) would cost seconds per child.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from contextlib import suppress
from pathlib import Path

import pytest

from lrmon.integrations._wandb_durable import last_logged_step
from lrmon.integrations.wandb import inspect_records

N = 300
MODULE = Path(__file__).resolve().parents[1] / "integrations" / "_wandb_durable.py"

CHILD = r'''
import importlib.util, json, os, signal, sys, threading, time
from pathlib import Path

spec = importlib.util.spec_from_file_location("_wandb_durable", sys.argv[1])
durable = importlib.util.module_from_spec(spec)
spec.loader.exec_module(durable)
import wandb

args = json.loads(sys.argv[2])
settings = wandb.Settings(console="off", silent=True, x_disable_stats=True, x_disable_meta=True,
                          x_save_requirements=False)
init = {"id": args["id"], "resume": "allow"} if args.get("id") else {}
run = wandb.init(mode="offline", dir=args["dir"], project="lrmon-durable", reinit="create_new", settings=settings,
                 **init)
info = {"sync_file": run.settings.sync_file, "flush_interval": run.settings.x_transaction_log_flush_interval,
        "step0": run.step, "resumed": bool(run.resumed)}


def say(**extra):
    print(json.dumps({**info, **extra}), flush=True)


def core_pid():
    """wandb-core: this process's child whose command line names it."""
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        for pid in (task / "children").read_text().split():
            if b"wandb-core" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return int(pid)
    raise RuntimeError("no wandb-core child")


def timed(fn):
    start = time.monotonic()
    try:
        return {"result": fn(), "s": time.monotonic() - start}
    except BaseException as error:
        return {"error": type(error).__name__, "s": time.monotonic() - start}


if args["mode"] == "log":
    start, stop = args["start"], args["start"] + args["n"]
    for t in range(start, stop):
        run.log({"x": float(t)}, step=t)
        if t == args.get("wait_at"):
            info["ok"] = durable.commit_and_wait(run, 20.0)
    if args.get("wait_end"):
        info["ok"] = durable.commit_and_wait(run, 20.0)
        info["ok_again"] = durable.commit_and_wait(run, 20.0)  # nothing pending: no row
    if args.get("finish"):
        run.finish()
        wandb.teardown()
        say()
        sys.exit(0)
    say()
    print("ACK", flush=True)
    time.sleep(60)
else:  # "core": a stopped, then a killed wandb-core
    for t in range(50):
        run.log({"x": float(t)}, step=t)
    pid = core_pid()
    out = {}
    os.kill(pid, signal.SIGSTOP)
    out["stopped"] = timed(lambda: durable.commit_and_wait(run, 1.0))
    # the socket fills: run.log blocks in a thread, and so would any send of commit_and_wait
    big = "p" * 8192  # 8 KiB rows: a few hundred fill the socket buffers
    logger = threading.Thread(target=lambda: [run.log({"x": float(t), "text": big}, step=t) for t in range(50, 550)],
                              daemon=True)
    logger.start()
    time.sleep(0.5)
    out["blocked_log"] = logger.is_alive()
    out["stopped_full"] = timed(lambda: durable.commit_and_wait(run, 1.0))
    os.kill(pid, signal.SIGCONT)
    logger.join(30)
    out["resumed"] = timed(lambda: durable.commit_and_wait(run, 10.0))
    os.kill(pid, signal.SIGSTOP)
    box = {}
    waiter = threading.Thread(target=lambda: box.update(timed(lambda: durable.commit_and_wait(run, 20.0))),
                              daemon=True)
    waiter.start()
    time.sleep(0.3)
    os.kill(pid, signal.SIGKILL)  # dies while the call waits
    os.waitpid(pid, 0)
    waiter.join(15)
    out["killed_while_waiting"] = dict(box, hung=waiter.is_alive())
    out["dead"] = timed(lambda: durable.commit_and_wait(run, 10.0))
    say(**out)
    os._exit(0)  # wandb's exit hooks would talk to the dead service
'''


def _env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true")
    for var in ("WANDB_DIR", "WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):
        (tmp / var.lower()).mkdir(parents=True, exist_ok=True)
        env[var] = str(tmp / var.lower())
    return env


def _cores_of(pid: int) -> list[int]:
    """The wandb-core processes serving process ``pid`` (``--pid <pid>`` on their command line)."""
    found = []
    for proc in Path("/proc").iterdir():
        with suppress(OSError):
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if proc.name.isdigit() and b"wandb-core" in argv[0] and b"--pid" in argv:
                if argv[argv.index(b"--pid") + 1] == str(pid).encode():
                    found.append(int(proc.name))
    return found


def _child(tmp: Path, timeout: float = 45.0, **args: object) -> dict:
    """Run the child; SIGKILL it (it alone) the moment it prints ``ACK``. Returns its JSON line.

    Lines are read with a deadline: a wandb-core left SIGSTOPped by a failing child would keep the pipe open.
    At the deadline the child and its wandb-core are killed and the test fails.
    """
    tmp.mkdir(parents=True, exist_ok=True)
    script = tmp / "child.py"
    script.write_text(CHILD)
    args.setdefault("dir", str(tmp / "runs"))
    Path(str(args["dir"])).mkdir(parents=True, exist_ok=True)
    with open(tmp / "child.err", "w") as err:
        proc = subprocess.Popen([sys.executable, str(script), str(MODULE), json.dumps(args)], cwd=tmp,
                                env=_env(tmp), stdout=subprocess.PIPE, stderr=err, text=True,
                                stdin=subprocess.DEVNULL)
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=lambda: [*map(lines.put, proc.stdout), lines.put(None)], daemon=True).start()
    deadline = time.monotonic() + timeout
    info = None
    try:
        while True:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            if line is None:
                break
            if line.startswith("{"):
                info = json.loads(line)
            elif line.strip() == "ACK":
                proc.send_signal(signal.SIGKILL)  # at once: no time for wandb-core to catch up
                break
        proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except (queue.Empty, subprocess.TimeoutExpired):
        for pid in [proc.pid, *_cores_of(proc.pid)]:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait()
        pytest.fail(f"child hung for {timeout:g} s: {(tmp / 'child.err').read_text()[-3000:]}")
    assert info is not None, f"child printed nothing (rc {proc.returncode}): {(tmp / 'child.err').read_text()[-3000:]}"
    return info


def _rows(wandb_file: str | Path) -> list[dict]:
    return [r["history"]["item"] for r in inspect_records(wandb_file) if r.get("type") == "history"]


def test_rows_survive_sigkill_right_after_the_wait(tmp_path: Path) -> None:
    for attempt in range(3):
        info = _child(tmp_path / f"a{attempt}", mode="log", start=0, n=N, wait_end=True)
        assert info["flush_interval"] == 15.0  # wandb's default: the periodic flush cannot have done it
        assert info["ok"] is True and info["ok_again"] is True
        rows = _rows(info["sync_file"])
        # every row, the pending last one included, and no spurious row from the commits
        assert [row["_step"] for row in rows] == list(range(N)), f"attempt {attempt}: {len(rows)} rows"
        assert all(row["x"] == row["_step"] for row in rows)


@pytest.mark.slow
def test_without_the_wait_rows_are_lost(tmp_path: Path) -> None:
    """The control: the same child without ``commit_and_wait`` loses the rows wandb-core still buffered."""
    counts = [len(_rows(_child(tmp_path / f"c{i}", mode="log", start=0, n=N)["sync_file"])) for i in range(3)]
    assert min(counts) < N - 1, counts  # N - 1: the last row is pending, never committed


def test_stopped_or_dead_wandb_core_never_hangs(tmp_path: Path) -> None:
    info = _child(tmp_path, mode="core")
    stopped = info["stopped"]
    assert stopped.get("result") is False and stopped["s"] < 2.0, stopped  # timeout: False, on time
    assert info["blocked_log"], "run.log did not block on the stopped wandb-core: the next check proves nothing"
    full = info["stopped_full"]
    assert full.get("result") is False and full["s"] < 2.0, full  # even with its sends blocked
    assert info["resumed"].get("result") is True, info["resumed"]
    waiting = info["killed_while_waiting"]
    assert not waiting["hung"] and waiting.get("error") == "ConnectionResetError" and waiting["s"] < 2.0, waiting
    dead = info["dead"]
    assert dead.get("error") == "ConnectionResetError" and dead["s"] < 1.0, dead


def test_offline_resume_of_a_killed_attempt(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    # attempt 1: a "state save" (commit_and_wait) at step 99, SIGKILLed at step 149
    first = _child(tmp_path / "one", dir=str(runs), id="durable1", mode="log", start=0, n=150, wait_at=99)
    assert first["ok"] is True and first["step0"] == 0
    files = sorted(runs.glob("wandb/offline-run-*-durable1*/run-durable1.wandb"))
    assert [str(f) for f in files] == [first["sync_file"]]
    last = last_logged_step(files)
    assert last is not None and 99 <= last <= 149  # 0..99 promised; later rows as far as wandb-core got
    # a file cut anywhere (what a SIGKILL leaves) reads up to its last complete record
    size = files[0].stat().st_size
    cuts = sorted({7, 5000, 32768, size // 2, size - 1, size})  # increasing whatever the file size
    seen = []
    for index, cut in enumerate(cuts):
        copy = tmp_path / f"cut{index}" / "run-durable1.wandb"
        copy.parent.mkdir()
        with open(files[0], "rb") as src:
            copy.write_bytes(src.read(cut))
        seen.append(last_logged_step([copy]))
    steps = [-1 if s is None else s for s in seen]
    assert steps == sorted(steps) and seen[-1] == last and seen[0] is None
    assert last_logged_step([]) is None
    empty = tmp_path / "offline-run-x-durable1-1"  # an attempt killed before wandb-core made its file
    empty.mkdir()
    assert last_logged_step([empty]) is None and last_logged_step([*files, empty]) == last

    # attempt 2: same id, resume="allow": a new directory, steps restart at 0 locally, step=k > 0 is accepted
    second = _child(tmp_path / "two", dir=str(runs), id="durable1", mode="log", start=last + 1, n=50,
                    wait_end=True, finish=True)
    assert second["step0"] == 0 and second["resumed"] is False
    assert second["sync_file"] != first["sync_file"]
    assert Path(second["sync_file"]).parent.name.startswith("offline-run-")
    assert [row["_step"] for row in _rows(second["sync_file"])] == list(range(last + 1, last + 51))
    both = sorted(runs.glob("wandb/offline-run-*-durable1*/run-durable1.wandb"))
    assert len(both) == 2
    assert last_logged_step(both) == last + 50

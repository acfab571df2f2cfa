"""The ``lrmon`` command (also ``python -m lrmon``).

::

    lrmon preview --base-lr 1e-3 --warmup-steps 100 --total-steps 1000 [--warmup-start-lr 0] [--eta-min 0]
                  [--out schedule.png] [--size 1200x650]
    lrmon plot RUN [--out lr_vs_loss.png] [--loss-tag loss] [--size 1400x800]
    lrmon inspect STATE [--json]

``preview`` draws the planned curve (phases shaded, events marked and listed) and prints a summary; ``plot`` draws
a logged run (a TensorBoard logdir or a W&B offline run directory): LR and loss against step and loss against LR;
``inspect`` prints a monitor state document (a ``lrmon_state.json``, a TensorBoard logdir or a W&B artifact
directory holding one) and says whether it is valid.

Exit status: 0 success; 1 the input could not be used (an invalid or corrupted state, an unreadable run, a file
that cannot be written, a missing optional dependency); 2 bad arguments, including a schedule configuration the
schedule refuses. Every error is one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any, NoReturn, Sequence

from lrmon.runs import RunReadError

if TYPE_CHECKING:
    from lrmon.state import MonitorState

__all__ = ["main", "build_parser", "describe_state"]

_EXAMPLES = """\
examples:
  lrmon preview --base-lr 3e-4 --warmup-steps 500 --total-steps 10000 --eta-min 1e-5 --out schedule.png
  lrmon plot runs/optax_loop/tensorboard --out lr_vs_loss.png
  lrmon plot runs/optax_loop/wandb --out lr_vs_loss_wandb.png
  lrmon inspect runs/optax_loop/tensorboard/lrmon_state.json
"""


class UsageError(Exception):
    """Bad arguments or configuration: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but an argument error is one line on stderr (then exit status 2), without the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT in pixels, e.g. 1200x650, got {text!r}") from None
    if not (100 <= width <= 10000 and 100 <= height <= 10000):
        raise argparse.ArgumentTypeError(f"width and height must be between 100 and 10000 pixels, got {text!r}")
    return width, height


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``lrmon`` command."""
    from lrmon import __version__

    parser = _Parser(
        prog="lrmon",
        description="Preview a warmup + cosine LR schedule, plot a logged run, inspect a monitor state.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"lrmon {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    preview = commands.add_parser(
        "preview", help="draw the planned schedule (PNG) and print a summary",
        description="Draw the planned warmup + cosine schedule with its phases and events, and print a summary.",
    )
    preview.add_argument("--schedule", metavar="NAME", help="a schedule other than warmup + cosine, e.g. "
                         "optax.sgdr_schedule or braintools.StepLR (see --list); its arguments in --args")
    preview.add_argument("--args", type=json.loads, default=None, metavar="JSON",
                         help="the schedule's arguments as a JSON object, e.g. '{\"init_value\": 1e-3, "
                              "\"decay_steps\": 1000}'")
    preview.add_argument("--list", action="store_true", help="list the schedules --schedule accepts")
    preview.add_argument("--steps", type=int, default=None, metavar="N",
                         help="draw steps 0..N (default: the last event plus 5%%; needed for endless events)")
    preview.add_argument("--base-lr", type=float, nargs="+", metavar="LR",
                         help="peak LR reached at the end of warmup; several values for several parameter groups")
    preview.add_argument("--warmup-steps", type=int, metavar="W", help="linear warmup steps (>= 0)")
    preview.add_argument("--total-steps", type=int, metavar="T", help="planned steps (>= W, >= 1)")
    preview.add_argument("--warmup-start-lr", type=float, default=0.0, metavar="LR",
                         help="LR of step 0 when W > 0 (default 0)")
    preview.add_argument("--eta-min", type=float, default=0.0, metavar="LR",
                         help="floor of the cosine, held after T (default 0)")
    preview.add_argument("--out", default="schedule.png", metavar="PNG", help="output image (default schedule.png)")
    preview.add_argument("--size", type=_size, default=None, metavar="WxH",
                         help="image size in pixels (default 1200x650)")
    preview.add_argument("--no-plot", action="store_true", help="only print the summary")
    preview.set_defaults(handler=_preview)

    plot = commands.add_parser(
        "plot", help="plot a logged run: LR and loss against step, loss against LR",
        description="Plot a run logged by lrmon: LR and loss against step (phases shaded, events marked) and "
                    "loss against LR. RUN is a TensorBoard logdir or a W&B offline run directory "
                    "(offline-run-..., or the wandb directory holding it).",
    )
    plot.add_argument("run", metavar="RUN", help="TensorBoard logdir or W&B offline run directory")
    plot.add_argument("--out", default="lr_vs_loss.png", metavar="PNG", help="output image (default lr_vs_loss.png)")
    plot.add_argument("--loss-tag", default="loss", metavar="TAG", help="the loss metric's tag (default loss)")
    plot.add_argument("--size", type=_size, default=None, metavar="WxH",
                      help="image size in pixels (default 1400x800)")
    plot.add_argument("--title", default=None, help="title of the figure (default: the run's path)")
    plot.set_defaults(handler=_plot)

    inspect = commands.add_parser(
        "inspect", help="print a monitor state document and check it",
        description="Print a monitor state (lrmon_state.json, or a TensorBoard logdir / W&B artifact directory "
                    "holding one) and say whether it is valid. Exit status 1 if it is not.",
    )
    inspect.add_argument("state", metavar="STATE", help="state file, TensorBoard logdir or W&B artifact directory")
    inspect.add_argument("--json", action="store_true", help="print the state document as indented JSON")
    inspect.set_defaults(handler=_inspect)
    return parser


# -- commands -----------------------------------------------------------------------------------------------------
def _preview(args: argparse.Namespace) -> int:
    from lrmon import plotting
    from lrmon.schedules import curve_names

    if args.list:
        print("\n".join(["warmup_cosine (the default: --base-lr, --warmup-steps, --total-steps)",
                         *(name for name in curve_names() if name != "function")]))
        return 0
    config = _preview_curve(args)
    try:
        summary = plotting.schedule_summary(config, args.steps)
    except ValueError as error:
        raise UsageError(f"{error}: pass --steps N") from None
    for line in summary:
        print(line)
    if not args.no_plot:
        out = plotting.plot_schedule(config, args.out, size=args.size or plotting.PREVIEW_SIZE, end=args.steps)
        width, height = args.size or plotting.PREVIEW_SIZE
        print(f"wrote {out} ({width}x{height} px)")
    return 0


def _preview_curve(args: argparse.Namespace) -> Any:
    """The curve ``lrmon preview`` draws: ``--schedule`` with ``--args``, or the warmup + cosine flags."""
    from lrmon.curve import CurveConfig
    from lrmon.schedules import CURVE_KEY, curve_from_dict

    if args.schedule is not None:
        if not isinstance(args.args, (dict, type(None))):
            raise UsageError("--args must be a JSON object of the schedule's arguments")
        try:
            if args.schedule.startswith("braintools."):  # braintools' own constructor, then its curve
                return _braintools_curve(args.schedule.split(".", 1)[1], args.args or {})
            return curve_from_dict({CURVE_KEY: args.schedule, "args": args.args or {}})
        except (TypeError, ValueError) as error:
            raise UsageError(f"invalid schedule: {error}") from None
    base_lrs = args.base_lr[0] if len(args.base_lr) == 1 else list(args.base_lr)
    try:
        return CurveConfig(base_lrs, args.warmup_steps, args.total_steps, args.warmup_start_lr, args.eta_min)
    except (TypeError, ValueError) as error:
        raise UsageError(f"invalid schedule: {error}") from None


def _braintools_curve(name: str, arguments: dict) -> Any:
    """The curve of braintools' scheduler ``name`` built by braintools' own constructor with ``arguments``."""
    from lrmon._optional import optional_import
    from lrmon.schedules.braintools import curve_of

    optim = optional_import("braintools.optim", needed_by=f"lrmon preview --schedule braintools.{name}",
                            extra="braintools")
    scheduler = getattr(optim, name, None)
    if not isinstance(scheduler, type) or name.startswith("_"):
        raise ValueError(f"braintools.optim has no scheduler {name!r}")
    return curve_of(scheduler(**arguments))


def _plot(args: argparse.Namespace) -> int:
    from lrmon import plotting, runs

    if runs.find_run(args.run)[0] == "tensorboard":
        from lrmon.integrations.tensorboard import prefer_tensorboard_stub

        prefer_tensorboard_stub()  # this process never needs TensorFlow itself: read without it
    data = runs.read_run(args.run, loss_tag=args.loss_tag)
    lr_points = sum(len(steps) for steps, _ in data.lrs.values())
    loss_points = 0 if data.loss is None else len(data.loss[0])
    print(f"read {data.source}: {len(data.lrs)} LR series ({lr_points} points), "
          f"{loss_points} '{args.loss_tag}' points, {len(data.events)} events")
    if data.loss is None:
        print(f"lrmon plot: note: no '{args.loss_tag}' series in this run; drawing the LR only", file=sys.stderr)
    for step, kind, detail in data.events:
        print(f"  event {kind} at step {step}: {detail}")
    out = plotting.plot_run(data, args.out, size=args.size or plotting.PLOT_SIZE, title=args.title)
    width, height = args.size or plotting.PLOT_SIZE
    print(f"wrote {out} ({width}x{height} px)")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from lrmon.state import StateError, read_state, state_to_dict

    try:
        state = read_state(args.state)
    except StateError as error:
        print(f"lrmon inspect: INVALID: {_one_line(error)}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(state_to_dict(state), indent=2, sort_keys=True))
    else:
        print(describe_state(state))
    print(f"valid: yes ({args.state}: checksum and every field check out)")
    return 0


def _phase_description(state: MonitorState) -> str:
    from lrmon.curve import CurveConfig
    from lrmon.schedules._function import FunctionCurve

    config, step = state.config, state.step
    if isinstance(config, FunctionCurve):
        return "phases unknown: a plain schedule function"
    phase = config.phases[int(config.phase_at(step))]
    if isinstance(config, CurveConfig):
        phase = "past the end" if step >= config.total_steps else phase
        return f"{phase}, {100.0 * step / config.total_steps:.1f}% of total_steps"
    return phase


def _next_event(state: MonitorState) -> str:
    from lrmon.state import MAX_STEP

    upcoming = state.config.events(state.step, MAX_STEP)[:1]
    if not upcoming:
        return "none"
    kind, step = upcoming[0]
    return f"{kind} at step {step}"


def describe_state(state: MonitorState) -> str:
    """A human-readable multi-line summary of ``state`` (for ``lrmon inspect``)."""
    from lrmon.curve import CurveConfig

    config = state.config
    events = ", ".join(f"{kind}@{step}" for kind, step in state.emitted_events) or "none"
    rows = [("written at", state.written_at), ("schedule", state.schedule_class)]
    if isinstance(config, CurveConfig):
        rows += [
            ("base_lrs", f"{list(config.base_lrs)} ({config.num_groups} parameter group"
                         f"{'s' * (config.num_groups > 1)})"),
            ("warmup_steps", str(config.warmup_steps)),
            ("total_steps", str(config.total_steps)),
            ("warmup_start_lr", repr(config.warmup_start_lr)),
            ("eta_min", repr(config.eta_min)),
        ]
    else:
        from lrmon.plotting import describe_curve

        rows.append(("curve", describe_curve(config)))
    rows += [
        ("step", f"{state.step} ({_phase_description(state)})"),
        ("last logged step", "none" if state.last_logged_step is None else str(state.last_logged_step)),
        ("events emitted", events),
        ("next event", _next_event(state)),
    ]
    rows += [(f"tracker {name}", json.dumps(value, sort_keys=True)) for name, value in sorted(state.trackers.items())]
    rows.append(("monitor config", json.dumps(state.monitor_config, sort_keys=True)))
    width = max(len(label) for label, _ in rows) + 1
    lines = [f"lrmon monitor state (schema {state.schema}, version {state.version})"]
    lines += [f"  {label + ':':<{width}} {value}" for label, value in rows]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``lrmon`` command with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    prog = f"lrmon {args.command}"
    if args.command == "preview" and args.schedule is None and not args.list:
        missing = [flag for flag, value in (("--base-lr", args.base_lr), ("--warmup-steps", args.warmup_steps),
                                            ("--total-steps", args.total_steps)) if value is None]
        if missing:
            parser.error(f"the following arguments are required: {', '.join(missing)} "
                         "(or --schedule NAME --args JSON)")
    try:
        return args.handler(args)
    except UsageError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    except ImportError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `lrmon preview ... | head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except (RunReadError, OSError) as error:
        print(f"{prog}: error: {_one_line(error)}", file=sys.stderr)
        return 1


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

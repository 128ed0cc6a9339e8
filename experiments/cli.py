"""The ``mfg`` command line.

    mfg run [CONFIG.yaml] [--set path.to.key=value ...] [--out DIR]
    mfg resume RUN_DIR [--new-run | --repair]
    mfg eval RUN_DIR [--set evaluation.key=value ...] [--tag NAME]
    mfg nplayer RUN_DIR [--set nplayer.key=value ...]
    mfg export RUN_DIR [--out DIR]
    mfg serve --platform P (--policy DIR | --autoscaler A) (--prometheus URL | --observations FILE) ...
    mfg plot RUN_DIR
    mfg list

``mfg run`` without a config runs ``experiments/default.yaml``.  Each run writes a run
folder (see ``experiments.runner``) and prints its summary as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXPERIMENTS_DIR = Path(__file__).resolve().parent
DEFAULT_EXPERIMENT = EXPERIMENTS_DIR / "default.yaml"


def experiment_files() -> list[Path]:
    """The YAML experiments shipped with the library."""
    return sorted(EXPERIMENTS_DIR.glob("*.yaml"))


def _resolve_config(name: str | None) -> Path:
    if name is None:
        return DEFAULT_EXPERIMENT
    path = Path(name)
    if path.is_file():
        return path
    shipped = EXPERIMENTS_DIR / (name if name.endswith(".yaml") else f"{name}.yaml")
    if shipped.is_file():
        return shipped
    known = ", ".join(p.stem for p in experiment_files())
    raise SystemExit(f"no experiment config {name!r} (not a file, not a shipped experiment; shipped: {known})")


def _summary(run_dir: Path) -> int:
    summary = json.loads((run_dir / "summary.json").read_text())
    print(json.dumps(summary, indent=1))
    print(f"run folder: {run_dir}")
    return 0


def cmd_run(args) -> int:
    from experiments.config import ConfigError, load_config
    from experiments.runner import start

    path = _resolve_config(args.config)
    try:
        config = load_config(path, args.set)
    except ConfigError as err:
        raise SystemExit(str(err))
    try:
        run_dir = start(config, args.out, progress=not args.no_progress)
    except (ValueError, NotImplementedError) as err:
        raise SystemExit(f"cannot run {path}: {err}")
    return _summary(run_dir)


def cmd_resume(args) -> int:
    from experiments.runner import resume

    run_dir = _or_exit(f"resume {args.run_dir}", resume, args.run_dir, progress=not args.no_progress,
                       repair=args.repair, new_run=args.new_run)
    return _summary(Path(run_dir))


def _or_exit(what: str, fn, *args, **kwargs):
    """``fn(*args, **kwargs)``; a missing run folder or checkpoint, or a bad config or
    value, ends the program with one line naming ``what`` and the reason."""
    from experiments.config import ConfigError

    try:
        return fn(*args, **kwargs)
    except (FileNotFoundError, ConfigError, ValueError) as err:
        raise SystemExit(f"cannot {what}: {err}")


def cmd_eval(args) -> int:
    from experiments.runner import evaluate_saved

    summary = _or_exit(f"evaluate {args.run_dir}", evaluate_saved, args.run_dir, args.set,
                       progress=not args.no_progress, tag=args.tag)
    print(json.dumps({"targets": summary["targets"], "seconds": summary["seconds"]}, indent=1))
    return 0


def cmd_nplayer(args) -> int:
    from experiments.nplayer import table_markdown
    from experiments.runner import nplayer_saved

    report = _or_exit(f"evaluate {args.run_dir} in the N-player game", nplayer_saved, args.run_dir, args.set,
                      progress=not args.no_progress)
    print(table_markdown(report), end="")
    return 0


def cmd_export(args) -> int:
    from experiments.export import export_run

    print(_or_exit(f"export {args.run_dir}", export_run, args.run_dir, args.out))
    return 0


def cmd_serve(args) -> int:
    from experiments.serve import serve
    from mfg.serverless.adapters import AdapterError

    try:
        code = serve(args)
    except (ValueError, AdapterError, OSError) as err:     # mfg_policy.PolicyFormatError is a ValueError
        raise SystemExit(f"cannot serve: {err}")
    if code:
        raise SystemExit(code)
    return 0


def cmd_plot(args) -> int:
    from experiments.config import load_config
    from experiments.runner import RunFolder, make_plots, read_metrics

    folder = RunFolder(args.run_dir)
    if not folder.metrics.is_file():
        raise SystemExit(f"{args.run_dir} has no metrics.jsonl: not a run folder, or the run never started")
    records = _or_exit(f"plot {args.run_dir}", read_metrics, folder.metrics)
    if not records:
        raise SystemExit(f"{folder.metrics} has no complete record yet")
    config = _or_exit(f"plot {args.run_dir}", load_config, folder.config)
    for path in make_plots(folder, records, config):
        print(path)
    return 0


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def cmd_list(args) -> int:
    import yaml

    from mfg.games import GAMES
    from solvers import SOLVERS

    print("games:")
    for name, builder in sorted(GAMES.items()):
        print(f"  {name:30s} {_first_line(builder.__doc__)}")
    print("solvers:")
    for name, cls in sorted(SOLVERS.items()):
        print(f"  {name:30s} {_first_line(sys.modules[cls.__module__].__doc__)}")
    print("experiments (mfg run NAME):")
    for path in experiment_files():
        description = (yaml.safe_load(path.read_text()) or {}).get("description", "")
        print(f"  {path.stem:30s} {_first_line(description)}")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse, with errors in two lines (the error, and where the usage is) instead of the
    whole usage text."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n(see '{self.prog} --help')\n")


def main(argv=None) -> int:
    parser = _Parser(prog="mfg", description="Mean-field game equilibria in JAX.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("list", help="list games, solvers and shipped experiments").set_defaults(func=cmd_list)
    p = sub.add_parser("run", help="run an experiment (default: experiments/default.yaml)")
    p.add_argument("config", nargs="?", help="a YAML file or the name of a shipped experiment")
    p.add_argument("--set", action="append", default=[], metavar="PATH.TO.KEY=VALUE",
                   help="override a config value (YAML syntax), e.g. --set run.iterations=100")
    p.add_argument("--out", help="parent folder of the run folder (default: output.dir of the config)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("resume", help="continue an interrupted run from its last valid checkpoint")
    p.add_argument("run_dir")
    p.add_argument("--new-run", action="store_true",
                   help="config.yaml was changed on purpose: start a new run folder from the checkpoint with it")
    p.add_argument("--repair", action="store_true",
                   help="the metrics or checkpoints are missing or damaged: move them to RUN/damaged-<time>/ and "
                        "run again from iteration 0 (same result)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_resume)
    p = sub.add_parser("eval", help="compare a serverless run's policy with the autoscaler baselines")
    p.add_argument("run_dir")
    p.add_argument("--set", action="append", default=[], metavar="evaluation.KEY=VALUE",
                   help="override the evaluation settings, e.g. --set evaluation.num_functions=100000")
    p.add_argument("--tag", help="write to RUN_DIR/evaluation-TAG/ (default: RUN_DIR/evaluation/ and plots/)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_eval)
    p = sub.add_parser("nplayer", help="the N-player exploitability of a run's policy (docs/nplayer.md)")
    p.add_argument("run_dir")
    p.add_argument("--set", action="append", default=[], metavar="nplayer.KEY=VALUE",
                   help="override the nplayer settings, e.g. --set 'nplayer.sizes=[2,10,100]'")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_nplayer)
    p = sub.add_parser("export", help="write a run's policy as a folder loadable with numpy only (mfg_policy)")
    p.add_argument("run_dir")
    p.add_argument("--out", help="policy folder to write (default: RUN_DIR/policy)")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("serve", help="the control loop: observe, decide with a policy or autoscaler, apply to a "
                                     "platform (docs/deploy.md)")
    from experiments.serve import add_arguments

    add_arguments(p)
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser("plot", help="(re)draw the plots of a run folder")
    p.add_argument("run_dir")
    p.set_defaults(func=cmd_plot)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

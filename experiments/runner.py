"""Run an experiment into a run folder; resume it exactly after any interruption.

Run folder (``<output.dir>/<name>/``):

    config.yaml        the resolved configuration (overrides applied, defaults filled in)
    metrics.jsonl      one JSON record per iteration: {"iteration": k, "exploitability": ...}
                       (values are lists over seeds when seeds > 1)
    checkpoints/       step_<iteration>/: the solver state (see experiments.checkpoint)
    summary.json       final numbers, written when the run ends
    plots/             convergence.png (after the run); nplayer.png with an ``nplayer`` section
    nplayer/           results.json and table.md of the N-player evaluation (``nplayer`` section)
    tensorboard/       TensorBoard scalars per iteration (``output.tensorboard: true``;
                       needs the ``tensorboard`` extra, tensorboardX)
    log.txt            what happened, with timestamps

Exactness.  A run is a pure function of its config: the solver, its PRNG key
(``run.seed``) and the chunking are rebuilt from ``config.yaml``.  Checkpoints are taken
at chunk boundaries; on ``resume`` the newest valid checkpoint is restored, the
metrics file is cut back to that iteration (records written after it, complete or torn,
are dropped) and the run continues with the same compiled chunk program.  Because a step
is bit-for-bit the same whatever chunk it falls in, the resumed run ends with exactly the
state and metrics of an uninterrupted one.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from experiments import checkpoint
from experiments.config import ExperimentConfig, load_config, parse_config

__all__ = ["build_game", "build_solver", "start", "resume", "execute", "read_metrics", "RunFolder",
           "evaluate_nplayer_run", "nplayer_saved"]


class RunFolder:
    """Paths of a run folder."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.config = self.root / "config.yaml"
        self.metrics = self.root / "metrics.jsonl"
        self.summary = self.root / "summary.json"
        self.checkpoints = self.root / "checkpoints"
        self.plots = self.root / "plots"
        self.log_file = self.root / "log.txt"
        self.tensorboard = self.root / "tensorboard"

    def log(self, message: str) -> None:
        if not _main_process():
            return
        stamp = datetime.datetime.now().isoformat(timespec="seconds")
        with open(self.log_file, "a") as f:
            f.write(f"{stamp} {message}\n")


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def build_game(config: ExperimentConfig):
    from mfg import games

    try:
        return games.make(config.game.name, **config.game.params)
    except (TypeError, ValueError) as err:
        raise ValueError(f"game {config.game.name!r} with params {config.game.params}: {err}") from None


def build_solver(config: ExperimentConfig, game):
    from mfg import features
    from solvers import SOLVERS

    params = dict(config.solver.params)
    if config.solver.features is not None:
        params["features"] = features.make_features(game, config.solver.features.kind, **config.solver.features.params)
    return SOLVERS[config.solver.name](**params)


def _records(start: int, metrics: dict[str, np.ndarray]) -> list[str]:
    names = sorted(metrics)
    steps = next(iter(metrics.values())).shape[-1] if metrics else 0
    lines = []
    for i in range(steps):
        record = {"iteration": start + i + 1}
        for name in names:
            value = metrics[name][..., i]
            record[name] = value.tolist() if np.ndim(value) else float(value)
        lines.append(json.dumps(record))
    return lines


def read_metrics(path: str | Path) -> list[dict]:
    """The complete records of a metrics.jsonl (a torn last line is ignored)."""
    records = []
    with open(path) as f:
        for line in f:
            if not line.endswith("\n"):
                break
            records.append(json.loads(line))
    return records


def _truncate_metrics(path: Path, iterations: int) -> None:
    """Keep the first ``iterations`` complete records (drop anything written later)."""
    if not path.exists():
        path.touch()
        return
    keep = [json.dumps(r) + "\n" for r in read_metrics(path)[:iterations]]
    if len(keep) < iterations:
        raise RuntimeError(f"{path} has {len(keep)} complete records, the checkpoint is at iteration "
                           f"{iterations}: the metrics file was damaged")
    atomic_write(path, "".join(keep))


def _main_process() -> bool:
    """Process 0 of a multi-host run (or the only process) writes the run folder."""
    import sys

    return "jax" not in sys.modules or sys.modules["jax"].process_index() == 0


def setup_devices(config: ExperimentConfig):
    """Join a multi-host run (``devices.coordinator_address`` or MFG_COORDINATOR_ADDRESS)
    and build the mesh of ``config.devices``; None without a ``devices`` section."""
    if config.devices is None:
        return None
    from solvers.sharding import initialize_distributed, make_mesh

    d = config.devices
    import jax

    if not jax.distributed.is_initialized():          # before anything starts JAX's backend
        initialize_distributed(d.coordinator_address, d.num_processes, d.process_id)
    if config.run.seeds % d.seeds:
        raise ValueError(f"devices.seeds = {d.seeds} must divide run.seeds = {config.run.seeds}")
    return make_mesh(d.data, d.seeds)


def start(config: ExperimentConfig, output_dir: str | None = None, progress: bool = True) -> Path:
    """Create the run folder of ``config`` and run it; returns the folder.

    In a multi-host run every process calls this with the same config; process 0 creates
    and writes the folder, the others compute with it."""
    setup_devices(config)
    parent = Path(output_dir or config.output.dir)
    root = parent / config.name
    if not _main_process():
        execute(RunFolder(root), config, resume=False, progress=False)
        return root
    if root.exists() and any(root.iterdir()):
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        root = parent / f"{config.name}-{stamp}"
    root.mkdir(parents=True, exist_ok=True)
    folder = RunFolder(root)
    atomic_write(folder.config, yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    folder.log(f"created run folder for experiment {config.name!r}")
    execute(folder, config, resume=False, progress=progress)
    return root


def resume(run_dir: str | Path, progress: bool = True) -> Path:
    """Continue the run in ``run_dir`` from its newest valid checkpoint."""
    folder = RunFolder(run_dir)
    if not folder.config.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no config.yaml)")
    config = load_config(folder.config)
    setup_devices(config)
    execute(folder, config, resume=True, progress=progress and _main_process())
    return folder.root


def initial_state(config: ExperimentConfig):
    """(game, solver, initial solver state) of ``config``, seeds batched; sets the precision."""
    import jax

    from solvers import init_state

    if config.precision == "float64":
        jax.config.update("jax_enable_x64", True)
    game = build_game(config)
    solver = build_solver(config, game)
    key = jax.random.key(config.run.seed)
    if config.run.seeds > 1:
        key = jax.random.split(key, config.run.seeds)
    return game, solver, init_state(solver, game, key=key)


def execute(folder: RunFolder, config: ExperimentConfig, resume: bool, progress: bool = True) -> dict:
    """Run (or continue) the experiment of ``config`` in ``folder``; returns the summary."""
    from solvers import fit_rate, run

    game, solver, state = initial_state(config)
    mesh = setup_devices(config)
    main = _main_process()
    done = 0
    if resume:
        restored = checkpoint.restore_latest(folder.checkpoints, state)
        if restored is not None:
            done, state, _ = restored
            folder.log(f"resumed from checkpoint at iteration {done}")
        else:
            folder.log("no usable checkpoint: restarting from iteration 0")
    if main:
        _truncate_metrics(folder.metrics, done)
    board = _tensorboard_writer(folder, done) if config.output.tensorboard and main else None
    chunk = min(config.run.chunk_size, config.run.iterations)
    chunks_done = 0
    start_time = time.perf_counter()

    def write_metrics(recorded, metrics):
        if not main:
            return
        first = done + recorded - _steps(metrics)
        with open(folder.metrics, "a") as f:
            f.write("".join(line + "\n" for line in _records(first, metrics)))
            f.flush()
            os.fsync(f.fileno())
        if board is not None:
            for i in range(_steps(metrics)):
                for name, values in metrics.items():
                    value = np.asarray(values[..., i], dtype=np.float64)
                    board.add_scalar(name, float(np.mean(value)), first + i + 1)
            board.flush()

    def save_state(recorded, chunk_state):
        nonlocal chunks_done
        chunks_done += 1
        iteration = done + recorded
        if chunks_done % config.output.checkpoint_every == 0 or iteration >= config.run.iterations:
            checkpoint.save(folder.checkpoints, iteration, chunk_state, {"experiment": config.name},
                            keep=config.output.keep_checkpoints)

    folder.log(f"running {config.solver.name} on {config.game.name} from iteration {done} to {config.run.iterations}")
    result = run(solver, game, config.run.iterations - done, state=state, chunk_size=chunk,
                 stop_exploitability=config.run.stop_exploitability, stop_residual=config.run.stop_residual,
                 progress=progress, on_chunk=write_metrics, on_state=save_state, fixed_chunk_length=True,
                 mesh=mesh, shard=tuple(config.devices.shard) if config.devices else ("states", "agents"),
                 donate=bool(config.devices and config.devices.donate))
    if not main:                                       # process 0 writes the summary, plots and evaluation
        return {}
    if board is not None:
        board.close()
    iterations = done + result.iterations
    records = read_metrics(folder.metrics)
    exploitability = np.array([r["exploitability"] for r in records], dtype=np.float64)
    summary = {
        "experiment": config.name,
        "game": config.game.name,
        "solver": config.solver.name,
        "iterations": iterations,
        "stopped_early": iterations < config.run.iterations,
        "final": {k: v for k, v in records[-1].items() if k != "iteration"} if records else {},
        "fitted_rate": fit_rate(exploitability.reshape(len(records), -1).mean(-1), skip=max(1, iterations // 10))
        if records else None,
        "seconds_this_session": round(time.perf_counter() - start_time, 3),
    }
    atomic_write(folder.summary, json.dumps(summary, indent=1))
    folder.log(f"finished at iteration {iterations}; final exploitability {summary['final'].get('exploitability')}")
    if config.output.plots and records:
        make_plots(folder, records, config)
    if config.evaluation is not None:
        summary["evaluation"] = evaluate_run(folder, config, game, result.state.policy, progress)["targets"]
        atomic_write(folder.summary, json.dumps(summary, indent=1))
    if config.nplayer is not None:
        summary["nplayer"] = evaluate_nplayer_run(folder, config, game, result.state.policy, progress)
        atomic_write(folder.summary, json.dumps(summary, indent=1))
    return summary


def nplayer_temperature(config: ExperimentConfig) -> float:
    """lambda of the N-player evaluation: ``nplayer.temperature``, else the solver's, else 0."""
    if config.nplayer is not None and config.nplayer.temperature is not None:
        return float(config.nplayer.temperature)
    return float(config.solver.params.get("temperature", 0.0))


def evaluate_nplayer_run(folder: RunFolder, config: ExperimentConfig, game, policy, progress: bool = True) -> dict:
    """The ``nplayer`` section: results to ``nplayer/``, the plot to ``plots/nplayer.png``.

    With several seeds the policy of seed 0 is evaluated."""
    from experiments.nplayer import evaluate_nplayer

    def log(message: str) -> None:
        folder.log(message)
        if progress:
            print(message, file=sys.stderr, flush=True)

    policy = np.asarray(policy)
    if policy.ndim == len(game.policy_shape) + 1:
        policy = policy[0]
    return evaluate_nplayer(config.nplayer, game, policy, nplayer_temperature(config), folder.root / "nplayer",
                            folder.plots if config.output.plots else None, log=log, write=atomic_write)


def evaluate_run(folder: RunFolder, config: ExperimentConfig, game, policy, progress: bool = True,
                 tag: str | None = None) -> dict:
    """The serverless comparison (``experiments.serverless.compare``) of a run's policy.

    Results go to ``evaluation/`` and the plots to ``plots/``; with a ``tag`` (``mfg eval
    --tag``) both go to ``evaluation-TAG/`` so that several evaluations of one policy coexist.
    """
    from experiments.serverless import compare

    def log(message: str) -> None:
        folder.log(message)
        if progress:
            print(message, file=sys.stderr, flush=True)

    log("evaluating the policy against the baselines on the particle simulator")
    out = folder.root / ("evaluation" if tag is None else f"evaluation-{tag}")
    plots = folder.plots if tag is None else out / "plots"
    return compare(config, np.asarray(policy), game, out, plots, log=log)


def restore_policy(folder: RunFolder, overrides: list[str] | None = None, with_evaluation: bool = False):
    """(config, game, solver state, iteration) of a run folder's newest valid checkpoint.

    ``overrides`` apply to the saved config; ``with_evaluation`` adds a default
    ``evaluation`` section when the run had none (``mfg eval`` of any serverless run).
    """
    if not folder.config.is_file():
        raise FileNotFoundError(f"{folder.root} is not a run folder (no config.yaml)")
    tree = yaml.safe_load(folder.config.read_text())
    if with_evaluation and tree.get("evaluation") is None:
        tree["evaluation"] = {}
    config = parse_config(tree, str(folder.config), overrides)
    game, _, initial = initial_state(config)
    restored = checkpoint.restore_latest(folder.checkpoints, initial)
    if restored is None:
        raise FileNotFoundError(f"{folder.root} has no usable checkpoint")
    iteration, state, _ = restored
    return config, game, state, iteration


def evaluate_saved(run_dir: str | Path, overrides: list[str] | None = None, progress: bool = True,
                   tag: str | None = None) -> dict:
    """``mfg eval``: the comparison of a finished (or checkpointed) run's policy, with overrides
    of the ``evaluation`` section (e.g. ``evaluation.num_functions=100000``)."""
    folder = RunFolder(run_dir)
    config, game, state, iteration = restore_policy(folder, overrides, with_evaluation=True)
    folder.log(f"mfg eval: policy of iteration {iteration}")
    return evaluate_run(folder, config, game, state.policy, progress, tag)


def nplayer_saved(run_dir: str | Path, overrides: list[str] | None = None, progress: bool = True) -> dict:
    """``mfg nplayer``: the N-player evaluation of a finished (or checkpointed) run's policy.

    The run's ``nplayer`` section is used, with ``overrides`` (e.g. ``nplayer.sizes=[10,100]``);
    a run without one needs ``nplayer.sizes`` among them."""
    folder = RunFolder(run_dir)
    if not folder.config.is_file():
        raise FileNotFoundError(f"{folder.root} is not a run folder (no config.yaml)")
    tree = yaml.safe_load(folder.config.read_text())
    if tree.get("nplayer") is None:
        if not any(o.strip().startswith("nplayer.sizes=") for o in overrides or []):
            raise ValueError(f"{folder.root} has no nplayer section: give the sizes, e.g. "
                             f"--set 'nplayer.sizes=[2,10,100]'")
        tree["nplayer"] = {}
    config, game, state, iteration = restore_policy(folder, None)
    config = parse_config({**config.model_dump(mode="json"), "nplayer": tree["nplayer"]}, str(folder.config), overrides)
    folder.log(f"mfg nplayer: policy of iteration {iteration}")
    return evaluate_nplayer_run(folder, config, game, state.policy, progress)


def _tensorboard_writer(folder: RunFolder, start_iteration: int):
    """A tensorboardX writer; after a resume, TensorBoard's purge_step drops the events
    logged past the checkpoint, as the metrics file does.  Seeds are averaged."""
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise ValueError("output.tensorboard is true but tensorboardX is not installed: "
                         'pip install -e ".[tensorboard]" (or set output.tensorboard: false)') from None
    return SummaryWriter(str(folder.tensorboard), purge_step=start_iteration + 1 if start_iteration else None)


def _steps(metrics: dict) -> int:
    return next(iter(metrics.values())).shape[-1] if metrics else 0


def make_plots(folder: RunFolder, records: list[dict], config: ExperimentConfig) -> list[Path]:
    """plots/convergence.png from the metrics records."""
    from experiments.plots import plot_convergence

    names = [k for k in records[0] if k != "iteration"]
    metrics = {k: np.moveaxis(np.asarray([r[k] for r in records], dtype=np.float64), 0, -1) for k in names}
    title = f"{config.solver.name} on {config.game.name} ({config.name})"
    path = plot_convergence({config.solver.name: metrics}, str(folder.plots / "convergence.png"), title=title)
    folder.log(f"wrote {path}")
    return [Path(path)]

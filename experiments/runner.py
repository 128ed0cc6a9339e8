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
from experiments.build import build_game, build_solver
from experiments.files import atomic_write
from experiments.config import ExperimentConfig, is_folder_name, load_config, parse_config

__all__ = ["build_game", "build_solver", "start", "resume", "execute", "read_metrics", "RunFolder", "RunFolderError",
           "preflight", "config_differences",
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


class RunFolderError(ValueError):
    """A run folder cannot be resumed or read as it is; the message says why and what to do."""


def read_metrics(path: str | Path) -> list[dict]:
    """The complete records of a metrics.jsonl (a torn last line, with no newline, is ignored).

    Raises ``RunFolderError`` naming the line when a complete line is not a record
    ``{"iteration": k, ...}`` with k = its line number (a damaged or edited file)."""
    records = []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.endswith(b"\n"):
                break
            try:
                record = json.loads(raw)
            except ValueError:
                raise RunFolderError(f"{path}, line {number}: not a JSON record (the file was damaged or edited)") \
                    from None
            if not isinstance(record, dict) or record.get("iteration") != number:
                raise RunFolderError(f"{path}, line {number}: expected a record {{\"iteration\": {number}, ...}}, "
                                     f"got {raw[:80].decode(errors='replace').strip()!r}")
            records.append(record)
    return records


def _truncate_metrics(path: Path, iterations: int) -> None:
    """Keep the first ``iterations`` complete records: the ones a resumed run recomputes
    (bit for bit) are dropped.  ``resume`` has checked that there are that many."""
    if not path.exists():
        path.touch()
        return
    records = read_metrics(path)
    if len(records) == iterations and path.stat().st_size == sum(len(json.dumps(r)) + 1 for r in records):
        return                                           # nothing to drop: leave the file as it is
    atomic_write(path, "".join(json.dumps(r) + "\n" for r in records[:iterations]))


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


def _unused_path(parent: Path, base: str) -> Path:
    """``parent/base-<time>``, with ``-1``, ``-2``, ... appended while that name is taken."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path, suffix = parent / f"{base}-{stamp}", 1
    while path.exists():
        path, suffix = parent / f"{base}-{stamp}-{suffix}", suffix + 1
    return path


def _config_tree(config: ExperimentConfig) -> dict:
    return config.model_dump(mode="json")


def preflight(config: ExperimentConfig, parent: Path) -> None:
    """Checks made before a run folder is created: the output path, the memory estimate,
    and the trace folder of a serverless evaluation (``ConfigError`` on any failure)."""
    from experiments.config import ConfigError

    for above in [parent, *parent.parents]:
        if above.exists() and not above.is_dir():
            raise ConfigError(f"output folder {parent}: {above} is a file, not a folder")
        if above.exists():
            break
    root = parent / config.name
    if root.exists() and not root.is_dir():
        raise ConfigError(f"run folder {root} is a file, not a folder")
    check_resources(config)


def check_resources(config: ExperimentConfig) -> None:
    """The memory estimate (``experiments.resources``) and the evaluation's trace folder."""
    from experiments.config import ConfigError
    from experiments.resources import check_fits

    check_fits(config)
    if config.evaluation is not None and config.evaluation.workload != "synthetic":
        from mfg.serverless.workloads import TraceFormatError, read_trace

        try:
            read_trace(config.evaluation.workload, config.evaluation.day)
        except TraceFormatError as err:
            raise ConfigError(f"evaluation.workload: {err}") from None


def start(config: ExperimentConfig, output_dir: str | None = None, progress: bool = True) -> Path:
    """Create the run folder of ``config`` and run it; returns the folder.

    Everything that can be checked is checked before the folder is created (``preflight``,
    then building the game and the solver), so that a refused config leaves nothing
    behind.  An existing non-empty folder of the same name is never touched: the run goes
    to ``NAME-<time>`` instead.  In a multi-host run every process calls this with the
    same config; process 0 creates and writes the folder, the others compute with it."""
    setup_devices(config)
    parent = Path(output_dir or config.output.dir)
    root = parent / config.name
    if not _main_process():
        execute(RunFolder(root), config, progress=False)
        return root
    preflight(config, parent)
    prepared = initial_state(config)
    if root.exists() and any(root.iterdir()):
        root = _unused_path(parent, config.name)
    root.mkdir(parents=True, exist_ok=True)
    folder = RunFolder(root)
    atomic_write(folder.config, yaml.safe_dump(_config_tree(config), sort_keys=False))
    folder.log(f"created run folder for experiment {config.name!r}")
    execute(folder, config, progress=progress, prepared=prepared)
    return root


def config_differences(before: dict, after: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config trees, as 'key: old -> new'."""
    out, absent = [], object()
    for key in sorted(set(before) | set(after), key=str):
        a, b = before.get(key, absent), after.get(key, absent)
        name = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(config_differences(a, b, name + "."))
        elif a != b:
            shown = ["(absent)" if v is absent else json.dumps(v) for v in (a, b)]
            out.append(f"{name}: {shown[0]} -> {shown[1]}")
    return out


def _checkpoint_config(path: Path) -> dict | None:
    """The config a checkpoint was made with (its manifest's metadata), if it recorded one."""
    try:
        manifest = json.loads((path / checkpoint.MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    metadata = manifest.get("metadata") if isinstance(manifest, dict) else None
    return metadata.get("config") if isinstance(metadata, dict) else None


def _check_unchanged(folder: RunFolder, config: ExperimentConfig, hint: str) -> None:
    """Refuse a run folder whose config.yaml differs from its newest checkpoint's config."""
    found = checkpoint.list_checkpoints(folder.checkpoints)
    saved = _checkpoint_config(found[-1][1]) if found else None
    if saved is None:
        return
    differences = config_differences(saved, _config_tree(config))
    if differences:
        listed = "; ".join(differences[:6]) + ("; ..." if len(differences) > 6 else "")
        raise RunFolderError(f"{folder.config} differs from the config its checkpoint at iteration {found[-1][0]} "
                             f"was made with ({listed}). Nothing was changed. {hint}")


def _damage(folder: RunFolder, config: ExperimentConfig, restored_iteration: int | None,
            checkpoints_found: int) -> str | None:
    """Why the run folder cannot be resumed as it is, or None.

    Records past the newest checkpoint are normal (metrics are written before the
    checkpoint of their chunk, and only every ``checkpoint_every`` chunks), up to
    ``checkpoint_every x chunk_size`` of them; more means checkpoints were deleted."""
    if not folder.metrics.exists():
        if checkpoints_found or folder.summary.exists():
            return f"{folder.metrics} is missing"
        return None
    try:
        records = len(read_metrics(folder.metrics))
    except RunFolderError as err:
        return str(err)
    if checkpoints_found and restored_iteration is None:
        return f"none of the {checkpoints_found} checkpoint(s) in {folder.checkpoints} verifies (see the warnings)"
    base = restored_iteration or 0
    if records < base:
        return f"{folder.metrics} has {records} complete record(s), the checkpoint is at iteration {base}"
    unsaved = config.output.checkpoint_every * min(config.run.chunk_size, config.run.iterations)
    if records > base + unsaved:
        where = f"the newest checkpoint is at iteration {base}" if checkpoints_found else \
            f"{folder.checkpoints} holds no checkpoint"
        return f"{folder.metrics} has {records} record(s) but {where} (checkpoints were deleted)"
    return None


def _move_aside(folder: RunFolder) -> Path:
    """Move the metrics, checkpoints, summary and plots of ``folder`` into damaged-<time>/."""
    aside = _unused_path(folder.root, "damaged")
    aside.mkdir()
    for path in (folder.metrics, folder.checkpoints, folder.summary, folder.plots, folder.tensorboard):
        if path.exists():
            os.rename(path, aside / path.name)
    return aside


def resume(run_dir: str | Path, progress: bool = True, repair: bool = False, new_run: bool = False) -> Path:
    """Continue the run in ``run_dir`` from its newest valid checkpoint; returns the folder run.

    Refused, with nothing changed (``RunFolderError``), when the run's config.yaml differs
    from the config of its checkpoint (the keys are named), or when the metrics file or
    the checkpoints are missing, damaged or disagree.  ``new_run``: start a new run folder
    (``NAME-from-K-<time>``, beside this one) from the checkpoint with the changed config.
    ``repair``: move the damaged files to ``damaged-<time>/`` and run again from
    iteration 0, which gives the result the uninterrupted run would have."""
    folder = RunFolder(run_dir)
    if not folder.root.is_dir():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no such folder)")
    if not folder.config.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no config.yaml)")
    if repair and new_run:
        raise ValueError("--repair and --new-run exclude each other")
    config = load_config(folder.config)
    if not new_run:
        _check_unchanged(folder, config, "Undo the change, or start a new run folder from this checkpoint "
                                         "with the changed config: mfg resume RUN --new-run.")
    setup_devices(config)
    prepared = initial_state(config)
    game, solver, template = prepared
    found = checkpoint.list_checkpoints(folder.checkpoints)
    restored = checkpoint.restore_latest(folder.checkpoints, template) if found else None
    if new_run:
        return _branch(folder, config, prepared, restored, progress)
    problem = _damage(folder, config, None if restored is None else restored[0], len(found))
    if problem is not None and not repair:
        raise RunFolderError(f"cannot resume {folder.root}: {problem}. Nothing was changed. A run is a pure "
                             f"function of its config, so it can be run again from iteration 0 with the same "
                             f"result: mfg resume RUN --repair (moves the damaged files to RUN/damaged-<time>/).")
    if problem is not None:
        if _main_process():                  # process 0 owns the run folder (multi-host runs)
            aside = _move_aside(folder)
            folder.log(f"repair: {problem}; moved the damaged files to {aside.name}/ and restarting from iteration 0")
        restored = None
    execute(folder, config, progress=progress and _main_process(), prepared=prepared,
            restored=None if restored is None else restored[:2])
    return folder.root


def _branch(source: RunFolder, config: ExperimentConfig, prepared, restored, progress: bool) -> Path:
    """``mfg resume --new-run``: a new run folder continuing ``source``'s checkpoint under ``config``."""
    if restored is None:
        raise RunFolderError(f"cannot start a new run from {source.root}: no checkpoint there restores into the "
                             f"solver state of its (changed) config.yaml (see the warnings); nothing was changed")
    iteration, state, _ = restored
    records = read_metrics(source.metrics) if source.metrics.exists() else []
    if len(records) < iteration:
        raise RunFolderError(f"cannot start a new run from {source.root}: {source.metrics} has {len(records)} "
                             f"record(s), the checkpoint is at iteration {iteration}")
    root = _unused_path(source.root.parent, f"{source.root.name}-from-{iteration}")
    root.mkdir()
    folder = RunFolder(root)
    atomic_write(folder.config, yaml.safe_dump(_config_tree(config), sort_keys=False))
    atomic_write(folder.metrics, "".join(json.dumps(r) + "\n" for r in records[:iteration]))
    checkpoint.save(folder.checkpoints, iteration, state, _metadata(config, branched_from=str(source.root)),
                    keep=config.output.keep_checkpoints)
    folder.log(f"new run from {source.root} at iteration {iteration} with its changed config")
    execute(folder, config, progress=progress and _main_process(), prepared=prepared, restored=(iteration, state))
    return root


def _metadata(config: ExperimentConfig, **extra) -> dict:
    return {"experiment": config.name, "config": _config_tree(config), **extra}


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


def execute(folder: RunFolder, config: ExperimentConfig, progress: bool = True, prepared=None,
            restored: tuple | None = None) -> dict:
    """Run (or continue) the experiment of ``config`` in ``folder``; returns the summary.

    ``prepared``: (game, solver, initial state) from ``initial_state`` (built here when
    None); ``restored``: (iteration, state) of the checkpoint to continue from."""
    from solvers import fit_rate, run

    game, solver, state = prepared if prepared is not None else initial_state(config)
    mesh = setup_devices(config)
    main = _main_process()
    done = 0
    if restored is not None:
        done, state = restored
        folder.log(f"resumed from checkpoint at iteration {done}")
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
            checkpoint.save(folder.checkpoints, iteration, chunk_state, _metadata(config),
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
    """The serverless comparison of a run's policy (``experiments.serverless.compare``, or
    ``experiments.tick_comparison.compare_ticks`` with ``evaluation.simulator: tick``).

    Results go to ``evaluation/`` and the plots to ``plots/``; with a ``tag`` (``mfg eval
    --tag``) both go to ``evaluation-TAG/`` so that several evaluations of one policy coexist.
    """
    from experiments.serverless import compare as compare_minutes
    from experiments.tick_comparison import compare_ticks

    def log(message: str) -> None:
        folder.log(message)
        if progress:
            print(message, file=sys.stderr, flush=True)

    tick = config.evaluation.simulator == "tick"
    log(f"evaluating the policy against the baselines on the {'tick' if tick else 'particle'} simulator")
    compare = compare_ticks if tick else compare_minutes
    out = folder.root / ("evaluation" if tag is None else f"evaluation-{tag}")
    plots = folder.plots if tag is None else out / "plots"
    return compare(config, np.asarray(policy), game, out, plots, log=log)


def _saved_tree(folder: RunFolder) -> dict:
    """The YAML tree of a run folder's config.yaml (``FileNotFoundError``, ``ConfigError``)."""
    from experiments.config import ConfigError, load_yaml

    if not folder.root.is_dir():
        raise FileNotFoundError(f"{folder.root} is not a run folder (no such folder)")
    if not folder.config.is_file():
        raise FileNotFoundError(f"{folder.root} is not a run folder (no config.yaml)")
    try:
        tree = load_yaml(folder.config.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(f"{folder.config} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"{folder.config} must be a YAML mapping, got {type(tree).__name__}")
    return tree


def restore_policy(folder: RunFolder, overrides: list[str] | None = None, with_evaluation: bool = False):
    """(config, game, solver state, iteration) of a run folder's newest valid checkpoint.

    ``overrides`` apply to the saved config; ``with_evaluation`` adds a default
    ``evaluation`` section when the run had none (``mfg eval`` of any serverless run).
    """
    tree = _saved_tree(folder)
    if with_evaluation and tree.get("evaluation") is None:
        tree["evaluation"] = {}
    _check_unchanged(folder, parse_config(_saved_tree(folder), str(folder.config)),
                     "Undo the change to config.yaml (settings of this command go in --set).")
    config = parse_config(tree, str(folder.config), overrides)
    check_resources(config)
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
    if tag is not None and not is_folder_name(tag):
        raise ValueError(f"--tag must be letters, digits, '_', '.' and '-', not starting with '.', got {tag!r} "
                         f"(it names the folder RUN/evaluation-TAG)")
    config, game, state, iteration = restore_policy(folder, overrides, with_evaluation=True)
    folder.log(f"mfg eval: policy of iteration {iteration}")
    return evaluate_run(folder, config, game, state.policy, progress, tag)


def nplayer_saved(run_dir: str | Path, overrides: list[str] | None = None, progress: bool = True) -> dict:
    """``mfg nplayer``: the N-player evaluation of a finished (or checkpointed) run's policy.

    The run's ``nplayer`` section is used, with ``overrides`` (e.g. ``nplayer.sizes=[10,100]``);
    a run without one needs ``nplayer.sizes`` among them."""
    folder = RunFolder(run_dir)
    tree = _saved_tree(folder)
    if tree.get("nplayer") is None:
        if not any(o.strip().startswith("nplayer.sizes=") for o in overrides or []):
            raise ValueError(f"{folder.root} has no nplayer section: give the sizes, e.g. "
                             f"--set 'nplayer.sizes=[2,10,100]'")
        tree["nplayer"] = {}
    config, game, state, iteration = restore_policy(folder, None)
    config = parse_config({**config.model_dump(mode="json"), "nplayer": tree["nplayer"]}, str(folder.config), overrides)
    check_resources(config)
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

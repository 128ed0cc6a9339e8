"""``mfg export RUN_DIR``: a run's policy as a folder that ``mfg_policy`` loads with numpy only.

Every game of the library is tabular, so the exported approximator is the policy table
pi[s, a] the run's solver reached (for linear or neural NAC: their policy evaluated on
every state, which is exactly what they play).  The manifest is described in
``mfg_policy``; the folder is written to a temporary name and renamed when complete.

Nothing else is ever replaced: ``--out`` must be a new folder or a previous export of
the same run (its manifest names the run folder); finite-horizon policies (which depend
on the epoch) are refused, since the adapters apply one stationary rule.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
from pathlib import Path

import numpy as np

import mfg_policy
from experiments.runner import RunFolder, read_metrics, restore_policy

__all__ = ["export_run"]


def _versions() -> dict[str, str]:
    import importlib.metadata as metadata

    versions = {}
    for name in ("mfg-nac", "jax", "numpy", "flax"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "unknown"
    return versions


def export_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the policy folder of ``run_dir`` (default ``RUN_DIR/policy``); returns its path."""
    folder = RunFolder(run_dir)
    config, game, state, iteration = restore_policy(folder)
    table = np.asarray(state.policy, np.float64)
    if table.ndim == len(game.policy_shape) + 1:          # seeds > 1: seed 0, as mfg eval does
        table = table[0]
    if game.is_finite_horizon:
        raise ValueError(f"only stationary policies pi[s, a] are exported (the cluster adapters apply one "
                         f"decision rule for ever); game {config.game.name!r} is finite-horizon (horizon "
                         f"{game.horizon}, policy shape {list(table.shape)}); nothing was written")
    if game.name == "serverless":
        from experiments.serverless import load_edges
        from mfg.serverless.game import ACTIONS, MOVES, cluster_model_of

        model = cluster_model_of(game)
        observation = {"kind": "serverless", "fields": ["arrival_rate", "containers", "cpu_steps", "last_move"],
                       "load_bin_edges": load_edges(game).tolist(), "max_containers": model.max_containers,
                       "max_cpu_steps": model.max_cpu_steps, "cpu_step_cores": model.cpu_step,
                       "moves": MOVES[:, :2].tolist(),
                       "normalization": "rate binned by log-rate edges; containers, cpu steps clipped to bounds"}
        actions = list(ACTIONS)
    else:
        observation = {"kind": "state_index", "num_states": game.num_states}
        actions = [f"action {a}" for a in range(game.num_actions)]
    records = read_metrics(folder.metrics) if folder.metrics.is_file() else []
    final = {k: v for k, v in records[-1].items() if k != "iteration"} if records else {}
    target = Path(out) if out is not None else folder.root / "policy"
    _check_target(target, folder)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    staging.mkdir()
    try:
        _write(staging, table, config, game, observation, actions, iteration, final, folder)
        mfg_policy.load_policy(staging)                   # verify before publishing
        _publish(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)        # ours: created above
        raise
    folder.log(f"exported the policy of iteration {iteration} to {target}")
    return target


def _check_target(target: Path, folder: RunFolder) -> None:
    """Refuse to write over anything but a previous export of this run."""
    if not target.exists():
        for above in target.parents:
            if above.exists():
                if not above.is_dir():
                    raise ValueError(f"--out {target}: {above} is a file, not a folder")
                break
        return
    if not target.is_dir():
        raise ValueError(f"--out {target} is a file; nothing was written (give a new folder)")
    try:
        manifest = json.loads((target / mfg_policy.MANIFEST).read_text())
    except (OSError, ValueError):
        manifest = None
    training = manifest.get("training") if isinstance(manifest, dict) else None
    ours = (isinstance(manifest, dict) and manifest.get("format") == mfg_policy.FORMAT
            and isinstance(training, dict)
            and (training.get("run_folder") == str(folder.root.resolve())
                 or ("run_folder" not in training and target.resolve() == (folder.root / "policy").resolve())))
    if not ours:
        raise ValueError(f"--out {target} exists and is not a previous export of {folder.root}; nothing was "
                         f"written (export only replaces its own earlier export; give a new folder)")


def _publish(staging: Path, target: Path) -> None:
    """Rename ``staging`` to ``target``; a previous export there is replaced only once the
    new one is complete (renamed aside first, removed last)."""
    if not target.exists():
        os.rename(staging, target)
        return
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    os.rename(target, old)
    try:
        os.rename(staging, target)
    except OSError:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _write(staging: Path, table, config, game, observation, actions, iteration, final, folder: RunFolder) -> None:
    weights = staging / "weights.safetensors"
    mfg_policy.write_safetensors(weights, {"policy": table})
    manifest = {
        "format": mfg_policy.FORMAT, "format_version": mfg_policy.FORMAT_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "library": _versions(),
        "game": {"name": config.game.name, "params": config.game.params, "num_states": game.num_states,
                 "num_actions": game.num_actions},
        "solver": {"name": config.solver.name, "params": config.solver.params,
                   "features": None if config.solver.features is None else config.solver.features.model_dump()},
        "observation": observation,
        "actions": actions,
        "approximator": {"kind": "table", "shape": list(table.shape),
                         "trained_as": config.solver.name if config.solver.name != "nac" else
                         f"linear NAC ({config.solver.features.kind if config.solver.features else 'one_hot'})"},
        "training": {"experiment": config.name, "iteration": iteration, "final_diagnostics": final,
                     "run_folder": str(folder.root.resolve())},
        "weights": {"file": weights.name, "sha256": mfg_policy.sha256_of(weights)},
    }
    (staging / mfg_policy.MANIFEST).write_text(json.dumps(manifest, indent=1))

"""``mfg export RUN_DIR``: a run's policy as a folder that ``mfg_policy`` loads with numpy only.

Every game of the library is tabular, so the exported approximator is the policy table
pi[s, a] the run's solver reached (for linear or neural NAC: their policy evaluated on
every state, which is exactly what they play).  The manifest is described in
``mfg_policy``; the folder is written to a temporary name and renamed when complete.
"""

from __future__ import annotations

import datetime
import json
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
    if table.ndim == 3:                                   # seeds > 1: seed 0, as mfg eval does
        table = table[0]
    if table.ndim != 2:
        raise ValueError(f"only stationary policies [S, A] are exportable, got shape {table.shape} "
                         f"(a finite-horizon game's policy depends on time)")
    if game.name == "serverless":
        from experiments.serverless import load_edges
        from mfg.games.serverless import ACTIONS, MOVES, cluster_model_of

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
    staging = target.with_name(target.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
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
        "training": {"experiment": config.name, "iteration": iteration, "final_diagnostics": final},
        "weights": {"file": weights.name, "sha256": mfg_policy.sha256_of(weights)},
    }
    (staging / mfg_policy.MANIFEST).write_text(json.dumps(manifest, indent=1))
    mfg_policy.load_policy(staging)                       # verify before publishing
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    folder.log(f"exported the policy of iteration {iteration} to {target}")
    return target

"""Golden values from Bench-MFG itself (PyPI ``bench-mfg-suite`` 0.1.3), in float64.

Run in Bench-MFG's own environment (``benchmarks/install_peers.sh`` makes ../benchmfg-venv):

    JAX_ENABLE_X64=1 ../benchmfg-venv/bin/python benchmarks/peers/golden_benchmfg.py \
        > tests/data/golden_benchmfg.json

Every environment is built by Bench-MFG's own config loader (``benchmfg.api.load_config``,
its shipped YAML, plus the size overrides listed), every algorithm is Bench-MFG's class,
started from the uniform policy (``initialization_type=one_uniform``; its default draws a
random policy from an unseeded generator).  Recorded: Bench-MFG's exploitability after
0, 1, 10 and 100 iterations, and the final policy and mean field.
"""

from __future__ import annotations

import json
import logging
import os
import sys

import jax
import numpy as np

CASES = [
    # (our game name, our params, Bench-MFG config overrides)
    ("benchmfg_contraction", {}, ["environment=contraction_game"]),
    ("benchmfg_rock_paper_scissors", {}, ["environment=rock_paper_scissors"]),
    ("benchmfg_sis", {}, ["environment=sis_epidemic"]),
    ("benchmfg_lasry_lions", {}, ["environment=lasry_lions_chain"]),
    ("benchmfg_lasry_lions", {"num_states": 100}, ["environment=lasry_lions_chain", "environment.num_states=100"]),
    ("benchmfg_no_interaction", {}, ["environment=no_interaction_game"]),
    ("benchmfg_multiple_equilibria", {}, ["environment=multiple_equilibria"]),
    ("benchmfg_kinetic_congestion", {}, ["environment=kinetic_congestion"]),
    ("benchmfg_four_rooms", {}, ["environment=four_rooms_obstacles"]),
    ("benchmfg_mf_garnet", {"num_states": 10}, ["environment=mf_garnet", "environment.num_states=10"]),
    ("benchmfg_mf_garnet", {"num_states": 20}, ["environment=mf_garnet", "environment.num_states=20"]),
]
CHECKPOINTS = (0, 1, 10, 100)
# Bench-MFG's shipped hyper-parameters (config/algorithm/*.yaml), except OMD's learning
# rate: at its default 0.005 (step eta / tau = 0.025) the policy barely moves in 100
# iterations, so the golden also records eta = 0.1 (eta / tau = 0.5).
ALGORITHMS = [
    ("omd", {"learning_rate": 0.005, "temperature": 0.2}),
    ("omd", {"learning_rate": 0.1, "temperature": 0.2}),
    ("pi", {"variant": "policy_iteration"}),
    ("pi", {"variant": "smooth_policy_iteration", "damped_constant": 0.4}),
    ("pi", {"variant": "smooth_policy_iteration", "damped_constant": None}),
    ("pi", {"variant": "boltzmann_policy_iteration", "temperature": 0.2}),
]


def main() -> None:
    if not jax.config.jax_enable_x64:
        sys.exit("run with JAX_ENABLE_X64=1 (golden values are float64)")
    logging.disable(logging.INFO)
    os.environ.setdefault("TQDM_DISABLE", "1")
    from benchmfg.api import load_config
    from benchmfg.learner.jax.omd_jax import OMD_jax
    from benchmfg.learner.jax.pi_jax import PI_jax
    from benchmfg.utility.create_environment import create_environment
    from benchmfg.utility.create_solver import get_env_spec

    import benchmfg
    out = {"peer": "bench-mfg-suite", "version": getattr(benchmfg, "__version__", "0.1.3"),
           "checkpoints": list(CHECKPOINTS), "cases": []}
    for game, params, overrides in CASES:
        for algorithm, hyper in ALGORITHMS:
            cfg = load_config(overrides + ["initialization.initialization_type=one_uniform"])
            environment, policy0 = create_environment(cfg)
            spec = get_env_spec(environment, cfg.environment.name)
            policy0 = np.full((environment.N_states, environment.N_actions), 1.0 / environment.N_actions)
            common = dict(env_spec=spec, initial_policy=policy0, num_iterations=max(CHECKPOINTS))
            if algorithm == "omd":
                solver = OMD_jax(**common, **hyper)
            else:
                solver = PI_jax(**common, **hyper)
            policy, mean_field, exploitabilities = solver.eval()
            out["cases"].append({
                "game": game, "params": params, "overrides": overrides, "algorithm": algorithm,
                "hyper": hyper, "horizon": environment.horizon,
                "exploitability": {str(k): float(exploitabilities[k]) for k in CHECKPOINTS},
                "policy": np.asarray(policy).tolist(), "mean_field": np.asarray(mean_field).tolist(),
            })
            print(f"{game} {params} {algorithm} {hyper}: "
                  + " ".join(f"{exploitabilities[k]:.6g}" for k in CHECKPOINTS), file=sys.stderr)
    json.dump(out, sys.stdout, indent=1)


if __name__ == "__main__":
    main()

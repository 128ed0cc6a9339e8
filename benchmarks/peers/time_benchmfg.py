"""Times Bench-MFG's own OMD and policy-iteration steps; run in Bench-MFG's environment.

    ../benchmfg-venv/bin/python benchmarks/peers/time_benchmfg.py CASE_JSON

CASE_JSON: {"overrides": [...], "algorithm": "omd"|"pi", "hyper": {...},
"iterations": n, "target": 1e-3}.  Prints one JSON line: the per-iteration time of
Bench-MFG's loop body (its jitted ``Q_eval_jax``, the policy update and its 20-step
``mean_field_by_transition_kernel_multi_jax``, exactly as ``OMD_jax.eval`` /
``PI_jax.eval`` call them, without the exploitability they also compute every
iteration), best of 3 runs of ``iterations`` steps after a compiling warm-up; and
Bench-MFG's exploitability after every iteration (computed outside the timing), from
which the caller reads the iterations to the target.
"""

from __future__ import annotations

import json
import logging
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np


def main() -> None:
    case = json.loads(sys.argv[1])
    logging.disable(logging.INFO)
    from benchmfg.api import load_config
    from benchmfg.envs.mfg_model_class_jit import (Q_eval_jax, exploitability_jax,
                                                   mean_field_by_transition_kernel_multi_jax)
    from benchmfg.utility.create_environment import create_environment
    from benchmfg.utility.create_solver import get_env_spec
    from benchmfg.utility.policy_average import greedy_policy_jax, softmax_policy_jax

    cfg = load_config(case["overrides"] + ["initialization.initialization_type=one_uniform"])
    env, _ = create_environment(cfg)
    spec = get_env_spec(env, cfg.environment.name)
    S, A = env.N_states, env.N_actions
    hyper = case["hyper"]
    policy0 = jnp.full((S, A), 1.0 / A)
    mf0 = mean_field_by_transition_kernel_multi_jax(policy0, spec, num_iterations=20,
                                                    initial_mean_field=jnp.asarray(env.stationary_mean_field))

    def step(carry):
        policy, y, mf = carry
        q = Q_eval_jax(policy, mf, spec)
        if case["algorithm"] == "omd":
            y = y + hyper["learning_rate"] * q
            policy = softmax_policy_jax(y, hyper["temperature"])
        else:
            policy = greedy_policy_jax(q)
        mf = mean_field_by_transition_kernel_multi_jax(policy, spec, num_iterations=20, initial_mean_field=mf)
        return policy, y, mf

    start = (policy0, jnp.zeros((S, A)), mf0)
    jax.block_until_ready(step(start))                              # compile
    n = case["iterations"]
    best = float("inf")
    for _ in range(3):
        carry = start
        t0 = time.perf_counter()
        for _ in range(n):
            carry = step(carry)
        jax.block_until_ready(carry)
        best = min(best, time.perf_counter() - t0)
    exploitabilities, carry = [float(exploitability_jax(policy0, spec, initial_mean_field=mf0))], start
    for _ in range(n):
        carry = step(carry)
        exploitabilities.append(float(exploitability_jax(carry[0], spec, initial_mean_field=carry[2])))
    print(json.dumps({"step_ms": 1e3 * best / n, "exploitability": exploitabilities,
                      "dtype": str(np.asarray(carry[2]).dtype), "states": S}))


if __name__ == "__main__":
    main()

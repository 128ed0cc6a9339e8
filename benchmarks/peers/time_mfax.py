"""Times MFAX's exploitability of a fixed policy; run in MFAX's environment (Python 3.10).

    PYTHONPATH=../mfax-src ../mfax-venv310/bin/python benchmarks/peers/time_mfax.py CASE_JSON

CASE_JSON: {"task": "beach_bar_1d" | "linear_quadratic" | "endogenous", "overrides": {...},
"gamma": g, "num_envs": P, "repeats": n}.  MFAX has no tabular solver, and its training
loops (SPG, M-OMD, PPO) fit networks; what both libraries compute exactly is the
exploitability of a given policy: the mean-field rollout over the episode, the policy's
returns by backward evaluation and the best response by backward induction
(``mfax.algos.hsm.exploitability.exploitability``, on P common-noise paths).  That call,
jitted whole for the uniform policy, is timed: best of 3 runs of ``repeats`` calls
after a compiling warm-up.  Prints one JSON line: {"ms": per call, "exploitability": value,
"states", "actions", "common_noise_paths": the [P, T] paths z it drew, "bar_location": the
beach bar's drawn location}, so that the caller can build the same game.
"""

from __future__ import annotations

import json
import sys
import time

import jax
import jax.numpy as jnp


def main() -> None:
    case = json.loads(sys.argv[1])
    from mfax.algos.hsm.exploitability import exploitability
    from mfax.envs import make_env

    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in case.get("overrides", {}).items()}
    env = make_env("pushforward/" + case["task"], **overrides)
    table = jnp.full((env.n_states, env.n_actions), 1.0 / env.n_actions)

    def agent(individual_states, aggregate_obs):
        return jnp.broadcast_to(table, aggregate_obs.shape[:-1] + table.shape)

    @jax.jit
    def call(key):
        results, _ = exploitability(key, env, agent, state_type="indices", gamma=case["gamma"],
                                    num_envs=case.get("num_envs", 1),
                                    max_steps_in_episode=env.params.max_steps_in_episode)
        return results.exploitability.exploitability, results.mf_sequence.aggregate_s

    key = jax.random.PRNGKey(0)
    value, aggregate = call(key)                                 # compiles
    extra = {"common_noise_paths": jax.numpy.asarray(aggregate.z).T.tolist()}
    if hasattr(aggregate, "bar_loc"):
        extra["bar_location"] = int(aggregate.bar_loc[0, 0])
    repeats = case.get("repeats", 10)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats):
            out = call(key)
        jax.block_until_ready(out[0])
        best = min(best, (time.perf_counter() - start) / repeats)
    print(json.dumps({"ms": 1e3 * best, "exploitability": float(value), "states": int(env.n_states),
                      "actions": int(env.n_actions)} | extra))


if __name__ == "__main__":
    main()

"""Golden values from MFAX itself (CWibault/mfax, a source copy), in float64.

    JAX_ENABLE_X64=1 PYTHONPATH=../mfax-src ../mfax-venv/bin/python \
        benchmarks/peers/golden_mfax.py tests/data/golden_mfax.json

(``benchmarks/install_peers.sh`` makes both; MFAX needs Python <= 3.10: its parameter
dataclasses hold jax arrays as defaults, which Python 3.11's dataclasses refuse.)  MFAX has no tabular algorithm in common
with this library (its methods train policy networks), so the goldens are MFAX's own
exploitability (``mfax.algos.hsm.exploitability.exploitability``: the mean-field rollout,
the policy's returns by backward evaluation and the best response by backward induction,
weighted by mu_0) of fixed policies: uniform, and three random state-dependent ones
(Dirichlet(1) per state, numpy seed 0..2, the same at every step), on its push-forward
linear-quadratic and beach-bar environments at their defaults (common noise off),
discount 0.99.  For the beach bar, whose reset draws the bar's location, each record
keeps the location MFAX drew for its key.

The macroeconomics model (``pushforward/endogenous``, discount 0.95 as in its configs)
always draws common noise; its records are (a) ``nu = 0`` (the zero path: no common
noise) and (b) its default ``nu = 0.03`` on two paths drawn by MFAX (``num_envs = 2``),
each record keeping the realized paths z (and MFAX's number, the mean over the paths).
"""

from __future__ import annotations

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np

GAMMA = 0.99
ENDOGENOUS_GAMMA = 0.95


def policies(num_states: int, num_actions: int) -> dict[str, np.ndarray]:
    out = {"uniform": np.full((num_states, num_actions), 1.0 / num_actions)}
    for seed in range(3):
        out[f"dirichlet_seed{seed}"] = np.random.default_rng(seed).dirichlet(np.ones(num_actions), size=num_states)
    return out


def main() -> None:
    if not jax.config.jax_enable_x64:
        sys.exit("run with JAX_ENABLE_X64=1 (golden values are float64)")
    from mfax.algos.hsm.exploitability import exploitability
    from mfax.envs import make_env
    from mfax.envs.base.toy import beach_bar_1d

    # MFAX's beach bar fails under float64 (``lax.select`` of its int64 bar location
    # against int32 states); the same projection with the dtypes aligned, nothing else.
    def project_to_legal(self, prev_state, proposed_state, bar_loc):
        bar_loc = jnp.asarray(bar_loc).astype(proposed_state.dtype)
        from_left = (prev_state < bar_loc) & (proposed_state >= bar_loc)
        from_right = (prev_state > bar_loc) & (proposed_state <= bar_loc)
        return jax.lax.select(from_right, bar_loc + 1, jax.lax.select(from_left, bar_loc - 1, proposed_state))

    beach_bar_1d.BaseBeachBar1DEnvironment._project_to_legal = project_to_legal

    records = []
    for task, keys in (("linear_quadratic", [0]), ("beach_bar_1d", [0, 1])):
        env = make_env("pushforward/" + task)
        for name, table in policies(env.n_states, env.n_actions).items():
            table = jnp.asarray(table)

            def agent(individual_states, aggregate_obs, table=table):
                return jnp.broadcast_to(table, aggregate_obs.shape[:-1] + table.shape)

            for key in keys:
                results, _ = exploitability(jax.random.PRNGKey(key), env, agent, state_type="indices", gamma=GAMMA,
                                            num_envs=1, max_steps_in_episode=env.params.max_steps_in_episode)
                record = {"task": task, "policy": name, "key": key, "gamma": GAMMA,
                          "horizon": int(env.params.max_steps_in_episode),
                          "exploitability": float(results.exploitability.exploitability),
                          "policy_return": float(results.exploitability.mean_policy_return),
                          "best_response_return": float(results.exploitability.mean_br_return),
                          "final_mean_field": np.asarray(results.mf_sequence.aggregate_s.mu[-1, 0]).tolist()}
                if task == "beach_bar_1d":
                    record["bar_location"] = int(results.mf_sequence.aggregate_s.bar_loc[0, 0])
                records.append(record)
                print(task, name, key, record["exploitability"], file=sys.stderr)
    env_cases = (("no_common_noise", {"nu": 0.0}, 1), ("common_noise", {}, 2))
    for label, overrides, num_envs in env_cases:
        env = make_env("pushforward/endogenous", **overrides)
        for name, table in list(policies(env.n_states, env.n_actions).items())[:3]:
            table = jnp.asarray(table)

            def agent(individual_states, aggregate_obs, table=table):
                return jnp.broadcast_to(table, aggregate_obs.shape[:-1] + table.shape)

            results, _ = exploitability(jax.random.PRNGKey(0), env, agent, state_type="indices",
                                        gamma=ENDOGENOUS_GAMMA, num_envs=num_envs,
                                        max_steps_in_episode=env.params.max_steps_in_episode)
            record = {"task": "endogenous", "policy": name, "key": 0, "noise": label, "gamma": ENDOGENOUS_GAMMA,
                      "horizon": int(env.params.max_steps_in_episode),
                      "exploitability": float(results.exploitability.exploitability),
                      "policy_return": float(results.exploitability.mean_policy_return),
                      "best_response_return": float(results.exploitability.mean_br_return),
                      "common_noise_paths": np.asarray(results.mf_sequence.aggregate_s.z).T.tolist(),
                      "final_mean_field": np.asarray(results.mf_sequence.aggregate_s.mu[-1, 0]).tolist(),
                      "interest_rate_path": np.asarray(results.mf_sequence.aggregate_s.interest_rate[:, 0]).tolist()}
            records.append(record)
            print("endogenous", label, name, record["exploitability"], file=sys.stderr)
    # (a file, not stdout: MFAX prints to stdout while it rolls out)
    with open(sys.argv[1], "w") as out:
        json.dump({"peer": "mfax (CWibault/mfax, source copy; run under Python 3.10)", "records": records}, out, indent=1)


if __name__ == "__main__":
    main()

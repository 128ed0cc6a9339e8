"""Run by tests/test_sharding.py in its own process (JAX_NUM_CPU_DEVICES set there):
single-device and sharded runs of the same configurations, results as JSON on stdout.

    python tests/multidevice_script.py compare                 one process, 8 devices
    python tests/multidevice_script.py distributed OUT.npz     one of two processes
    python tests/multidevice_script.py single OUT.npz          the same NAC run, one process
    python tests/multidevice_script.py checkpoint-save DIR     8 devices: run, checkpoint
    python tests/multidevice_script.py checkpoint-restore DIR  any device count: restore, continue
"""

import json
import sys

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

from mfg.games import crowd_modelling_2d, garnet  # noqa: E402
from solvers import MirrorDescent, NaturalActorCritic, run  # noqa: E402
from solvers.sharding import initialize_distributed, make_mesh, to_host  # noqa: E402


def exact_game():
    return crowd_modelling_2d(size=16, horizon=10)                          # S = 256, grid shifts, T = 10


def online_game():
    return garnet(num_states=64, num_actions=3, branching=3, seed=1, discount=0.9)


def online_solver():
    return NaturalActorCritic(temperature=0.1, learning_rate=0.5, critic="sampled", num_agents=4096, td_steps=20)


def exact(mesh=None):
    return run(MirrorDescent(learning_rate=0.5), exact_game(), 30, chunk_size=10, mesh=mesh)


def online(mesh=None, key=None, state=None, iterations=12):
    # Many agents, few states: the agents go on the "data" axis, the [S, A] tables stay whole.
    return run(online_solver(), online_game(), iterations, chunk_size=4, key=key, state=state, mesh=mesh,
               shard=("agents",))


def diff(a, b):
    return float(max(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)))
                     for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b))))


def compare():
    out = {"devices": jax.device_count()}
    mesh = make_mesh(data=8)
    one, many = exact(), exact(mesh)
    out["exact_policy_diff"] = diff(one.state.policy, to_host(many.state.policy))
    out["exact_metric_diff"] = diff(one.metrics, many.metrics)
    out["exact_policy_spec"] = str(many.state.policy.sharding.spec)
    out["exact_mean_field_spec"] = str(many.state.mean_field.sharding.spec)
    one, many = online(), online(mesh)
    out["online_policy_diff"] = diff(one.state.policy, to_host(many.state.policy))
    out["online_metric_diff"] = diff(one.metrics, many.metrics)
    out["online_agents_spec"] = str(many.state.extra.agents.sharding.spec)
    out["online_policy_spec"] = str(many.state.policy.sharding.spec)
    out["online_agents_equal"] = bool(np.array_equal(np.asarray(one.state.extra.agents),
                                                     to_host(many.state.extra.agents)))
    out["online_exploitability"] = float(one.metrics["exploitability"][-1])
    keys = jax.random.split(jax.random.key(5), 2)                           # two seeds on the "seeds" axis
    one, many = online(key=keys), online(make_mesh(data=4, seeds=2), key=keys)
    out["seeds_policy_diff"] = diff(one.state.policy, to_host(many.state.policy))
    out["seeds_agents_spec"] = str(many.state.extra.agents.sharding.spec)
    print(json.dumps(out))


def distributed(path):
    initialize_distributed()                                                # from MFG_* environment variables
    result = online(make_mesh())
    host = to_host(result.state)
    if jax.process_index() == 0:
        np.savez(path, policy=host.policy, agents=host.extra.agents, devices=jax.device_count(),
                 processes=jax.process_count(), exploitability=result.metrics["exploitability"])


def single(path):
    result = online()
    np.savez(path, policy=np.asarray(result.state.policy), agents=np.asarray(result.state.extra.agents),
             exploitability=result.metrics["exploitability"])


def checkpoint_save(folder):
    from experiments import checkpoint

    result = online(make_mesh(data=8), iterations=8)
    checkpoint.save(folder, 8, result.state)
    final = online(make_mesh(data=8), state=result.state, iterations=4)
    np.savez(f"{folder}/reference.npz", policy=to_host(final.state.policy))


def checkpoint_restore(folder):
    from experiments import checkpoint
    from solvers.driver import init_state

    template = init_state(online_solver(), online_game())
    iteration, state, _ = checkpoint.restore_latest(folder, template)
    mesh = make_mesh() if jax.device_count() > 1 else None
    final = online(mesh, state=state, iterations=4)
    reference = np.load(f"{folder}/reference.npz")["policy"]
    print(json.dumps({"devices": jax.device_count(), "iteration": iteration,
                      "policy_diff": diff(reference, to_host(final.state.policy))}))


if __name__ == "__main__":
    command = sys.argv[1]
    {"compare": lambda: compare(), "distributed": lambda: distributed(sys.argv[2]),
     "single": lambda: single(sys.argv[2]), "checkpoint-save": lambda: checkpoint_save(sys.argv[2]),
     "checkpoint-restore": lambda: checkpoint_restore(sys.argv[2])}[command]()

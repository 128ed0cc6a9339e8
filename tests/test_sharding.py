"""Many devices, many hosts: sharded runs give the single-device results.

Each check runs ``tests/multidevice_script.py`` in its own process, because the number
of CPU devices (JAX_NUM_CPU_DEVICES) is fixed when JAX starts.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jax.sharding import PartitionSpec

from solvers.sharding import make_mesh, state_shardings

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "multidevice_script.py"


def script(*args, devices: int, env=None, timeout=600):
    environment = dict(os.environ, JAX_NUM_CPU_DEVICES=str(devices), **(env or {}))
    done = subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, env=environment, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def compared():
    return json.loads(script("compare", devices=8).splitlines()[-1])


def test_eight_devices_give_the_single_device_results(compared):
    assert compared["devices"] == 8
    # Exact mirror descent on 2D crowd modelling (S = 256, grid shifts), states sharded.
    assert compared["exact_policy_diff"] < 1e-6 and compared["exact_metric_diff"] < 1e-6
    # Online NAC with 4096 sampled agents, agents sharded: the same random numbers.
    assert compared["online_policy_diff"] < 1e-6 and compared["online_metric_diff"] < 1e-6
    assert compared["online_agents_equal"]
    # Two seeds on the "seeds" axis, agents on "data".
    assert compared["seeds_policy_diff"] < 1e-6


def test_outputs_keep_their_intended_shardings(compared):
    assert compared["exact_policy_spec"] == "P(None, 'data')"        # [T, S, A]: the state axis
    assert compared["exact_mean_field_spec"] == "P(None, 'data')"
    assert compared["online_agents_spec"] == "P('data',)"
    assert compared["online_policy_spec"] == "P()"                   # shard=("agents",): tables whole
    assert compared["seeds_agents_spec"] == "P('seeds', 'data')"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_with_jax_distributed_reach_the_one_process_result(tmp_path):
    port = free_port()
    processes = []
    for pid in range(2):
        env = dict(os.environ, JAX_NUM_CPU_DEVICES="4", MFG_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
                   MFG_NUM_PROCESSES="2", MFG_PROCESS_ID=str(pid))
        processes.append(subprocess.Popen([sys.executable, str(SCRIPT), "distributed", str(tmp_path / "two.npz")],
                                          cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for process in processes:
        _, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[-3000:]
    script("single", str(tmp_path / "one.npz"), devices=1)
    two, one = np.load(tmp_path / "two.npz"), np.load(tmp_path / "one.npz")
    assert int(two["processes"]) == 2 and int(two["devices"]) == 8
    np.testing.assert_allclose(two["policy"], one["policy"], atol=1e-6)
    np.testing.assert_array_equal(two["agents"], one["agents"])
    np.testing.assert_allclose(two["exploitability"], one["exploitability"], atol=1e-6)


@pytest.mark.parametrize("devices", [1, 4])
def test_a_checkpoint_written_on_eight_devices_restores_on_fewer(tmp_path_factory, devices):
    folder = tmp_path_factory.getbasetemp() / "checkpoint-8"
    if not (folder / "reference.npz").exists():
        script("checkpoint-save", str(folder), devices=8)
    restored = json.loads(script("checkpoint-restore", str(folder), devices=devices).splitlines()[-1])
    assert restored["devices"] == devices and restored["iteration"] == 8
    assert restored["policy_diff"] < 1e-6


def test_the_sharding_rule_names_its_axes():
    import jax.numpy as jnp

    mesh = make_mesh(data=1)
    state = {"policy": jnp.zeros((6, 2)), "agents": jnp.zeros((10,), jnp.int32), "scalar": jnp.zeros(())}
    specs = state_shardings(state, mesh, num_states=6, num_actions=2, num_agents=10)
    assert all(s.spec == PartitionSpec() for s in specs.values())    # one device: nothing to split
    with pytest.raises(ValueError, match="unknown axes \\['cells'\\]"):
        state_shardings(state, mesh, num_states=6, num_actions=2, shard=("cells",))
    with pytest.raises(ValueError, match="needs 16 devices"):
        make_mesh(data=8, seeds=2)


def test_the_devices_section_of_an_experiment_shards_the_run(tmp_path):
    config = tmp_path / "garnet.yaml"
    body = """name: garnet_nac
precision: float64
game: {name: garnet, params: {num_states: 64, num_actions: 3, seed: 1, discount: 0.9}}
solver: {name: nac, params: {temperature: 0.1, learning_rate: 0.5, critic: sampled, num_agents: 4096, td_steps: 20}}
run: {iterations: 8, chunk_size: 4, seeds: 2}
output: {plots: false}
"""
    finals = []
    for devices, section in ((4, "devices: {data: 2, seeds: 2, shard: [agents]}\n"), (1, "")):
        config.write_text(body + section)
        out = tmp_path / f"runs{devices}"
        done = subprocess.run([sys.executable, "-m", "experiments.cli", "run", str(config), "--out", str(out),
                               "--no-progress"], cwd=ROOT, env=dict(os.environ, JAX_NUM_CPU_DEVICES=str(devices)),
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        finals.append(json.loads((out / "garnet_nac" / "summary.json").read_text())["final"]["exploitability"])
    np.testing.assert_allclose(finals[0], finals[1], atol=1e-6)


def test_donating_the_state_between_chunks_changes_no_result():
    from mfg.games import garnet
    from solvers import NaturalActorCritic, run

    game = garnet(num_states=20, num_actions=3, seed=2, discount=0.9)
    solver = NaturalActorCritic(temperature=0.1, learning_rate=0.5, critic="sampled", num_agents=500, td_steps=5)
    kept = run(solver, game, 9, chunk_size=4)
    donated = run(solver, game, 9, chunk_size=4, donate=True)
    np.testing.assert_array_equal(np.asarray(kept.state.policy), np.asarray(donated.state.policy))
    np.testing.assert_array_equal(kept.metrics["exploitability"], donated.metrics["exploitability"])
    stopped = run(solver, game, 40, chunk_size=4, donate=True, stop_exploitability=10.0)   # fires at once
    assert stopped.iterations == 4 and np.isfinite(np.asarray(stopped.state.policy)).all()

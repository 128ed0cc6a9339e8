"""End to end: a trained NAC policy, exported, deciding through the control loop for the
particle simulator -- observe, decide, apply through the adapter interface -- gives the
SLO and CPU that the in-simulator evaluation of the same policy gives; and ``mfg serve``
drives the loopback platforms from the command line."""

import io
import json

import jax
import numpy as np
import pytest
from fake_platforms import OPENWHISK_AUTH, TOKEN

import mfg_policy
from experiments.cli import main
from experiments.runner import RunFolder, restore_policy
from experiments.serverless import load_edges
from mfg.serverless.adapters import AutoscalerDecider, Bounds, ControlLoop, PolicyDecider
from mfg.serverless.adapters.simulator import SimulatedCluster
from mfg.serverless.autoscalers import HorizontalAutoscaler, TabularPolicy
from mfg.serverless.cluster import fit_rates_to_cluster
from mfg.serverless.evaluation import summarize
from mfg.serverless.game import apply_moves, cluster_model_of
from mfg.serverless.particles import TraceLoad, simulate
from mfg.serverless.workloads import generate_functions

MINUTES = 60


@pytest.fixture(scope="module")
def trained(exported_serverless_run):
    """The exported NAC policy of conftest.py, its game, and a trace-driven load of 300 functions."""
    run_dir, _ = exported_serverless_run
    _, game, state, _ = restore_policy(RunFolder(run_dir))
    model = cluster_model_of(game)
    trace = generate_functions(300, seed=1)
    load = TraceLoad.sample(fit_rates_to_cluster(trace.rates_per_second(), model, 0.5), 300, seed=0, start=600)
    return {"policy_dir": run_dir / "policy", "game": game, "policy": np.asarray(state.policy), "model": model,
            "load": load}


def run_loop(model, load, decider, key):
    """T minutes of observe -> decide -> apply on the simulated cluster; its evaluation."""
    cluster = SimulatedCluster(model, load, key)
    bounds = Bounds(1, model.max_containers, model.cpu_step, model.max_cpu_steps * model.cpu_step)
    loop = ControlLoop(cluster, decider, cluster, bounds, log=io.StringIO())
    for _ in range(MINUTES):
        loop.step()
        cluster.advance()
    return summarize(cluster.result(), model)["overall"], loop


def in_simulator(model, load, policy, key):
    return summarize(simulate(model, load, policy, key, num_steps=MINUTES), model)["overall"]


def test_greedy_policy_through_the_loop_equals_its_in_simulator_evaluation(trained):
    model, load, key = trained["model"], trained["load"], jax.random.PRNGKey(3)
    exported = mfg_policy.load_policy(trained["policy_dir"])
    reference = in_simulator(model, load, TabularPolicy(trained["policy"], load_edges(trained["game"]),
                                                        model.max_containers, model.max_cpu_steps, True), key)
    looped, _ = run_loop(model, load, PolicyDecider(exported, greedy=True), key)
    for metric in ("slo_violation_rate", "allocated_cpu", "mean_latency", "utilization"):
        assert looped[metric] == pytest.approx(reference[metric], rel=1e-5), metric


def test_sampled_policy_through_the_loop_matches_its_in_simulator_evaluation(trained):
    """Sampling with numpy's generator instead of JAX's: equal in distribution, so the
    300-function averages agree to within sampling noise (measured: 0.1% SLO, 0.4% CPU)."""
    model, load, key = trained["model"], trained["load"], jax.random.PRNGKey(3)
    exported = mfg_policy.load_policy(trained["policy_dir"])
    reference = in_simulator(model, load, TabularPolicy(trained["policy"], load_edges(trained["game"]),
                                                        model.max_containers, model.max_cpu_steps), key)
    looped, loop = run_loop(model, load, PolicyDecider(exported, seed=1), key)
    assert looped["slo_violation_rate"] == pytest.approx(reference["slo_violation_rate"], rel=0.03)
    assert looped["allocated_cpu"] == pytest.approx(reference["allocated_cpu"], rel=0.03)
    assert loop.iteration == MINUTES


def test_a_baseline_autoscaler_through_the_loop_equals_its_in_simulator_evaluation(trained):
    model, load, key = trained["model"], trained["load"], jax.random.PRNGKey(4)
    hpa = HorizontalAutoscaler(0.7, cpu_steps=model.max_cpu_steps)
    reference = in_simulator(model, load, hpa, key)
    looped, _ = run_loop(model, load, AutoscalerDecider(hpa, model), key)
    for metric in ("slo_violation_rate", "allocated_cpu"):
        assert looped[metric] == pytest.approx(reference[metric], rel=1e-5), metric


def test_exported_moves_equal_the_game_moves(trained):
    exported = mfg_policy.load_policy(trained["policy_dir"])
    model = trained["model"]
    n, c, a = np.meshgrid(np.arange(1, model.max_containers + 1), np.arange(1, model.max_cpu_steps + 1),
                          np.arange(len(exported.actions)), indexing="ij")
    observation = np.stack([np.ones(n.shape), n, c, np.zeros(n.shape)], -1)
    got = exported.next_allocation(observation, a)
    want = apply_moves(n, c, np.zeros_like(n), a, model.max_containers, model.max_cpu_steps)
    for g, w in zip(got, (want[0], want[1], want[3])):
        np.testing.assert_array_equal(g, w)


# ------------------------------------------------------------------ mfg serve

def observations(tmp_path, names):
    path = tmp_path / "observations.json"
    path.write_text(json.dumps({"functions": [{"name": n, "request_rate": 20.0} for n in names]}))
    return str(path)


def test_mfg_serve_dry_run_on_openwhisk_prints_requests_and_changes_nothing(trained, fake, tmp_path, monkeypatch,
                                                                             capsys):
    fake.add_action("resize", memory=256, namespace="guest")
    monkeypatch.setenv("OPENWHISK_AUTH", OPENWHISK_AUTH)
    log = tmp_path / "decisions.jsonl"
    assert main(["serve", "--platform", "openwhisk", "--openwhisk-url", fake.url, "--namespace", "guest",
                 "--autoscaler", "static", "--autoscaler-target", "2", "--observations",
                 observations(tmp_path, ["resize"]), "--dry-run", "--once", "--log", str(log)]) == 0
    (line,) = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert line["method"] == "PUT" and line["path"] == "/api/v1/namespaces/guest/actions/resize?overwrite=true"
    assert line["body"]["limits"]["memory"] == 1024                       # 8 CPU steps = 1 core
    assert fake.actions[("guest", "resize")]["limits"]["memory"] == 256   # not applied
    (record,) = [json.loads(x) for x in log.read_text().splitlines()]
    assert record["outcome"] == "applied" and record["function"] == "resize"
    assert OPENWHISK_AUTH not in log.read_text()


def test_mfg_serve_applies_an_exported_policy_to_knative_with_a_kubeconfig(trained, fake, tmp_path, monkeypatch):
    fake.add_service("thumbnail", cpu="125m")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(f"""apiVersion: v1
kind: Config
clusters: [{{name: test, cluster: {{server: "{fake.url}"}}}}]
users: [{{name: test, user: {{token: {TOKEN}}}}}]
contexts: [{{name: test, context: {{cluster: test, user: test}}}}]
current-context: test
""")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    log = tmp_path / "decisions.jsonl"
    assert main(["serve", "--platform", "knative", "--policy", str(trained["policy_dir"]), "--greedy",
                 "--observations", observations(tmp_path, ["thumbnail"]), "--iterations", "3", "--interval", "0.01",
                 "--max-containers", "3", "--max-cpu", "0.25", "--log", str(log)]) == 0
    records = [json.loads(x) for x in log.read_text().splitlines()]
    assert len(records) == 3 and all(r["outcome"] in ("applied", "unchanged") for r in records)
    template = fake.services[("default", "thumbnail")]["spec"]["template"]
    last = records[-1]["target"]
    assert template["metadata"]["annotations"].get("autoscaling.knative.dev/min-scale", "1") == str(last["containers"])
    assert template["spec"]["containers"][0]["resources"]["requests"]["cpu"] == f"{round(last['cpu'] * 1000)}m"
    assert [r["current"] for r in records[1:]] == [r["target"] for r in records[:-1]]   # each round saw the last
    assert not fake.violations and TOKEN not in log.read_text()


def test_mfg_serve_explains_missing_credentials(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENWHISK_AUTH", raising=False)
    with pytest.raises(SystemExit, match="OPENWHISK_AUTH"):
        main(["serve", "--platform", "openwhisk", "--openwhisk-url", "http://127.0.0.1:9", "--autoscaler", "hpa",
              "--observations", observations(tmp_path, ["a"]), "--once"])

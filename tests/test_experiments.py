"""Experiments: the YAML schema, run folders, exact resume after SIGKILL, bad checkpoints."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from experiments import checkpoint
from experiments.cli import experiment_files, main
from experiments.config import ConfigError, load_config, parse_config
from experiments.runner import RunFolder, build_game, build_solver, read_metrics

ROOT = Path(__file__).resolve().parents[1]

VALID = {
    "name": "t",
    "game": {"name": "beach_bar", "params": {"horizon": None}},
    "solver": {"name": "nac", "params": {"learning_rate": 0.01}},
    "run": {"iterations": 10, "chunk_size": 5},
}


def with_change(path: str, value):
    tree = json.loads(json.dumps(VALID))
    node = tree
    keys = path.split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value
    return tree


# ------------------------------------------------------------------------ schema

@pytest.mark.parametrize("path, value, message", [
    ("run.iteration", 10, r"run.iteration: unknown key; allowed: iterations, chunk_size, seeds"),
    ("gmae", {}, r"gmae: unknown key; allowed: name, description, precision, game, solver, run, output"),
    ("run.iterations", "ten", r"run.iterations: Input should be a valid integer"),
    ("run.iterations", 0, r"run.iterations: Input should be greater than 0"),
    ("run.stop_exploitability", -1.0, r"run.stop_exploitability: Input should be greater than 0"),
    ("precision", "float16", r"precision: precision must be 'float32' or 'float64', got 'float16'"),
    ("game.name", "crowd", r"game: unknown game 'crowd'; allowed: beach_bar, benchmfg_contraction"),
    ("game.params", {"size": 3}, r"unknown parameter\(s\) \['size'\] of game 'beach_bar'; allowed: horizon, n,"),
    ("solver.name", "ppo", r"solver: unknown solver 'ppo'; allowed: fictitious_play, fixed_point"),
    ("solver.params", {"lr": 0.1}, r"unknown parameter\(s\) \['lr'\] of solver 'nac'; allowed: learning_rate"),
    ("solver.features", {"kind": "fourier"}, r"solver.features.kind: Input should be 'one_hot', 'rbf' or 'tile_coding'"),
])
def test_schema_errors_name_the_field_and_the_allowed_values(path, value, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(with_change(path, value), "test")


def test_overrides_use_dotted_paths_and_yaml_values():
    config = parse_config(VALID, "test", ["run.iterations=20", "solver.params.critic=sampled",
                                          "game.params.n=6", "output.plots=false"])
    assert config.run.iterations == 20 and config.solver.params["critic"] == "sampled"
    assert config.game.params["n"] == 6 and config.output.plots is False
    with pytest.raises(ConfigError, match="--set expects path.to.key=value"):
        parse_config(VALID, "test", ["run.iterations"])


@pytest.mark.parametrize("path", experiment_files(), ids=lambda p: p.stem)
def test_every_shipped_experiment_validates_and_builds(path):
    config = load_config(path)
    assert config.name == path.stem and config.description
    game = build_game(config)
    from solvers import init_state

    state = init_state(build_solver(config, game), game)  # the solver accepts the game (checks included)
    assert state.policy.shape == game.policy_shape


def test_a_bad_yaml_file_is_reported_with_its_path(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("game: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml is not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


# ------------------------------------------------------------ run folders, resume

KILL_CONFIG = {
    "name": "killed",
    "precision": "float64",
    "game": {"name": "garnet", "params": {"num_states": 10}},
    "solver": {"name": "nac", "params": {"critic": "sampled", "num_agents": 20000, "td_steps": 10,
                                          "learning_rate": 0.01, "mean_field_rate": 0.1}},
    "run": {"iterations": 400, "chunk_size": 20, "seeds": 2, "seed": 3},
    "output": {"checkpoint_every": 1, "keep_checkpoints": 2, "plots": False},
}


def mfg(*args, cwd):
    return subprocess.Popen([sys.executable, "-m", "experiments.cli", *args, "--no-progress"], cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def final_state(run_dir: Path):
    config = load_config(run_dir / "config.yaml")
    import jax

    from solvers import init_state

    game = build_game(config)
    template = init_state(build_solver(config, game), game, key=jax.random.split(jax.random.key(0), 2))
    iteration, state, _ = checkpoint.restore_latest(run_dir / "checkpoints", template)
    return iteration, state


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    base = tmp_path_factory.mktemp("whole")
    (base / "c.yaml").write_text(yaml.safe_dump(KILL_CONFIG))
    process = mfg("run", str(base / "c.yaml"), "--out", str(base), cwd=base)
    assert process.wait(timeout=600) == 0, process.stderr.read().decode()
    return base / "killed"


@pytest.mark.parametrize("kill_after_records", [30, 170, 350])
def test_a_run_killed_with_sigkill_resumes_to_exactly_the_same_result(tmp_path, uninterrupted, kill_after_records):
    import jax

    (tmp_path / "c.yaml").write_text(yaml.safe_dump(KILL_CONFIG))
    run_dir = tmp_path / "killed"
    process = mfg("run", str(tmp_path / "c.yaml"), "--out", str(tmp_path), cwd=tmp_path)
    metrics = run_dir / "metrics.jsonl"
    deadline = time.time() + 600
    while time.time() < deadline and process.poll() is None:
        if metrics.exists() and sum(1 for _ in open(metrics)) >= kill_after_records:
            break
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    assert len(read_metrics(metrics)) < KILL_CONFIG["run"]["iterations"]

    resumed = mfg("resume", str(run_dir), cwd=tmp_path)
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read().decode()
    assert metrics.read_text() == (uninterrupted / "metrics.jsonl").read_text()
    (i, a), (j, b) = final_state(run_dir), final_state(uninterrupted)
    assert i == j == KILL_CONFIG["run"]["iterations"]
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert "resumed from checkpoint at iteration" in (run_dir / "log.txt").read_text()


def test_a_corrupted_checkpoint_falls_back_to_the_previous_one(tmp_path):
    config = parse_config({**VALID, "name": "corrupt", "run": {"iterations": 30, "chunk_size": 10},
                           "output": {"keep_checkpoints": 3, "plots": False}}, "test")
    from experiments.runner import resume, start

    run_dir = start(config, str(tmp_path), progress=False)
    before = (run_dir / "metrics.jsonl").read_text()
    newest = checkpoint.list_checkpoints(run_dir / "checkpoints")[-1][1]
    victim = max((p for p in (newest / "state").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])  # truncated
    with pytest.warns(checkpoint.CheckpointWarning, match=r"step_00000030 is unusable \(checksum mismatch"):
        resume(run_dir, progress=False)
    assert "resumed from checkpoint at iteration 20" in (run_dir / "log.txt").read_text()
    assert (run_dir / "metrics.jsonl").read_text() == before


def test_a_tampered_manifest_or_newer_format_is_rejected(tmp_path):
    import jax.numpy as jnp

    state = {"x": jnp.arange(3.0)}
    checkpoint.save(tmp_path, 1, state)
    path = checkpoint.save(tmp_path, 2, state)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["version"] = checkpoint.VERSION + 1
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.warns(checkpoint.CheckpointWarning, match="newer than this library"):
        iteration, restored, _ = checkpoint.restore_latest(tmp_path, state)
    assert iteration == 1
    np.testing.assert_array_equal(restored["x"], state["x"])


SMALL_EVALUATION = ["evaluation.num_functions=40", "evaluation.pool_functions=60", "evaluation.minutes=90", "evaluation.seeds=2",
                    "evaluation.q_learning_days=1", "evaluation.static_containers=[2]",
                    "evaluation.hpa_target_utilization=[0.7]", "evaluation.kpa_target_concurrency=[0.5, 1.0]"]


SMALL_TICK = ["evaluation.num_functions=20", "evaluation.pool_functions=60", "evaluation.minutes=20",
              "evaluation.start_minute=1000", "evaluation.train_minutes=30", "evaluation.train_episodes=1",
              "evaluation.hpa_target_utilization=[0.5]", "evaluation.kpa_target_concurrency=[0.5, 1.0]",
              "evaluation.q_learning_days=1"]


def test_default_run_trains_online_nac_and_compares_on_the_tick_simulator(tmp_path, capsys):
    """`mfg run` (shortened): NAC on the tabular game, then the online NAC policy and
    independent RL trained on a training day and compared on a held-out day, with
    Q-learning trained on another day of the held-out day's functions."""
    overrides = ["run.iterations=20", "run.chunk_size=10"] + SMALL_TICK
    assert main(["run", *[x for o in overrides for x in ("--set", o)], "--out", str(tmp_path), "--no-progress"]) == 0
    run_dir = tmp_path / "default"
    folder = RunFolder(run_dir)
    for path in (folder.summary, folder.plots / "convergence.png", folder.plots / "frontier.png",
                 folder.plots / "online_training.png", run_dir / "evaluation" / "table.md"):
        assert path.is_file(), path
    summary = json.loads(folder.summary.read_text())
    assert set(summary["evaluation"]) == {"vs HPA", "vs KPA", "vs Independent RL"}
    evaluation = json.loads((run_dir / "evaluation" / "summary.json").read_text())
    assert evaluation["simulator"] == "tick" and evaluation["setting"] == "tight"
    assert evaluation["training_day"] != evaluation["evaluation_days"][0]          # trained on another day
    names = {(r["policy"], r["knob"]) for r in evaluation["policies"]}
    assert names == {("KPA", "target 0.5"), ("KPA", "target 1"), ("HPA", "target 0.5"),
                     ("MFG-NAC targets", "price 0.02"), ("independent RL targets", "price 0.02"),
                     ("tabular MFG (minute game)", "this run"), ("Q-learning", "price 0.02")}
    for row in evaluation["policies"]:
        assert 0 <= row["slo_violations"] <= 1 and row["allocated_cores"] > 0 and row["days"] == 1
        assert row["violations_floor"] <= row["slo_violations"] + 1e-9
    table = (run_dir / "evaluation" / "table.md").read_text()
    assert table.count("\n| ") == 1 + len(evaluation["policies"]) and "Targets" in table
    # the CPU request as a knob of every policy: the baselines and the learners run at each
    assert main(["eval", str(run_dir), "--set", "evaluation.cpu_requests=[0.5, 1.0]", "--tag", "cpu",
                 "--no-progress"]) == 0
    names = {(r["policy"], r["knob"]) for r in json.loads(
        (run_dir / "evaluation-cpu" / "summary.json").read_text())["policies"]}
    assert {("KPA", "target 0.5, cpu 0.5"), ("KPA", "target 1, cpu 1"), ("HPA", "target 0.5, cpu 0.5"),
            ("Q-learning", "price 0.02, cpu 0.5"), ("Q-learning", "price 0.02, cpu 1"),
            ("MFG-NAC targets", "price 0.02, cpu 0.5"), ("MFG-NAC targets", "price 0.02, cpu 1"),
            ("independent RL targets", "price 0.02, cpu 0.5")} <= names
    # or as an action of one learner
    assert main(["eval", str(run_dir), "--set", "evaluation.cpu_requests=[0.5, 1.0]", "--set",
                 "evaluation.learner_cpu=action", "--tag", "cpu-action", "--no-progress"]) == 0
    names = {(r["policy"], r["knob"]) for r in json.loads(
        (run_dir / "evaluation-cpu-action" / "summary.json").read_text())["policies"]}
    assert {("MFG-NAC targets", "price 0.02"), ("independent RL targets", "price 0.02")} <= names
    # the same policy evaluated on the roomy setting, into its own folder
    assert main(["eval", str(run_dir), "--set", "evaluation.setting=roomy", "--tag", "roomy", "--no-progress"]) == 0
    roomy = json.loads((run_dir / "evaluation-roomy" / "summary.json").read_text())
    assert roomy["setting"] == "roomy" and set(roomy["targets"]) == {"vs best baseline"}


@pytest.mark.parametrize("change, message", [
    ({"workload": "."}, "the tick comparison trains and evaluates on synthetic days"),
    ({"start_minute": 1400, "minutes": 100}, "start_minute \\+ minutes must stay within the day"),
    ({"minutes": 60, "train_start_minute": 720, "train_minutes": 1440}, "train_start_minute \\+ train_minutes must stay within"),
    ({"train_start_minute": 1440}, "train_start_minute"),
    ({"prices": [-0.1]}, "prices must be numbers >= 0"),
    ({"setting": "crowded"}, "setting"),
])
def test_bad_tick_comparison_settings_are_refused_by_name(change, message):
    with pytest.raises(ConfigError, match=message):
        parse_config({**VALID, "game": {"name": "serverless"}, "evaluation": {"simulator": "tick", **change}}, "test")


def test_minute_comparison_trains_evaluates_and_writes_the_run_folder(tmp_path, capsys):
    """The particle (minute) simulator's comparison: NAC on the serverless game, then every baseline."""
    overrides = ["run.iterations=20", "run.chunk_size=10", "evaluation.simulator=minute"] + SMALL_EVALUATION
    assert main(["run", *[x for o in overrides for x in ("--set", o)], "--out", str(tmp_path), "--no-progress"]) == 0
    run_dir = tmp_path / "default"
    folder = RunFolder(run_dir)
    for path in (folder.config, folder.metrics, folder.summary, folder.log_file, folder.plots / "convergence.png",
                 folder.plots / "latency_cdf.png", folder.plots / "slo_vs_cpu.png", folder.plots / "pressure.png",
                 run_dir / "evaluation" / "table.md", run_dir / "evaluation" / "per_function.csv"):
        assert path.is_file(), path
    assert len(read_metrics(folder.metrics)) == 20
    summary = json.loads(folder.summary.read_text())
    assert summary["iterations"] == 20 and set(summary["evaluation"]) == {"vs HPA", "vs KPA", "vs Independent RL"}
    evaluation = json.loads((run_dir / "evaluation" / "summary.json").read_text())
    assert set(evaluation["policies"]) == {"MFG-NAC", "Independent RL", "Static (2 containers)", "HPA (target 0.7)",
                                          "KPA (target 0.5)", "KPA (target 1)", "Q-learning (KPA target)"}
    for metrics in evaluation["policies"].values():
        assert 0 <= metrics["slo_violation_rate"]["mean"] <= 1 and metrics["allocated_cpu"]["mean"] >= 0.125
        assert metrics["p50_latency"]["mean"] <= metrics["p99_latency"]["mean"]
    table = (run_dir / "evaluation" / "table.md").read_text()
    assert table.count("\n| ") == 1 + len(evaluation["policies"]) and "Targets:" in table
    assert "run folder:" in capsys.readouterr().out
    assert main(["plot", str(run_dir)]) == 0
    # mfg eval: the saved policy again, on another population size, into its own folder.
    assert main(["eval", str(run_dir), "--set", "evaluation.num_functions=60", "--set", "evaluation.seeds=1",
                 "--set", "evaluation.independent=false", "--tag", "n60", "--no-progress"]) == 0
    again = json.loads((run_dir / "evaluation-n60" / "summary.json").read_text())
    assert again["num_functions"] == 60 and "Independent RL" not in again["policies"]
    assert (run_dir / "evaluation-n60" / "plots" / "slo_vs_cpu.png").is_file()


def test_evaluation_needs_the_serverless_game():
    with pytest.raises(ConfigError, match="evaluation.*needs game 'serverless', got 'beach_bar'"):
        parse_config({**VALID, "evaluation": {}}, "test")
    with pytest.raises(ConfigError, match="hpa_target_utilization values must lie in"):
        parse_config({**VALID, "game": {"name": "serverless"}, "evaluation": {"hpa_target_utilization": [1.5]}},
                     "test")


def test_tensorboard_scalars_are_written_when_asked(tmp_path):
    from experiments.runner import start

    config = parse_config({**VALID, "name": "board", "output": {"tensorboard": True, "plots": False}}, "test")
    run_dir = start(config, str(tmp_path), progress=False)
    events = list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 100

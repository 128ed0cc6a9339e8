"""Bad input, as a specification: every broken config, trace, run folder, exported policy
and ``mfg serve`` invocation below is refused

  * with a non-zero exit of the ``mfg`` entry point (called in-process),
  * with a message of a few lines that names the field or file and what is allowed
    (each case gives a pattern the message must contain),
  * with no traceback,
  * leaving every file that existed before unchanged and nothing new behind (hashes of
    the whole test folder before and after).

Controls that must succeed sit beside them (``test_control_*``).  docs/experiments.md and
docs/deploy.md ("What is checked") list the checks these cases exercise.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

import mfg_policy
from experiments.cli import main
from fake_platforms import OPENWHISK_AUTH
from mfg.serverless import workloads

MAX_MESSAGE_LINES = 12

# A cheap valid experiment: stationary beach bar, exact NAC, 10 iterations.
BASE = {
    "name": "base",
    "precision": "float64",
    "game": {"name": "beach_bar", "params": {"horizon": None}},
    "solver": {"name": "nac", "params": {"learning_rate": 0.05, "temperature": 1.0}},
    "run": {"iterations": 10, "chunk_size": 5},
    "output": {"plots": False},
}


def snapshot(root: Path) -> dict[str, str]:
    """Every file and folder under ``root``: path -> SHA-256 (folders: 'dir')."""
    out = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        out[key] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def refused(argv: list[str], root: Path, expect: str, capsys) -> str:
    """Run ``mfg argv``; assert the refusal of the module docstring; return the message."""
    capsys.readouterr()
    before = snapshot(root)
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    message = code if isinstance(code, str) else captured.err
    assert code not in (0, None), f"exit 0 for {argv}; output: {captured.out[-500:]}"
    assert "Traceback" not in message + captured.err, message + captured.err
    assert 0 < len(message.strip().splitlines()) <= MAX_MESSAGE_LINES, message
    assert re.search(expect, message), f"{expect!r} not in:\n{message}"
    assert snapshot(root) == before, "files changed, appeared or disappeared"
    return message


def with_change(tree: dict, path: str, value) -> dict:
    tree = json.loads(json.dumps(tree))
    node = tree
    keys = path.split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    if value is DELETE:
        node.pop(keys[-1], None)
    else:
        node[keys[-1]] = value
    return tree


DELETE = object()

# ----------------------------------------------------------------- configs (mfg run)

SERVERLESS = {"name": "sl", "precision": "float64",
              "game": {"name": "serverless", "params": {"max_containers": 3, "max_cpu_steps": 2}},
              "solver": {"name": "nac", "params": {"learning_rate": 0.5, "temperature": 0.05}},
              "run": {"iterations": 5, "chunk_size": 5}, "output": {"plots": False},
              "evaluation": {"num_functions": 20, "seeds": 1, "minutes": 30, "q_learning_days": 0}}

CONFIG_CASES = [
    # (base, path, value, expected pattern)
    (BASE, "gmae", {}, r"gmae: unknown key; allowed: name, description"),
    (BASE, "run.iteration", 10, r"run.iteration: unknown key; allowed: iterations"),
    (BASE, "run.iterations", "ten", r"run.iterations: .*valid integer, got 'ten'"),
    (BASE, "run.iterations", 0, r"run.iterations: .*greater than 0"),
    (BASE, "run.iterations", -5, r"run.iterations: .*greater than 0"),
    (BASE, "run.iterations", True, r"run.iterations: .*valid integer, got True \(bool\)"),
    (BASE, "run.iterations", 1.5, r"run.iterations: .*valid integer, got 1.5"),
    (BASE, "run.chunk_size", 0, r"run.chunk_size: .*greater than 0"),
    (BASE, "run.seeds", 0, r"run.seeds: .*greater than 0"),
    (BASE, "run.seed", -1, r"run.seed: .*greater than or equal to 0"),
    (BASE, "run.stop_exploitability", -1.0, r"run.stop_exploitability: .*greater than 0"),
    (BASE, "run.stop_exploitability", float("nan"), r"run.stop_exploitability: .*finite number"),
    (BASE, "run.stop_residual", float("inf"), r"run.stop_residual: .*finite number"),
    (BASE, "precision", "float16", r"precision: precision must be 'float32' or 'float64'"),
    (BASE, "name", "..", r"name: must be a folder name .* got '\.\.'"),
    (BASE, "name", ".hidden", r"name: must be a folder name"),
    (BASE, "name", "a/b", r"name: must be a folder name"),
    (BASE, "name", "", r"name: must be a folder name"),
    (BASE, "name", 123, r"name: .*valid string, got 123"),
    (BASE, "output.checkpoint_every", 0, r"output.checkpoint_every: .*greater than 0"),
    (BASE, "output.keep_checkpoints", 0, r"output.keep_checkpoints: .*greater than 0"),
    (BASE, "output.plots", "yes please", r"output.plots: .*valid boolean"),
    (BASE, "game.name", "crowd", r"game: unknown game 'crowd'; allowed: beach_bar"),
    (BASE, "game", DELETE, r"game: Field required"),
    (BASE, "game.params", {"size": 3}, r"unknown parameter\(s\) \['size'\] of game 'beach_bar'; allowed: horizon"),
    (BASE, "game.params", [1, 2], r"game.params: .*valid dictionary"),
    (BASE, "game", {"name": "crowd_modelling", "params": {"size": 0}}, r"game.params.size: must be >= 1, got 0"),
    (BASE, "game", {"name": "crowd_modelling", "params": {"size": -3}}, r"game.params.size: must be >= 1"),
    (BASE, "game", {"name": "crowd_modelling", "params": {"size": "ten"}},
     r"game.params.size: must be an integer, got 'ten' \(str\)"),
    (BASE, "game", {"name": "crowd_modelling", "params": {"size": 2.5}}, r"game.params.size: must be an integer"),
    (BASE, "game", {"name": "crowd_modelling", "params": {"horizon": 0}}, r"game.params.horizon: must be >= 1"),
    (BASE, "game", {"name": "garnet", "params": {"num_states": True}},
     r"game.params.num_states: must be an integer, got True \(bool\)"),
    (BASE, "game", {"name": "garnet", "params": {"discount": 1.0}}, r"game.params.discount: must be in \(0, 1\)"),
    (BASE, "game", {"name": "garnet", "params": {"discount": 0.0}}, r"game.params.discount: must be in \(0, 1\)"),
    (BASE, "game", {"name": "garnet", "params": {"branching": 0}}, r"game.params.branching: must be >= 1"),
    (BASE, "game", {"name": "garnet", "params": {"kernel": "shift"}},
     r"kernel must be one of 'pull', 'sparse', 'dense' for this game, got 'shift'"),
    (BASE, "game.params", {"horizon": None, "p_still": 1.5}, r"game.params.p_still: must be in \[0, 1\]"),
    (BASE, "game.params", {"horizon": None, "bar_loc": 10}, r"bar_loc must lie in \[0, n-1\]"),
    (BASE, "game.params", {"horizon": None, "kernel": "bogus"}, r"kernel"),
    (BASE, "game", {"name": "serverless", "params": {"capacity": -1.0}}, r"game.params.capacity: must be > 0"),
    (BASE, "game", {"name": "serverless", "params": {"price": -0.5}}, r"game.params.price: must be >= 0"),
    (BASE, "game", {"name": "serverless", "params": {"slo": 0}}, r"game.params.slo: must be > 0"),
    (BASE, "game", {"name": "crowd_modelling", "params": {"size": 10**9}},
     r"needs at least .* GiB of memory, this machine has .* available"),
    (BASE, "game", {"name": "crowd_modelling_2d", "params": {"size": 10**5}}, r"needs at least .* GiB of memory"),
    (BASE, "solver.name", "ppo", r"solver: unknown solver 'ppo'; allowed: fictitious_play"),
    (BASE, "solver.params", {"lr": 0.1}, r"unknown parameter\(s\) \['lr'\] of solver 'nac'; allowed: learning_rate"),
    (BASE, "solver.params.learning_rate", -1.0, r"solver.params.learning_rate: must be > 0, got -1.0"),
    (BASE, "solver.params.learning_rate", float("nan"), r"solver.params.learning_rate: must be a finite number"),
    (BASE, "solver.params.learning_rate", float("inf"), r"solver.params.learning_rate: must be > 0, got inf"),
    (BASE, "solver.params.learning_rate", "fast", r"solver.params.learning_rate: must be a number, got 'fast'"),
    (BASE, "solver.params.temperature", 0.0, r"solver.params.temperature: NAC .* lambda must be > 0"),
    (BASE, "solver", {"name": "fixed_point", "params": {"temperature": 0.0}},
     r"solver.params.temperature: the fixed point .* lambda must be > 0"),
    (BASE, "solver", {"name": "fixed_point", "params": {"damping": -0.5}}, r"solver.params.damping: must be in \(0, 1\]"),
    (BASE, "solver", {"name": "fixed_point", "params": {"damping": 0}}, r"solver.params.damping: must be in \(0, 1\]"),
    (BASE, "solver", {"name": "fixed_point", "params": {"damping": 1.5}}, r"solver.params.damping: must be in \(0, 1\]"),
    (BASE, "solver", {"name": "mirror_descent", "params": {"learning_rate": 0}}, r"solver.params.learning_rate: must be > 0"),
    (BASE, "solver.params.mean_field_rate", 0.0, r"solver.params.mean_field_rate: must be in \(0, 1\]"),
    (BASE, "solver.params.mean_field_rate", 2.0, r"solver.params.mean_field_rate: must be in \(0, 1\]"),
    (BASE, "solver.params.exploration", 1.0, r"solver.params.exploration: must be in \[0, 1\)"),
    (BASE, "solver.params.critic", "montecarlo", r"solver.params.critic: must be one of 'exact', 'sampled'"),
    (BASE, "solver.params", {"critic": "sampled", "num_agents": 0}, r"solver.params.num_agents: must be >= 1"),
    (BASE, "solver.params", {"critic": "sampled", "num_agents": 10**12}, r"needs at least .* sampled agents"),
    (BASE, "solver.params", {"critic": "sampled", "num_agents": 10**10}, r"needs at least .* GiB of memory"),
    (BASE, "run.seeds", 10**9, r"needs at least .* GiB of memory"),
    (BASE, "solver", {"name": "neural_nac", "params": {"hidden": []}}, r"solver.params.hidden: must be a non-empty"),
    (BASE, "solver", {"name": "neural_nac", "params": {"hidden": [0, 32]}}, r"solver.params.hidden: must be >= 1"),
    (BASE, "solver", {"name": "neural_nac", "params": {"hidden": "64"}}, r"solver.params.hidden: must be a non-empty"),
    (BASE, "solver", {"name": "fictitious_play", "params": {"learning_rate": 2.0}},
     r"solver.params.learning_rate: 0 is the harmonic average"),
    (BASE, "solver", {"name": "fictitious_play", "params": {"tie_break": "random"}},
     r"solver.params.tie_break: must be one of 'uniform', 'first'"),
    (BASE, "solver.params.radius", -1.0, r"solver.params.radius: must be > 0 \(inf allowed\)"),
    (BASE, "solver.params.ridge", -1.0, r"solver.params.ridge: must be >= 0"),
    (BASE, "solver", {"name": "fixed_point", "features": {"kind": "rbf"}}, r"features apply to the linear NAC"),
    (BASE, "solver.features", {"kind": "fourier"}, r"solver.features.kind: Input should be 'one_hot', 'rbf'"),
    (BASE, "solver.features", {"kind": "rbf", "params": {"sigma": 1.0}},
     r"unknown parameter\(s\) \['sigma'\] of features 'rbf'; allowed: centers_per_dim, width, bias"),
    (BASE, "solver.features", {"kind": "rbf", "params": {"width": 0.0}}, r"solver.features.params.width: must be > 0"),
    (BASE, "solver.features", {"kind": "rbf", "params": {"centers_per_dim": 0}},
     r"solver.features.params.centers_per_dim: must be >= 1"),
    (BASE, "solver.features", {"kind": "tile_coding", "params": {"tilings": 0}},
     r"solver.features.params.tilings: must be >= 1"),
    (BASE, "evaluation", {}, r"evaluation \(the serverless comparison\) needs game 'serverless'"),
    (SERVERLESS, "evaluation.workload", "/nonexistent/trace", r"workload must be 'synthetic' or an existing folder"),
    (SERVERLESS, "evaluation.minutes", 2000, r"evaluation.minutes: .*less than or equal to 1440"),
    (SERVERLESS, "evaluation.hpa_target_utilization", [1.5], r"hpa_target_utilization values must lie in \(0, 1\]"),
    (SERVERLESS, "evaluation.static_containers", [0], r"static_containers must be >= 1"),
    (SERVERLESS, "evaluation.cpu_requests", [0.5, 0.0], r"cpu_requests must be numbers of cores > 0, got \[0.5, 0.0\]"),
    (SERVERLESS, "evaluation.learner_cpu", "both", r"evaluation.learner_cpu: Input should be 'knob' or 'action'"),
    (SERVERLESS, "evaluation.num_functions", 10**9, r"needs at least .* evaluation"),
    (SERVERLESS, "evaluation.q_learning_train_day", 1, r"q_learning_train_day must differ from day \(1\)"),
    (SERVERLESS, "evaluation.deploy", "best", r"evaluation.deploy: Input should be 'sample' or 'greedy'"),
    (BASE, "nplayer", {"sizes": [0]}, r"sizes must be positive player counts"),
    (BASE, "nplayer", {"sizes": []}, r"nplayer.sizes: .*at least 1 item"),
    (BASE, "nplayer", {"sizes": [2], "episodes": 1}, r"nplayer.episodes: .*greater than or equal to 2"),
    (BASE, "nplayer", {"sizes": [2], "method": "magic"}, r"nplayer.method: Input should be 'auto', 'exact'"),
    (BASE, "devices", {"seeds": 0}, r"devices.seeds: .*greater than 0"),
    (BASE, "devices", {"shard": ["time"]}, r"devices.shard.0: Input should be 'states' or 'agents'"),
]


@pytest.mark.parametrize("base, path, value, expect", CONFIG_CASES,
                         ids=[f"{c[1]}={'(deleted)' if c[2] is DELETE else str(c[2])[:24]}" for c in CONFIG_CASES])
def test_a_bad_config_is_refused_before_anything_is_written(tmp_path, capsys, base, path, value, expect):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(with_change(base, path, value)))
    refused(["run", str(config), "--out", str(tmp_path / "runs"), "--no-progress"], tmp_path, expect, capsys)


YAML_CASES = [
    ("duplicate_key", "name: a\ngame: {name: beach_bar}\nsolver: {name: nac}\nname: b\n",
     r"duplicate key 'name' \(first given on line 1\)"),
    ("syntax_error", "game: [unclosed\n", r"is not valid YAML"),
    ("a_list", "- game\n- solver\n", r"must be a YAML mapping, got list"),
    ("empty", "", r"must be a YAML mapping, got NoneType"),
    ("binary", b"\xff\xfe\x00game", r"is not a text file"),
    ("tab_indented", "game:\n\tname: beach_bar\n", r"is not valid YAML"),
]


@pytest.mark.parametrize("name, text, expect", YAML_CASES, ids=[c[0] for c in YAML_CASES])
def test_a_config_file_that_is_not_yaml_is_refused(tmp_path, capsys, name, text, expect):
    config = tmp_path / "config.yaml"
    config.write_bytes(text if isinstance(text, bytes) else text.encode())
    refused(["run", str(config), "--out", str(tmp_path / "runs"), "--no-progress"], tmp_path, expect, capsys)


SET_CASES = [
    (["run.iterations"], r"--set expects path.to.key=value"),
    (["=3"], r"--set has an empty key path"),
    (["run.iterations=abc"], r"run.iterations: .*valid integer, got 'abc'"),
    (["run.iterations.x=1"], r"--set run.iterations.x: 'iterations' is not a mapping"),
    (["solver.params.learning_rate=-0.1"], r"solver.params.learning_rate: must be > 0"),
    (["game.params.n=1e3.5"], r"game.params.n: must be an integer"),
]


@pytest.mark.parametrize("overrides, expect", SET_CASES, ids=[c[0][0] for c in SET_CASES])
def test_a_bad_override_is_refused(tmp_path, capsys, overrides, expect):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(BASE))
    argv = ["run", str(config), "--out", str(tmp_path / "runs"), "--no-progress"]
    refused(argv + [x for o in overrides for x in ("--set", o)], tmp_path, expect, capsys)


def test_config_paths_that_are_missing_folders_or_files_are_refused(tmp_path, capsys):
    (tmp_path / "folder.yaml").mkdir()
    refused(["run", str(tmp_path / "missing.yaml")], tmp_path, r"no experiment config .*missing.yaml", capsys)
    refused(["run", str(tmp_path / "folder.yaml")], tmp_path, r"no experiment config .*folder.yaml", capsys)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(BASE))
    (tmp_path / "afile").write_text("notes")
    refused(["run", str(config), "--out", str(tmp_path / "afile"), "--no-progress"], tmp_path,
            r"output folder .*afile.* is a file", capsys)
    refused(["run", str(config), "--out", str(tmp_path / "afile" / "sub"), "--no-progress"], tmp_path,
            r"afile is a file, not a folder", capsys)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "base").write_text("a file named like the run")
    refused(["run", str(config), "--out", str(tmp_path / "runs"), "--no-progress"], tmp_path,
            r"run folder .*base is a file", capsys)


def test_control_a_valid_config_runs_and_a_second_run_never_touches_the_first(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(BASE))
    assert main(["run", str(config), "--out", str(tmp_path), "--no-progress"]) == 0
    first = snapshot(tmp_path / "base")
    assert main(["run", str(config), "--out", str(tmp_path), "--no-progress"]) == 0
    assert snapshot(tmp_path / "base") == first
    assert len(list(tmp_path.glob("base-*"))) == 1


# ----------------------------------------------------------------------- traces

def trace_folder(root: Path) -> Path:
    folder = root / "trace"
    workloads.write_trace(workloads.generate(3, seed=1), folder)
    return folder


def _edit_csv(path: Path, edit) -> None:
    lines = path.read_text().splitlines()
    path.write_text("\n".join(edit(lines)) + "\n")


def _cell(line: str, column: int, value: str) -> str:
    cells = line.split(",")
    cells[column] = value
    return ",".join(cells)


INVOCATIONS = workloads.invocation_file(1)
DURATIONS = workloads.duration_file(1)
MEMORY = workloads.memory_file(1)

TRACE_CASES = [
    ("no_invocations", lambda f: (f / INVOCATIONS).unlink(), r"invocations_per_function_md.anon.d01.csv: no such"),
    ("wrong_header", lambda f: _edit_csv(f / INVOCATIONS, lambda ls: [ls[0].replace("HashApp", "App")] + ls[1:]),
     r"header does not match .*missing \['HashApp'\]"),
    ("short_row", lambda f: _edit_csv(f / INVOCATIONS, lambda ls: ls[:1] + [ls[1].rsplit(",", 1)[0]] + ls[2:]),
     r"line 2: 1443 fields, expected 1444"),
    ("negative_count", lambda f: _edit_csv(f / INVOCATIONS, lambda ls: ls[:1] + [_cell(ls[1], 10, "-4")] + ls[2:]),
     r"line 2, column '7': '-4' must be finite and >= 0"),
    ("text_count", lambda f: _edit_csv(f / INVOCATIONS, lambda ls: ls[:1] + [_cell(ls[1], 10, "many")] + ls[2:]),
     r"line 2, column '7': 'many' is not a non-negative integer"),
    ("count_past_bound", lambda f: _edit_csv(f / INVOCATIONS, lambda ls: ls[:1] + [_cell(ls[1], 5, "10" * 6)] + ls[2:]),
     r"line 2, column '2': .* past the bound"),
    ("unknown_trigger", lambda f: _edit_csv(f / INVOCATIONS, lambda ls: ls[:1] + [_cell(ls[1], 3, "cron")] + ls[2:]),
     r"line 2, column 'Trigger': 'cron' is not one of"),
    ("duplicated_row", lambda f: _edit_csv(f / INVOCATIONS, lambda ls: ls + [ls[1]]), r"repeats line 2"),
    ("durations_unknown_function",
     lambda f: _edit_csv(f / DURATIONS, lambda ls: ls[:1] + [_cell(ls[1], 2, "f" * 64)] + ls[2:]),
     r"function_durations_percentiles.anon.d01.csv, line 2, .* is not in invocations"),
    ("durations_duplicated_row", lambda f: _edit_csv(f / DURATIONS, lambda ls: ls + [ls[1]]),
     r"function_durations_percentiles.anon.d01.csv, line \d+: .* repeats line 2"),
    ("durations_nan", lambda f: _edit_csv(f / DURATIONS, lambda ls: ls[:1] + [_cell(ls[1], 3, "nan")] + ls[2:]),
     r"line 2, column 'Average': 'nan' must be finite"),
    ("memory_unknown_app", lambda f: _edit_csv(f / MEMORY, lambda ls: ls[:1] + [_cell(ls[1], 1, "a" * 64)] + ls[2:]),
     r"app_memory_percentiles.anon.d01.csv, line 2, column 'HashApp': .* is not in"),
    ("empty_invocations", lambda f: (f / INVOCATIONS).write_text(""), r"empty file"),
    ("header_only", lambda f: _edit_csv(f / INVOCATIONS, lambda ls: ls[:1]), r"no function rows"),
    ("not_utf8", lambda f: (f / INVOCATIONS).write_bytes(b"\xff\xfe" * 40),
     r"invocations_per_function_md.anon.d01.csv: not a UTF-8 text \(CSV\) file"),
]


@pytest.mark.parametrize("name, damage, expect", TRACE_CASES, ids=[c[0] for c in TRACE_CASES])
def test_a_broken_trace_is_refused_with_its_file_line_and_column(tmp_path, capsys, name, damage, expect):
    folder = trace_folder(tmp_path)
    damage(folder)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(with_change(SERVERLESS, "evaluation.workload", str(folder))))
    refused(["run", str(config), "--out", str(tmp_path / "runs"), "--no-progress"], tmp_path, expect, capsys)


def test_a_trace_day_that_is_not_there_is_refused(tmp_path, capsys):
    folder = trace_folder(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(with_change(with_change(SERVERLESS, "evaluation.workload", str(folder)),
                                                 "evaluation.day", 3)))
    refused(["run", str(config), "--out", str(tmp_path / "runs"), "--no-progress"], tmp_path,
            r"invocations_per_function_md.anon.d03.csv: no such trace file", capsys)


def test_q_learning_trains_on_another_trace_day_of_the_same_functions(tmp_path):
    """A trace folder: Q-learning's training load holds the evaluation's functions, particle
    for particle, with their rates of the other day (matched by hash); a function absent that
    day has none; a training day the folder lacks is refused by its file name."""
    from experiments.config import EvaluationConfig
    from experiments.serverless import build_loads, q_learning_loads
    from mfg.serverless.cluster import ClusterModel, fit_rates_to_cluster

    folder = trace_folder(tmp_path)                                   # day 1
    tomorrow = workloads.generate(3, seed=1, day=1)
    keep = np.arange(tomorrow.num_functions) != 0                     # the first function is gone on day 2
    workloads.write_trace(workloads.Trace(tomorrow.owners[keep], tomorrow.apps[keep], tomorrow.functions[keep],
                                          tomorrow.triggers[keep], tomorrow.invocations[keep],
                                          tomorrow.durations[keep],
                                          {a: m for a, m in tomorrow.memory.items() if a in set(tomorrow.apps[keep])}),
                          folder, day=2)
    model = ClusterModel()
    evaluation = EvaluationConfig(workload=str(folder), seeds=2, num_functions=20)
    loads = build_loads(model, evaluation, log=lambda _: None)
    training = q_learning_loads(model, evaluation, loads)
    today = workloads.read_trace(folder, 1)
    active = np.flatnonzero(today.rates_per_second().sum(1) > 0)
    assert active[0] == 0                                              # the function gone on day 2 runs on day 1
    expected = fit_rates_to_cluster(tomorrow.rates_per_second(), model)
    expected[0] = 0.0
    for load, other in zip(loads, training):
        np.testing.assert_array_equal(other.assignment, load.assignment)
        np.testing.assert_allclose(np.asarray(other.rates), expected[active], rtol=1e-6)
    later = EvaluationConfig(workload=str(folder), seeds=1, num_functions=20, q_learning_train_day=5)
    with pytest.raises(workloads.TraceFormatError, match=r"invocations_per_function_md.anon.d05.csv: no such"):
        q_learning_loads(model, later, build_loads(model, later, log=lambda _: None))


def test_control_a_valid_trace_reads(tmp_path):
    trace = workloads.read_trace(trace_folder(tmp_path))
    assert trace.num_functions >= 3 and np.isfinite(trace.durations).all()


# ------------------------------------------------------------------ run folders

@pytest.fixture(scope="module")
def finished_runs(tmp_path_factory):
    """A finished stationary run and a finished finite-horizon one (checkpoints every chunk)."""
    root = tmp_path_factory.mktemp("finished")
    for tree in (BASE, with_change(with_change(BASE, "name", "finite"), "game.params.horizon", 3)):
        config = root / f"{tree['name']}.yaml"
        config.write_text(yaml.safe_dump(tree))
        assert main(["run", str(config), "--out", str(root), "--no-progress"]) == 0
    return root


def copy_run(finished_runs, tmp_path, name="base") -> Path:
    return Path(shutil.copytree(finished_runs / name, tmp_path / name))


def _edit_config(run: Path, path: str, value) -> None:
    tree = yaml.safe_load((run / "config.yaml").read_text())
    (run / "config.yaml").write_text(yaml.safe_dump(with_change(tree, path, value), sort_keys=False))


def _truncate_all_checkpoints(run: Path) -> None:
    for file in (run / "checkpoints").rglob("*"):
        if file.is_file() and file.name != "manifest.json" and file.stat().st_size > 16:
            file.write_bytes(file.read_bytes()[:8])


def _corrupt_metrics_line(run: Path, number: int, text: str) -> None:
    lines = (run / "metrics.jsonl").read_text().splitlines(keepends=True)
    lines[number - 1] = text + "\n"
    (run / "metrics.jsonl").write_text("".join(lines))


RUN_CASES = [
    # (command, damage(run), extra args, expected pattern)
    ("resume", lambda r: _edit_config(r, "game.params.n", 6), [],
     r"differs from the config its checkpoint at iteration 10 was made with \(game.params.n: \(absent\) -> 6\)"),
    ("resume", lambda r: _edit_config(r, "precision", "float32"), [], r"precision: \"float64\" -> \"float32\""),
    ("resume", lambda r: _edit_config(r, "solver.params.learning_rate", 0.5), [],
     r"solver.params.learning_rate: 0.05 -> 0.5.*--new-run"),
    ("resume", lambda r: (r / "config.yaml").write_text("game: [unclosed\n"), [], r"config.yaml is not valid YAML"),
    ("resume", lambda r: (r / "config.yaml").write_text("- a\n- b\n"), [], r"must be a YAML mapping, got list"),
    ("resume", lambda r: (r / "config.yaml").unlink(), [], r"is not a run folder \(no config.yaml\)"),
    ("resume", lambda r: (r / "metrics.jsonl").unlink(), [], r"metrics.jsonl is missing.*--repair"),
    ("resume", lambda r: shutil.rmtree(r / "checkpoints"), [],
     r"has 10 record\(s\) but .*checkpoints holds no checkpoint \(checkpoints were deleted\)"),
    ("resume", lambda r: _corrupt_metrics_line(r, 4, "{not json"), [], r"metrics.jsonl, line 4: not a JSON record"),
    ("resume", lambda r: _corrupt_metrics_line(r, 4, '{"iteration": 7}'), [],
     r"line 4: expected a record \{\"iteration\": 4"),
    ("resume", lambda r: _corrupt_metrics_line(r, 2, "[1, 2]"), [], r"line 2: expected a record"),
    ("resume", _truncate_all_checkpoints, [], r"none of the \d checkpoint\(s\) .* verifies"),
    ("resume", lambda r: None, ["--repair", "--new-run"], r"--repair and --new-run exclude each other"),
    ("resume", lambda r: shutil.rmtree(r), [], r"is not a run folder \(no such folder\)"),
    ("plot", lambda r: _corrupt_metrics_line(r, 3, "garbage"), [], r"metrics.jsonl, line 3: not a JSON record"),
    ("plot", lambda r: (r / "metrics.jsonl").unlink(), [], r"has no metrics.jsonl"),
    ("plot", lambda r: (r / "config.yaml").write_text("{}"), [], r"game: Field required"),
    ("eval", lambda r: None, [], r"evaluation \(the serverless comparison\) needs game 'serverless'"),
    ("eval", lambda r: shutil.rmtree(r), [], r"is not a run folder \(no such folder\)"),
    ("nplayer", lambda r: None, [], r"has no nplayer section: give the sizes"),
    ("nplayer", lambda r: None, ["--set", "nplayer.sizes=[0]"], r"sizes must be positive player counts"),
    ("export", lambda r: _edit_config(r, "game.params.n", 6), [], r"differs from the config its checkpoint"),
    ("export", lambda r: shutil.rmtree(r / "checkpoints"), [], r"has no usable checkpoint"),
    ("export", lambda r: (r / "config.yaml").write_text("{"), [], r"config.yaml is not valid YAML"),
    ("export", lambda r: (r / "notes").mkdir() or (r / "notes" / "todo.txt").write_text("mine"),
     ["--out", "{run}/notes"], r"notes exists and is not a previous export of .*nothing was written"),
    ("export", lambda r: (r / "notes.txt").write_text("mine"), ["--out", "{run}/notes.txt"],
     r"notes.txt is a file; nothing was written"),
    ("export", lambda r: (r / "notes.txt").write_text("mine"), ["--out", "{run}/notes.txt/policy"],
     r"notes.txt is a file, not a folder"),
]


@pytest.mark.parametrize("command, damage, extra, expect", RUN_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(RUN_CASES)])
def test_a_damaged_or_changed_run_folder_is_refused_and_left_as_it_is(finished_runs, tmp_path, capsys, command,
                                                                      damage, extra, expect):
    run = copy_run(finished_runs, tmp_path)
    damage(run)
    argv = [command, str(run), *[x.format(run=run) for x in extra]]
    if command in ("resume", "eval", "nplayer"):
        argv.append("--no-progress")
    refused(argv, tmp_path, expect, capsys)


def test_a_finite_horizon_policy_is_not_exported(finished_runs, tmp_path, capsys):
    run = copy_run(finished_runs, tmp_path, "finite")
    refused(["export", str(run)], tmp_path, r"game 'beach_bar' is finite-horizon \(horizon 3", capsys)


def test_control_resume_repairs_and_branches_only_when_told(finished_runs, tmp_path, capsys):
    run = copy_run(finished_runs, tmp_path)
    metrics = (run / "metrics.jsonl").read_text()
    (run / "metrics.jsonl").unlink()
    assert main(["resume", str(run), "--repair", "--no-progress"]) == 0
    assert (run / "metrics.jsonl").read_text() == metrics                # the same run, recomputed
    assert len(list(run.glob("damaged-*/checkpoints"))) == 1             # the old files kept aside
    _edit_config(run, "run.iterations", 15)
    assert main(["resume", str(run), "--new-run", "--no-progress"]) == 0
    (branch,) = tmp_path.glob("base-from-10-*")
    records = [json.loads(x) for x in (branch / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records] == list(range(1, 16))
    assert (branch / "metrics.jsonl").read_text().startswith(metrics)
    assert main(["resume", str(branch), "--no-progress"]) == 0            # the branch resumes as its own run


def test_control_export_replaces_only_its_own_export(finished_runs, tmp_path):
    run = copy_run(finished_runs, tmp_path)
    out = tmp_path / "exported"
    assert main(["export", str(run), "--out", str(out)]) == 0
    assert main(["export", str(run), "--out", str(out)]) == 0            # a previous export of this run
    assert main(["export", str(run)]) == 0 and (run / "policy" / "manifest.json").is_file()
    assert not list(tmp_path.glob(".*tmp*")) and not list(tmp_path.glob(".*old*"))


# --------------------------------------------------------- exported policies (serve)

def _rewrite_table(policy: Path, table: np.ndarray) -> None:
    weights = policy / "weights.safetensors"
    mfg_policy.write_safetensors(weights, {"policy": table})
    manifest = json.loads((policy / "manifest.json").read_text())
    manifest["weights"]["sha256"] = mfg_policy.sha256_of(weights)
    manifest["approximator"]["shape"] = list(table.shape)
    (policy / "manifest.json").write_text(json.dumps(manifest))


def _edit_manifest(policy: Path, edit) -> None:
    manifest = json.loads((policy / "manifest.json").read_text())
    edit(manifest)
    (policy / "manifest.json").write_text(json.dumps(manifest))


def _table(policy: Path) -> np.ndarray:
    return mfg_policy.read_safetensors(policy / "weights.safetensors")["policy"].copy()


def _with(table: np.ndarray, s: int, a: int, value: float) -> np.ndarray:
    table[s, a] = value
    return table


def _truncated_header(policy: Path) -> None:
    weights = policy / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:12])
    _edit_manifest(policy, lambda m: m["weights"].update(sha256=mfg_policy.sha256_of(weights)))


POLICY_CASES = [
    ("no_manifest", lambda p: (p / "manifest.json").unlink(), r"no manifest.json \(not an exported policy folder\)"),
    ("manifest_not_json", lambda p: (p / "manifest.json").write_text("{"), r"manifest.json: not valid JSON"),
    ("manifest_list", lambda p: (p / "manifest.json").write_text("[1, 2]"),
     r"manifest.json: must be a JSON object, got a JSON list"),
    ("wrong_format", lambda p: _edit_manifest(p, lambda m: m.update(format="onnx")), r"format 'onnx' is not"),
    ("newer_version", lambda p: _edit_manifest(p, lambda m: m.update(format_version=99)),
     r"format version 99 is not supported"),
    ("version_string", lambda p: _edit_manifest(p, lambda m: m.update(format_version="1")),
     r"format version '1' is not supported"),
    ("no_weights_field", lambda p: _edit_manifest(p, lambda m: m.pop("weights")), r"missing field\(s\) \['weights'\]"),
    ("weights_outside", lambda p: _edit_manifest(p, lambda m: m["weights"].update(file="../weights.safetensors")),
     r"weights.file must name a file inside the policy folder"),
    ("weights_missing", lambda p: (p / "weights.safetensors").unlink(), r"weights file 'weights.safetensors' is missing"),
    ("weights_altered", lambda p: (p / "weights.safetensors").write_bytes(
        (p / "weights.safetensors").read_bytes()[:-8] + b"\0" * 8), r"SHA-256 does not match the manifest"),
    ("nan_probability", lambda p: _rewrite_table(p, _with(_table(p), 3, 1, np.nan)),
     r"non-finite probabilities \(NaN or inf\) in row 3"),
    ("negative_probability", lambda p: _rewrite_table(p, _with(_table(p), 2, 0, -0.1)),
     r"negative probability -0.1 at state 2, action 0"),
    ("unnormalized", lambda p: _rewrite_table(p, _table(p) * 1.01), r"row \d+ of the policy table sums to 1.01, not 1"),
    ("wrong_action_count", lambda p: _rewrite_table(p, _table(p)[:, :3] / _table(p)[:, :3].sum(1, keepdims=True)),
     r"no \[S, A\] 'policy' table matching 5 actions"),
    ("unknown_observation", lambda p: _edit_manifest(p, lambda m: m["observation"].update(kind="pixels")),
     r"observation.kind 'pixels' is not"),
    ("no_moves", lambda p: _edit_manifest(p, lambda m: m["observation"].pop("moves")),
     r"the serverless observation spec lacks \['moves'\]"),
    ("zero_containers", lambda p: _edit_manifest(p, lambda m: m["observation"].update(max_containers=0)),
     r"observation.max_containers must be an integer >= 1, got 0"),
    ("actions_not_list", lambda p: _edit_manifest(p, lambda m: m.update(actions="stay")),
     r"'actions' must be a non-empty list"),
    ("truncated_weights", _truncated_header, r"truncated header"),
    ("observation_list", lambda p: _edit_manifest(p, lambda m: m.update(observation=[])),
     r"field 'observation' must be a JSON object, got list"),
]


@pytest.fixture
def policy_copy(exported_serverless_run, tmp_path):
    _, policy = exported_serverless_run
    return Path(shutil.copytree(policy, tmp_path / "policy"))


def serve_argv(tmp_path: Path, *extra: str, url: str = "http://127.0.0.1:9") -> list[str]:
    observations = tmp_path / "observations.json"
    if not observations.exists():
        observations.write_text(json.dumps({"functions": [{"name": "resize", "request_rate": 5.0}]}))
    return ["serve", "--platform", "openwhisk", "--openwhisk-url", url, "--namespace", "guest",
            "--observations", str(observations), "--once", "--retries", "1", *extra]


@pytest.mark.parametrize("name, damage, expect", POLICY_CASES, ids=[c[0] for c in POLICY_CASES])
def test_a_broken_policy_folder_is_refused_before_the_platform_is_touched(policy_copy, tmp_path, capsys, monkeypatch,
                                                                          name, damage, expect):
    monkeypatch.setenv("OPENWHISK_AUTH", OPENWHISK_AUTH)
    damage(policy_copy)
    refused(serve_argv(tmp_path, "--policy", str(policy_copy)), tmp_path, expect, capsys)


def test_a_policy_folder_that_does_not_exist_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OPENWHISK_AUTH", OPENWHISK_AUTH)
    refused(serve_argv(tmp_path, "--policy", str(tmp_path / "nowhere")), tmp_path, r"nowhere: no manifest.json",
            capsys)


# ------------------------------------------------------------------------ serve

SERVE_ARGUMENT_CASES = [
    (["--autoscaler", "hpa", "--iterations", "-3"], r"--once: not allowed with argument --iterations|--iterations"),
    (["--autoscaler", "hpa", "--interval", "0"], r"--interval must be a number of seconds > 0, got 0.0"),
    (["--autoscaler", "hpa", "--interval", "nan"], r"--interval must be a number of seconds > 0, got nan"),
    (["--autoscaler", "hpa", "--timeout", "-1"], r"--timeout must be a number of seconds > 0"),
    (["--autoscaler", "hpa", "--retries", "0"], r"--retries must be an integer >= 1, got 0"),
    (["--autoscaler", "hpa", "--min-containers", "5", "--max-containers", "2"],
     r"--max-containers must be an integer >= max\(1, --min-containers\) = 5, got 2"),
    (["--autoscaler", "hpa", "--min-containers", "-1"], r"--min-containers must be an integer >= 0"),
    (["--autoscaler", "hpa", "--min-cpu", "0"], r"--min-cpu must be a number of cores > 0"),
    (["--autoscaler", "hpa", "--max-cpu", "0.1"], r"--max-cpu must be a number of cores >= --min-cpu = 0.125"),
    (["--autoscaler", "hpa", "--cooldown", "-5"], r"--cooldown must be a number of seconds >= 0"),
    (["--autoscaler", "hpa", "--memory-per-core", "0"], r"--memory-per-core must be a number of MB > 0"),
    (["--autoscaler", "hpa", "--seed", "-2"], r"--seed must be an integer >= 0"),
    (["--autoscaler", "hpa", "--autoscaler-target", "1.5"],
     r"--autoscaler-target \(for hpa\) must be a target CPU utilization in \(0, 1\]"),
    (["--autoscaler", "kpa", "--autoscaler-target", "-1"], r"--autoscaler-target \(for kpa\) must be a target"),
    (["--autoscaler", "static", "--autoscaler-target", "2.5"], r"must be a whole number of containers >= 1"),
    (["--autoscaler", "hpa", "--autoscaler", "ppo"], r"invalid choice: 'ppo'"),
    (["--autoscaler", "hpa", "--interval", "soon"], r"invalid float value: 'soon'"),
]


@pytest.mark.parametrize("extra, expect", SERVE_ARGUMENT_CASES, ids=[" ".join(c[0][2:])[:30] for c in SERVE_ARGUMENT_CASES])
def test_bad_serve_arguments_are_refused_before_any_request(tmp_path, capsys, monkeypatch, extra, expect):
    monkeypatch.setenv("OPENWHISK_AUTH", OPENWHISK_AUTH)
    argv = serve_argv(tmp_path, *extra)
    if "--iterations" in extra:
        argv.remove("--once")
    refused(argv, tmp_path, expect, capsys)


def test_the_policy_and_its_autoscaler_knob_exclude_each_other(exported_serverless_run, tmp_path, capsys,
                                                               monkeypatch):
    monkeypatch.setenv("OPENWHISK_AUTH", OPENWHISK_AUTH)
    refused(serve_argv(tmp_path, "--policy", str(exported_serverless_run[1]), "--autoscaler-target", "0.5"),
            tmp_path, r"--autoscaler-target applies to --autoscaler only", capsys)


def _observations(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "obs.json"
    path.write_text(text)
    return ["--observations", str(path)]


def test_serve_refuses_bad_platform_settings_and_observation_sources(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OPENWHISK_AUTH", OPENWHISK_AUTH)
    hpa = ["--autoscaler", "hpa"]
    refused(serve_argv(tmp_path, *hpa, "--observations", str(tmp_path / "none.json")), tmp_path,
            r"--observations .*none.json: no such file", capsys)
    (tmp_path / "adir").mkdir()
    refused(serve_argv(tmp_path, *hpa, "--observations", str(tmp_path / "adir")), tmp_path,
            r"--observations .*adir: not a file", capsys)
    refused(serve_argv(tmp_path, *hpa, url="ftp://example.com"), tmp_path,
            r"base URL must start with http:// or https://", capsys)
    refused(["serve", "--platform", "openwhisk", "--autoscaler", "hpa", "--observations",
             str(tmp_path / "observations.json"), "--once"], tmp_path, r"needs --openwhisk-url", capsys)
    refused(["serve", "--platform", "lambda", "--autoscaler", "hpa"], tmp_path, r"invalid choice: 'lambda'", capsys)
    refused(["serve", "--autoscaler", "hpa"], tmp_path, r"the following arguments are required: --platform", capsys)
    monkeypatch.delenv("OPENWHISK_AUTH")
    refused(serve_argv(tmp_path, *hpa), tmp_path, r"set OPENWHISK_AUTH='uuid:key' in the environment", capsys)
    monkeypatch.setenv("OPENWHISK_AUTH", "no-colon")
    refused(serve_argv(tmp_path, *hpa), tmp_path, r"basic-auth credentials must look like 'user:password'", capsys)


OBSERVATION_CASES = [
    ("{not json", r"obs.json: not valid JSON"),
    ('{"functions": [{"name": "resize"}]}', r"record 0 needs 'name' and 'request_rate'"),
    ('{"functions": [{"name": "resize", "request_rate": -2}]}', r"request_rate must be a finite number >= 0"),
    ('{"functions": [{"name": "resize", "request_rate": 1, "cpu": 3}]}', r"unknown field\(s\) \['cpu'\]"),
    ('{"functions": 3}', r"expected \{\"functions\": \[...\]\}"),
    ('{"functions": [{"name": "resize", "request_rate": "fast"}]}', r"record 0: could not convert"),
]


@pytest.mark.parametrize("text, expect", OBSERVATION_CASES, ids=[c[0][:24] for c in OBSERVATION_CASES])
def test_a_bad_observations_file_stops_serve_at_the_first_round(tmp_path, capsys, monkeypatch, text, expect):
    monkeypatch.setenv("OPENWHISK_AUTH", OPENWHISK_AUTH)
    argv = serve_argv(tmp_path, "--autoscaler", "hpa")
    argv[argv.index("--observations") + 1:argv.index("--observations") + 2] = [_observations(tmp_path, text)[1]]
    argv.remove("--once")
    refused(argv + ["--iterations", "3", "--interval", "0.01"], tmp_path, expect, capsys)


def test_an_empty_observation_stream_is_an_error(tmp_path, capsys, monkeypatch):
    import io

    monkeypatch.setenv("OPENWHISK_AUTH", OPENWHISK_AUTH)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    argv = serve_argv(tmp_path, "--autoscaler", "hpa")
    argv[argv.index("--observations") + 1] = "-"
    refused(argv, tmp_path, r"no observation: the input stream is empty", capsys)
    argv.remove("--once")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    refused(argv + ["--iterations", "2"], tmp_path, r"no observation: the input stream is empty", capsys)


def test_permanent_platform_errors_stop_serve_with_a_non_zero_exit(fake, tmp_path, capsys, monkeypatch):
    fake.add_action("resize", memory=256, namespace="guest")
    argv = serve_argv(tmp_path, "--autoscaler", "static", "--autoscaler-target", "2", url=fake.url)
    monkeypatch.setenv("OPENWHISK_AUTH", "wrong:credentials")
    refused(argv, tmp_path, r"refused with 401.*permanent", capsys)
    loop = [a for a in argv if a != "--once"] + ["--iterations", "5", "--interval", "0.01"]
    refused(loop, tmp_path, r"refused with 401.*the loop stops", capsys)
    monkeypatch.setenv("OPENWHISK_AUTH", OPENWHISK_AUTH)
    (tmp_path / "observations.json").write_text(json.dumps({"functions": [{"name": "unknown", "request_rate": 1}]}))
    refused(loop, tmp_path, r"function unknown: read: .*refused with 404.*the loop stops", capsys)


def test_a_platform_that_does_not_answer_keeps_the_loop_alive_but_fails_once(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OPENWHISK_AUTH", OPENWHISK_AUTH)
    argv = serve_argv(tmp_path, "--autoscaler", "hpa", "--timeout", "0.5")          # port 9: nobody listens
    refused(argv, tmp_path, r"--once: the round failed for 1 of 1 .*gave up after 1 attempts", capsys)
    loop = [a for a in argv if a != "--once"] + ["--iterations", "2", "--interval", "0.01"]
    assert main(loop) == 0                                        # transient: logged, the loop went on
    records = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")]
    assert [r["iteration"] for r in records] == [1, 2] and all(r["outcome"] == "error" for r in records)


def test_control_serve_once_succeeds_against_a_platform_that_answers(fake, tmp_path, capsys, monkeypatch):
    fake.add_action("resize", memory=256, namespace="guest")
    monkeypatch.setenv("OPENWHISK_AUTH", OPENWHISK_AUTH)
    assert main(serve_argv(tmp_path, "--autoscaler", "static", "--autoscaler-target", "2", url=fake.url)) == 0
    assert fake.actions[("guest", "resize")]["limits"]["memory"] == 1024


SERVERLESS_RUN_CASES = [
    ("eval", ["--tag", "../escape"], r"--tag must be letters, digits"),
    ("eval", ["--set", "evaluation.num_functions=1000000000"], r"needs at least .* GiB of memory"),
    ("eval", ["--set", "evaluation.workload=/nonexistent/trace"], r"workload must be 'synthetic' or an existing folder"),
    ("eval", ["--set", "evaluation.bogus=1"], r"evaluation.bogus: unknown key; allowed: num_functions"),
    ("eval", ["--set", "evaluation.seeds=0"], r"evaluation.seeds: .*greater than 0"),
    ("nplayer", ["--set", "nplayer.sizes=[1000000000]", "--set", "nplayer.method=sampled"],
     r"needs at least .* sampled N-player worlds"),
    ("nplayer", ["--set", "nplayer.sizes=[2]", "--set", "nplayer.episodes=true"],
     r"nplayer.episodes: .*valid integer, got True \(bool\)"),
]


@pytest.mark.parametrize("command, extra, expect", SERVERLESS_RUN_CASES,
                         ids=[f"{c[0]}-{c[1][1][:30]}" for c in SERVERLESS_RUN_CASES])
def test_bad_settings_of_eval_and_nplayer_are_refused(exported_serverless_run, tmp_path, capsys, command, extra,
                                                      expect):
    run = Path(shutil.copytree(exported_serverless_run[0], tmp_path / "run"))
    refused([command, str(run), *extra, "--no-progress"], tmp_path, expect, capsys)

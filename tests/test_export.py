"""Exported policies: the numpy-only loader returns the training code's probabilities, and
rejects what it cannot trust."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mfg_policy
from experiments.runner import RunFolder, restore_policy

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def exported(exported_serverless_run):
    """A short serverless run (NAC) and its export (conftest.py)."""
    return exported_serverless_run


def test_manifest_describes_the_policy(exported):
    _, folder = exported
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["format"] == "mfg-nac-policy" and manifest["format_version"] == 1
    assert manifest["game"]["name"] == "serverless" and manifest["training"]["iteration"] == 10
    assert manifest["actions"][1] == "+1 container" and manifest["observation"]["kind"] == "serverless"
    assert manifest["observation"]["cpu_step_cores"] == 0.125
    assert manifest["observation"]["moves"] == [[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1]]
    assert {"jax", "numpy", "mfg-nac"} <= set(manifest["library"])
    assert "exploitability" in manifest["training"]["final_diagnostics"]


def test_numpy_only_loader_matches_the_training_policy_in_a_process_without_jax(exported):
    run_dir, folder = exported
    _, game, state, _ = restore_policy(RunFolder(run_dir))
    states = np.asarray(game.params["states"])
    levels = np.asarray(game.params["levels"])
    observations = np.column_stack([levels[states[:, 0].astype(int)], states[:, 1], states[:, 2], states[:, 3]])
    np.save(folder.parent / "observations.npy", observations)
    script = f"""
import sys
sys.modules["jax"] = None          # importing jax now fails
sys.modules["flax"] = None
import numpy as np
import mfg_policy
policy = mfg_policy.load_policy({str(folder)!r})
np.save({str(folder.parent / 'probabilities.npy')!r}, policy.probabilities(np.load({str(folder.parent / 'observations.npy')!r})))
assert "jax" not in [m for m in sys.modules if sys.modules[m] is not None]
"""
    subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT)
    probabilities = np.load(folder.parent / "probabilities.npy")
    np.testing.assert_allclose(probabilities, np.asarray(state.policy), atol=1e-6)


def test_loading_rejects_bad_folders(exported, tmp_path):
    import shutil

    _, folder = exported

    def copy(name):
        target = tmp_path / name
        shutil.copytree(folder, target)
        return target

    newer = copy("newer")
    manifest = json.loads((newer / "manifest.json").read_text())
    manifest["format_version"] = 99
    (newer / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(mfg_policy.PolicyFormatError, match="format version 99 is not supported"):
        mfg_policy.load_policy(newer)

    tampered = copy("tampered")
    data = bytearray((tampered / "weights.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (tampered / "weights.safetensors").write_bytes(bytes(data))
    with pytest.raises(mfg_policy.PolicyFormatError, match="SHA-256 does not match"):
        mfg_policy.load_policy(tampered)

    missing = copy("missing")
    manifest = json.loads((missing / "manifest.json").read_text())
    del manifest["actions"]
    (missing / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(mfg_policy.PolicyFormatError, match=r"missing field\(s\) \['actions'\]"):
        mfg_policy.load_policy(missing)

    no_cpu_step = copy("no_cpu_step")
    manifest = json.loads((no_cpu_step / "manifest.json").read_text())
    del manifest["observation"]["cpu_step_cores"]
    (no_cpu_step / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(mfg_policy.PolicyFormatError, match=r"serverless observation spec lacks \['cpu_step_cores'\]"):
        mfg_policy.load_policy(no_cpu_step)

    policy = mfg_policy.load_policy(folder)
    with pytest.raises(mfg_policy.PolicyFormatError, match="4 values .* got shape \\(3,\\)"):
        policy.probabilities(np.array([1.0, 2.0, 1.0]))
    with pytest.raises(mfg_policy.PolicyFormatError, match="no manifest.json"):
        mfg_policy.load_policy(tmp_path)


def test_safetensors_round_trip(tmp_path):
    tensors = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([1, -2], np.int64)}
    mfg_policy.write_safetensors(tmp_path / "w.safetensors", tensors)
    back = mfg_policy.read_safetensors(tmp_path / "w.safetensors")
    for name in tensors:
        np.testing.assert_array_equal(back[name], tensors[name])
        assert back[name].dtype == tensors[name].dtype

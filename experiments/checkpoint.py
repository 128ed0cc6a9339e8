"""Checkpoints of a solver state: orbax-checkpoint behind one small interface.

    save(directory, iteration, state, metadata)  -> path of step_<iteration>/
    restore_latest(directory, template)          -> (iteration, state, metadata) or None

Format (``FORMAT``, version ``VERSION``): ``step_<iteration:08d>/`` holds the orbax
checkpoint of the state's leaves (PRNG keys stored as their raw key data) and
``manifest.json``: format, version, iteration, library versions, the caller's metadata,
and the SHA-256 of every file orbax wrote.

Atomicity: a checkpoint is written under a temporary name in the same folder and renamed
into place only once complete (a rename is atomic), so a crash leaves either the old set
of checkpoints or the new one, plus at most a temporary folder that is ignored and
removed later.  Integrity: ``restore_latest`` checks the manifest and every checksum and
falls back, with a warning, to the previous checkpoint when the newest is truncated or
tampered with.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import jax
import numpy as np

__all__ = ["FORMAT", "VERSION", "save", "restore_latest", "list_checkpoints", "CheckpointWarning"]

FORMAT = "mfg-nac-solver-state"
VERSION = 1
MANIFEST = "manifest.json"


class CheckpointWarning(UserWarning):
    """A checkpoint was unusable and an older one was used instead."""


def _is_key(leaf) -> bool:
    return isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def _to_host(state) -> dict[str, np.ndarray]:
    """Leaves as host arrays keyed by position; empty arrays are left out (orbax cannot
    store them; they are rebuilt from the template's shape)."""
    leaves = jax.tree_util.tree_leaves(state)
    arrays = {f"leaf_{i:05d}": np.asarray(jax.random.key_data(x) if _is_key(x) else x) for i, x in enumerate(leaves)}
    return {k: v for k, v in arrays.items() if v.size}


def _from_host(arrays: dict[str, np.ndarray], template):
    leaves, treedef = jax.tree_util.tree_flatten(template)
    expected = _to_host(template)
    if sorted(arrays) != sorted(expected):
        raise ValueError(f"checkpoint has {len(arrays)} arrays, the solver state has {len(expected)}")
    restored = []
    for i, like in enumerate(leaves):
        name = f"leaf_{i:05d}"
        if name not in expected:  # an empty array
            restored.append(like)
            continue
        value = arrays[name]
        if _is_key(like):
            restored.append(jax.random.wrap_key_data(value, impl=jax.random.key_impl(like)))
            continue
        like = np.asarray(like)
        if value.shape != like.shape or value.dtype != like.dtype:
            raise ValueError(f"leaf {i}: checkpoint has {value.dtype}{list(value.shape)}, "
                             f"the solver state {like.dtype}{list(like.shape)}")
        restored.append(jax.numpy.asarray(value))
    return jax.tree_util.tree_unflatten(treedef, restored)


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST)


def _versions() -> dict[str, str]:
    import flax
    import orbax.checkpoint

    import mfg

    return {"mfg-nac": mfg.__version__, "jax": jax.__version__, "numpy": np.__version__,
            "flax": flax.__version__, "orbax-checkpoint": orbax.checkpoint.__version__}


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def list_checkpoints(directory: str | Path) -> list[tuple[int, Path]]:
    """(iteration, path) of the complete-looking checkpoints, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        if path.is_dir() and path.name.startswith("step_") and path.name[5:].isdigit():
            found.append((int(path.name[5:]), path))
    return sorted(found)


def save(directory: str | Path, iteration: int, state, metadata: dict[str, Any] | None = None,
         keep: int | None = None) -> Path:
    """Write ``state`` as checkpoint ``step_<iteration>`` atomically; keep the newest ``keep``."""
    import orbax.checkpoint as ocp

    from solvers.sharding import is_main_process, to_host

    directory = Path(directory).absolute()
    final = directory / f"step_{iteration:08d}"
    host = _to_host(to_host(state))      # gathered from every device and host (all processes call save)
    if not is_main_process():            # process 0 writes; the others only took part in the gather
        return final
    directory.mkdir(parents=True, exist_ok=True)
    staging = directory / f".tmp-step_{iteration:08d}-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(staging / "state", host)
    checkpointer.wait_until_finished()
    checkpointer.close()
    manifest = {
        "format": FORMAT, "version": VERSION, "iteration": int(iteration), "versions": _versions(),
        "metadata": metadata or {},
        "sha256": {str(p.relative_to(staging)): _digest(p) for p in _files(staging)},
    }
    with open(staging / MANIFEST, "w") as f:
        json.dump(manifest, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    if final.exists():  # re-saving the same iteration (e.g. after a resume): replace it
        shutil.rmtree(final)
    os.rename(staging, final)
    _fsync_dir(directory)
    if keep is not None:
        for _, old in list_checkpoints(directory)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    for leftover in directory.glob(".tmp-step_*"):
        if leftover != staging:
            shutil.rmtree(leftover, ignore_errors=True)
    return final


def _verify(path: Path) -> dict:
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise ValueError("no manifest.json (incomplete write)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"manifest.json is not valid JSON ({err})") from None
    if manifest.get("format") != FORMAT:
        raise ValueError(f"format is {manifest.get('format')!r}, expected {FORMAT!r}")
    if not isinstance(manifest.get("version"), int) or manifest["version"] > VERSION:
        raise ValueError(f"format version {manifest.get('version')!r} is newer than this library's ({VERSION})")
    recorded = manifest.get("sha256", {})
    present = {str(p.relative_to(path)) for p in _files(path)}
    missing = sorted(set(recorded) - present)
    if missing:
        raise ValueError(f"files missing: {missing[:3]}")
    for name, digest in recorded.items():
        if _digest(path / name) != digest:
            raise ValueError(f"checksum mismatch in {name}")
    return manifest


def restore_latest(directory: str | Path, template) -> tuple[int, Any, dict] | None:
    """The newest checkpoint that verifies and restores, as (iteration, state, metadata).

    Checkpoints that fail (missing manifest, bad checksum, unreadable arrays, a state of
    another shape) are skipped with a ``CheckpointWarning`` naming the reason.  None when
    there is no usable checkpoint.
    """
    import orbax.checkpoint as ocp

    directory = Path(directory).absolute()
    for iteration, path in reversed(list_checkpoints(directory)):
        try:
            manifest = _verify(path)
            checkpointer = ocp.StandardCheckpointer()
            like = _to_host(jax.device_get(template))
            arrays = checkpointer.restore(path / "state", like)
            checkpointer.close()
            state = _from_host({k: np.asarray(v) for k, v in arrays.items()}, template)
        except Exception as err:  # noqa: BLE001 - any failure means: use the previous one
            warnings.warn(f"checkpoint {path} is unusable ({err}); falling back to the previous one",
                          CheckpointWarning, stacklevel=2)
            continue
        return iteration, state, manifest.get("metadata", {})
    return None

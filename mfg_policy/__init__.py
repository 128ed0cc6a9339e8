"""Run an exported mfg-nac policy with numpy only (no JAX, no flax).

A policy folder (written by ``mfg export RUN_DIR``) holds:

  manifest.json         format name and version, library versions, the game and solver
                        specification, the observation spec, action meanings, the
                        approximator, the training step and final diagnostics, and the
                        SHA-256 of the weights file
  weights.safetensors   the arrays (safetensors layout: 8-byte little-endian header
                        length, a JSON header, raw little-endian data)

``load_policy(folder)`` checks all of it and returns an ``ExportedPolicy`` whose
``probabilities(observation)`` equals the training code's pi(a | s).  The module imports
numpy and the standard library only, so it can be copied into a serverless function.

Observation kinds (``manifest["observation"]["kind"]``):

  state_index   observation: int array [...] of state indices
  serverless    observation: float array [..., 4] = (arrival rate req/s, containers,
                CPU steps, last move 0 none / 1 out / 2 in), discretized exactly as the
                tabular serverless game does (log-rate bins, then the state index).
                The spec also holds ``cpu_step_cores`` (cores per CPU step) and ``moves``
                ([A, 2] change of containers and CPU steps per action), so that
                ``next_allocation`` turns actions into targets.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np

__all__ = ["FORMAT", "FORMAT_VERSION", "PolicyFormatError", "ExportedPolicy", "load_policy", "read_safetensors",
           "write_safetensors", "sha256_of"]

FORMAT = "mfg-nac-policy"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
REQUIRED = ("format", "format_version", "library", "game", "observation", "actions", "approximator", "training",
            "weights")
SERVERLESS_FIELDS = ("load_bin_edges", "max_containers", "max_cpu_steps", "cpu_step_cores", "moves")
_DTYPES = {"F64": np.float64, "F32": np.float32, "I64": np.int64, "I32": np.int32}


class PolicyFormatError(ValueError):
    """An exported policy folder cannot be used; the message says what is wrong."""


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_safetensors(path: str | Path, tensors: dict[str, np.ndarray]) -> None:
    """Write ``tensors`` in the safetensors layout (C order, little endian)."""
    names = {v: k for k, v in _DTYPES.items()}
    header, offset, blobs = {}, 0, []
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        if array.dtype.type not in names:
            raise TypeError(f"tensor {name!r}: dtype {array.dtype} is not one of {sorted(names)}")
        data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": names[array.dtype.type], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for blob in blobs:
            f.write(blob)


def read_safetensors(path: str | Path) -> dict[str, np.ndarray]:
    """Read a safetensors file into numpy arrays (clear errors on a truncated or malformed file)."""
    raw = Path(path).read_bytes()
    if len(raw) < 8:
        raise PolicyFormatError(f"{path}: truncated (no header)")
    (length,) = struct.unpack("<Q", raw[:8])
    if 8 + length > len(raw):
        raise PolicyFormatError(f"{path}: truncated header")
    try:
        header = json.loads(raw[8:8 + length])
    except ValueError as err:
        raise PolicyFormatError(f"{path}: malformed header ({err})") from None
    body = raw[8 + length:]
    tensors = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        start, end = spec["data_offsets"]
        if spec["dtype"] not in _DTYPES or end > len(body):
            raise PolicyFormatError(f"{path}: tensor {name!r} has dtype {spec['dtype']} or lies past the end")
        dtype = np.dtype(_DTYPES[spec["dtype"]]).newbyteorder("<")
        tensors[name] = np.frombuffer(body[start:end], dtype=dtype).reshape(spec["shape"]).astype(dtype.newbyteorder("="))
    return tensors


class ExportedPolicy:
    """A loaded policy: ``probabilities(observation) -> [..., A]`` and ``act``."""

    def __init__(self, manifest: dict, tensors: dict[str, np.ndarray]):
        self.manifest = manifest
        self.tensors = tensors
        self.observation = manifest["observation"]
        self.actions = list(manifest["actions"])
        table = tensors.get("policy")
        if table is None or table.ndim != 2 or table.shape[1] != len(self.actions):
            raise PolicyFormatError(f"weights hold no [S, A] 'policy' table matching {len(self.actions)} actions")
        self.table = table

    @property
    def observation_size(self) -> int:
        return 1 if self.observation["kind"] == "state_index" else 4

    def state_index(self, observation) -> np.ndarray:
        """The tabular state of each observation (see the module docstring for the layout)."""
        obs = np.asarray(observation)
        kind = self.observation["kind"]
        if kind == "state_index":
            states = obs.astype(np.int64)
        elif kind == "serverless":
            if obs.ndim == 0 or obs.shape[-1] != 4:
                raise PolicyFormatError(f"a serverless observation has 4 values (rate, containers, cpu_steps, "
                                        f"last_move) on its last axis, got shape {obs.shape}")
            edges = np.asarray(self.observation["load_bin_edges"], np.float64)
            n_max, c_max = self.observation["max_containers"], self.observation["max_cpu_steps"]
            rate = obs[..., 0].astype(np.float64)
            containers = np.clip(np.rint(obs[..., 1]).astype(np.int64), 1, n_max)
            cpu = np.clip(np.rint(obs[..., 2]).astype(np.int64), 1, c_max)
            move = np.clip(np.rint(obs[..., 3]).astype(np.int64), 0, 2)
            load = np.searchsorted(edges, np.log(np.maximum(rate, 1e-300)))
            states = ((load * n_max + (containers - 1)) * c_max + (cpu - 1)) * 3 + move
        else:
            raise PolicyFormatError(f"unknown observation kind {kind!r}")
        if np.any(states < 0) or np.any(states >= self.table.shape[0]):
            raise PolicyFormatError(f"state index out of range 0..{self.table.shape[0] - 1}")
        return states

    def probabilities(self, observation) -> np.ndarray:
        """pi(. | s) [..., A] for each observation."""
        return self.table[self.state_index(observation)]

    def next_allocation(self, observation, action) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(containers, cpu_steps, illegal) after ``action`` from a serverless observation.

        As in the game: an action that would leave 1..max_containers or 1..max_cpu_steps
        changes nothing and is flagged ``illegal``.
        """
        if self.observation["kind"] != "serverless":
            raise PolicyFormatError("next_allocation needs a serverless policy")
        obs = np.asarray(observation)
        moves = np.asarray(self.observation["moves"], np.int64)
        n_max, c_max = self.observation["max_containers"], self.observation["max_cpu_steps"]
        containers = np.clip(np.rint(obs[..., 1]).astype(np.int64), 1, n_max)
        cpu = np.clip(np.rint(obs[..., 2]).astype(np.int64), 1, c_max)
        n_next, c_next = containers + moves[action, 0], cpu + moves[action, 1]
        illegal = (n_next < 1) | (n_next > n_max) | (c_next < 1) | (c_next > c_max)
        return np.where(illegal, containers, n_next), np.where(illegal, cpu, c_next), illegal

    def act(self, observation, rng: np.random.Generator | None = None, greedy: bool = False) -> np.ndarray:
        """An action per observation: sampled from pi (``rng``) or its argmax (``greedy``)."""
        p = self.probabilities(observation)
        if greedy:
            return p.argmax(-1)
        rng = rng or np.random.default_rng()
        u = rng.random(p.shape[:-1] + (1,))
        return np.minimum((np.cumsum(p, -1) < u).sum(-1), p.shape[-1] - 1)


def load_policy(folder: str | Path) -> ExportedPolicy:
    """Load and verify an exported policy folder.

    Raises:
      PolicyFormatError: no manifest, an unknown format or a newer format version,
        missing fields, a weights checksum mismatch, or weights that do not match the
        manifest.
    """
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise PolicyFormatError(f"{folder}: no {MANIFEST} (not an exported policy folder)")
    try:
        manifest = json.loads(path.read_text())
    except ValueError as err:
        raise PolicyFormatError(f"{path}: not valid JSON ({err})") from None
    if manifest.get("format") != FORMAT:
        raise PolicyFormatError(f"{path}: format {manifest.get('format')!r} is not {FORMAT!r}")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise PolicyFormatError(f"{path}: format version {version!r} is not supported (this loader reads "
                                f"1..{FORMAT_VERSION}; a newer mfg-nac wrote it)")
    missing = [k for k in REQUIRED if k not in manifest]
    if missing:
        raise PolicyFormatError(f"{path}: missing field(s) {missing}")
    weights = folder / manifest["weights"]["file"]
    if not weights.is_file():
        raise PolicyFormatError(f"{folder}: weights file {manifest['weights']['file']!r} is missing")
    if sha256_of(weights) != manifest["weights"]["sha256"]:
        raise PolicyFormatError(f"{weights}: SHA-256 does not match the manifest (corrupted or altered)")
    observation = manifest["observation"]
    if observation.get("kind") == "serverless":
        absent = [k for k in SERVERLESS_FIELDS if k not in observation]
        if absent:
            raise PolicyFormatError(f"{path}: the serverless observation spec lacks {absent}")
        if np.asarray(observation["moves"]).shape != (len(manifest["actions"]), 2):
            raise PolicyFormatError(f"{path}: observation.moves must be [{len(manifest['actions'])}, 2] "
                                    f"(one (containers, cpu steps) change per action)")
    policy = ExportedPolicy(manifest, read_safetensors(weights))
    expected = manifest["approximator"].get("shape")
    if expected is not None and list(policy.table.shape) != list(expected):
        raise PolicyFormatError(f"{weights}: policy table {list(policy.table.shape)} != manifest {expected}")
    return policy

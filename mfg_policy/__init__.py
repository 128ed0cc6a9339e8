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
           "write_safetensors", "sha256_of", "check_probabilities", "TOLERANCE"]

FORMAT = "mfg-nac-policy"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
REQUIRED = ("format", "format_version", "library", "game", "observation", "actions", "approximator", "training",
            "weights")
SERVERLESS_FIELDS = ("load_bin_edges", "max_containers", "max_cpu_steps", "cpu_step_cores", "moves")
_DTYPES = {"F64": np.float64, "F32": np.float32, "I64": np.int64, "I32": np.int32}
# How far a row of the policy table may sum from 1 (float32 tables round to ~1e-7).
TOLERANCE = 1e-5


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
    if not isinstance(header, dict):
        raise PolicyFormatError(f"{path}: the header must be a JSON object, got {type(header).__name__}")
    tensors = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        if not (isinstance(spec, dict) and isinstance(spec.get("shape"), list)
                and all(isinstance(n, int) and n >= 0 for n in spec["shape"])
                and isinstance(spec.get("data_offsets"), list) and len(spec["data_offsets"]) == 2
                and all(isinstance(n, int) for n in spec["data_offsets"])):
            raise PolicyFormatError(f"{path}: tensor {name!r} needs dtype, shape (non-negative ints) and "
                                    f"data_offsets [start, end]")
        start, end = spec["data_offsets"]
        if spec.get("dtype") not in _DTYPES or not 0 <= start <= end <= len(body):
            raise PolicyFormatError(f"{path}: tensor {name!r} has dtype {spec.get('dtype')!r} (allowed: "
                                    f"{sorted(_DTYPES)}) or lies outside the file")
        dtype = np.dtype(_DTYPES[spec["dtype"]]).newbyteorder("<")
        if int(np.prod(spec["shape"])) * dtype.itemsize != end - start:
            raise PolicyFormatError(f"{path}: tensor {name!r} of shape {spec['shape']} needs "
                                    f"{int(np.prod(spec['shape'])) * dtype.itemsize} bytes, its offsets hold "
                                    f"{end - start}")
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
        if table is None or table.ndim != 2 or table.shape[1] != len(self.actions) or table.shape[0] < 1:
            raise PolicyFormatError(f"weights hold no [S, A] 'policy' table matching {len(self.actions)} actions")
        check_probabilities(table)
        if self.observation["kind"] == "state_index" and self.observation.get("num_states", table.shape[0]) \
                != table.shape[0]:
            raise PolicyFormatError(f"the policy table has {table.shape[0]} rows, observation.num_states is "
                                    f"{self.observation['num_states']}")
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


def check_probabilities(table: np.ndarray, tolerance: float = TOLERANCE) -> None:
    """Raise ``PolicyFormatError`` unless every row of ``table`` [S, A] is a distribution:
    finite, non-negative, summing to 1 within ``tolerance``."""
    if not np.issubdtype(table.dtype, np.floating):
        raise PolicyFormatError(f"the policy table must hold floats, got {table.dtype}")
    bad = np.flatnonzero(~np.isfinite(table).all(1))
    if bad.size:
        raise PolicyFormatError(f"the policy table has non-finite probabilities (NaN or inf) in row {bad[0]}")
    negative = np.argwhere(table < 0)
    if negative.size:
        s, a = negative[0]
        raise PolicyFormatError(f"the policy table has a negative probability {table[s, a]:g} at state {s}, "
                                f"action {a}")
    error = np.abs(table.sum(1) - 1.0)
    if error.max() > tolerance:
        s = int(error.argmax())
        raise PolicyFormatError(f"row {s} of the policy table sums to {table[s].sum():.9g}, not 1 (tolerance "
                                f"{tolerance:g})")


def _check_manifest(manifest, path: Path) -> None:
    """The manifest's structure: the fields and their types (``PolicyFormatError``)."""
    if not isinstance(manifest, dict):
        raise PolicyFormatError(f"{path}: must be a JSON object, got a JSON {type(manifest).__name__}")
    if manifest.get("format") != FORMAT:
        raise PolicyFormatError(f"{path}: format {manifest.get('format')!r} is not {FORMAT!r}")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version > FORMAT_VERSION or version < 1:
        raise PolicyFormatError(f"{path}: format version {version!r} is not supported (this loader reads "
                                f"1..{FORMAT_VERSION}; a newer mfg-nac wrote it)")
    missing = [k for k in REQUIRED if k not in manifest]
    if missing:
        raise PolicyFormatError(f"{path}: missing field(s) {missing}")
    for name in ("library", "game", "observation", "approximator", "training", "weights"):
        if not isinstance(manifest[name], dict):
            raise PolicyFormatError(f"{path}: field {name!r} must be a JSON object, got "
                                    f"{type(manifest[name]).__name__}")
    actions = manifest["actions"]
    if not isinstance(actions, list) or not actions or not all(isinstance(a, str) for a in actions):
        raise PolicyFormatError(f"{path}: 'actions' must be a non-empty list of action names")
    weights = manifest["weights"]
    file, digest = weights.get("file"), weights.get("sha256")
    if not isinstance(file, str) or not file or "/" in file or "\\" in file or file in (".", ".."):
        raise PolicyFormatError(f"{path}: weights.file must name a file inside the policy folder, got {file!r}")
    if not isinstance(digest, str) or len(digest) != 64:
        raise PolicyFormatError(f"{path}: weights.sha256 must be a 64-digit hex digest, got {digest!r}")
    kind = manifest["observation"].get("kind")
    if kind not in ("state_index", "serverless"):
        raise PolicyFormatError(f"{path}: observation.kind {kind!r} is not 'state_index' or 'serverless'")
    if kind == "serverless":
        observation = manifest["observation"]
        absent = [k for k in SERVERLESS_FIELDS if k not in observation]
        if absent:
            raise PolicyFormatError(f"{path}: the serverless observation spec lacks {absent}")
        for name in ("max_containers", "max_cpu_steps"):
            value = observation[name]
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise PolicyFormatError(f"{path}: observation.{name} must be an integer >= 1, got {value!r}")
        step = observation["cpu_step_cores"]
        if not isinstance(step, (int, float)) or isinstance(step, bool) or not np.isfinite(step) or step <= 0:
            raise PolicyFormatError(f"{path}: observation.cpu_step_cores must be a number > 0, got {step!r}")
        edges = observation["load_bin_edges"]
        if not isinstance(edges, list) or not all(isinstance(e, (int, float)) and not isinstance(e, bool)
                                                 for e in edges) or not np.all(np.isfinite(edges)) \
                or np.any(np.diff(edges) < 0):
            raise PolicyFormatError(f"{path}: observation.load_bin_edges must be a non-decreasing list of "
                                    f"finite numbers")
        try:
            moves = np.asarray(observation["moves"], dtype=np.float64)
        except (TypeError, ValueError):
            moves = np.zeros(0)
        if moves.shape != (len(actions), 2) or not np.all(moves == np.rint(moves)):
            raise PolicyFormatError(f"{path}: observation.moves must be [{len(actions)}, 2] integers "
                                    f"(one (containers, cpu steps) change per action)")


def load_policy(folder: str | Path) -> ExportedPolicy:
    """Load and verify an exported policy folder.

    Raises:
      PolicyFormatError: no manifest, a manifest that is not a JSON object, an unknown
        format or a newer format version, missing fields or fields of the wrong type, a
        weights file outside the folder, a weights checksum mismatch, weights that do
        not match the manifest, or a policy table whose rows are not distributions
        (non-finite, negative, or not summing to 1 within ``TOLERANCE``).
    """
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise PolicyFormatError(f"{folder}: no {MANIFEST} (not an exported policy folder)")
    try:
        manifest = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise PolicyFormatError(f"{path}: not valid JSON ({err})") from None
    _check_manifest(manifest, path)
    weights = folder / manifest["weights"]["file"]
    if not weights.is_file():
        raise PolicyFormatError(f"{folder}: weights file {manifest['weights']['file']!r} is missing")
    if sha256_of(weights) != manifest["weights"]["sha256"]:
        raise PolicyFormatError(f"{weights}: SHA-256 does not match the manifest (corrupted or altered)")
    policy = ExportedPolicy(manifest, read_safetensors(weights))
    expected = manifest["approximator"].get("shape")
    if expected is not None and list(policy.table.shape) != list(expected):
        raise PolicyFormatError(f"{weights}: policy table {list(policy.table.shape)} != manifest {expected}")
    return policy

"""Running a solver over many devices (and hosts) with JAX's own sharding.

A ``Mesh`` has two named axes:

  "seeds"  the batch of seeds (or sweep points) when the state carries one;
  "data"   the big axes of one run: the state axis S of the tabular arrays (policy,
           mean field, NAC's actor and critic weights) and the agent axis N of the
           sampled critic.

``state_shardings`` gives each leaf of a solver state a ``NamedSharding`` by one rule:
the leading seed axis (when batched) goes on "seeds"; the first remaining axis whose
length is S, S x A or N -- and divides evenly over the "data" axis -- goes on "data";
everything else (scalars, keys, small weights) is replicated.  The driver places the
initial state with these shardings, jits each chunk with them as ``out_shardings`` (so
they hold across steps and chunks), and returns the diagnostics as replicated scalars.
The compiler (GSPMD) inserts the collectives; game parameters are replicated.

Random numbers do not depend on the device count: JAX's threefry keys are partitionable
(``jax_threefry_partitionable``, on by default), and the sampled critic's RBG keys are
drawn from them, so a sharded run draws the same numbers as a single-device one
(tests/test_sharding.py checks 1e-6 agreement).

Multi-host: ``initialize_distributed`` calls ``jax.distributed.initialize`` (coordinator,
process count and id from the arguments or the environment) before anything else touches
JAX; ``jax.devices()`` then lists every host's devices and the same mesh spans them.
``to_host`` gathers a (possibly multi-host) sharded pytree into numpy on every process,
which is what checkpoints store -- so a checkpoint restores on any device count.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = ["make_mesh", "state_shardings", "shard_state", "replicate", "replicated", "to_host", "initialize_distributed",
           "is_main_process", "describe"]

SEEDS, DATA = "seeds", "data"


def make_mesh(data: int | None = None, seeds: int = 1, devices: list | None = None) -> Mesh:
    """A ("seeds", "data") mesh over ``devices`` (default: all, every host's).

    ``data`` defaults to the device count / ``seeds``; seeds x data must equal the device
    count used.
    """
    devices = list(jax.devices() if devices is None else devices)
    if seeds < 1:
        raise ValueError(f"mesh: seeds must be >= 1, got {seeds}")
    data = len(devices) // seeds if data is None else data
    if data < 1 or seeds * data > len(devices):
        raise ValueError(f"mesh: seeds x data = {seeds} x {data} needs {seeds * data} devices, "
                         f"{len(devices)} available ({jax.process_count()} process(es))")
    grid = np.asarray(devices[: seeds * data], dtype=object).reshape(seeds, data)
    return Mesh(grid, (SEEDS, DATA))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def _leaf_spec(shape: tuple[int, ...], batched: bool, sizes: set[int], mesh: Mesh) -> PartitionSpec:
    spec: list[Any] = [None] * len(shape)
    start = 0
    if batched and shape:
        if shape[0] % mesh.shape[SEEDS] == 0 and mesh.shape[SEEDS] > 1:
            spec[0] = SEEDS
        start = 1
    for axis in range(start, len(shape)):
        if shape[axis] in sizes and shape[axis] % mesh.shape[DATA] == 0 and mesh.shape[DATA] > 1:
            spec[axis] = DATA
            break
    while spec and spec[-1] is None:
        spec.pop()
    return PartitionSpec(*spec)


def state_shardings(state: Any, mesh: Mesh, *, num_states: int, num_actions: int, num_agents: int = 0,
                    batched: bool = False, shard: tuple[str, ...] = ("states", "agents")) -> Any:
    """A pytree of ``NamedSharding`` matching ``state`` (the rule of the module docstring).

    ``shard`` names the axes that go on "data": "states" (S and S x A) and/or "agents"
    (N).  Sharding the state axis pays a collective per sweep of the exact oracles'
    iterative solves, so it helps when S is large; with many agents and a modest S,
    shard only the agents.
    """
    unknown = sorted(set(shard) - {"states", "agents"})
    if unknown:
        raise ValueError(f"shard: unknown axes {unknown}; allowed: 'states', 'agents'")
    sizes = ({num_states, num_states * num_actions} if "states" in shard else set()) | (
        {num_agents} if "agents" in shard and num_agents > 1 else set())

    def sharding(leaf):
        shape = tuple(getattr(leaf, "shape", ()))
        if jax.dtypes.issubdtype(getattr(leaf, "dtype", np.float32), jax.dtypes.prng_key):
            return NamedSharding(mesh, _leaf_spec(shape, batched, set(), mesh))  # keys: only the seed axis
        return NamedSharding(mesh, _leaf_spec(shape, batched, sizes, mesh))

    return jax.tree_util.tree_map(sharding, state)


def _place(leaf, sharding: NamedSharding):
    if sharding.is_fully_addressable:
        return jax.device_put(leaf, sharding)
    # Several processes: each builds its own shards from the (identical) host copy.
    if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        data = _place(np.asarray(jax.random.key_data(leaf)), sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(leaf))
    host = np.asarray(leaf)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def shard_state(state: Any, shardings: Any) -> Any:
    """``state`` placed with ``shardings`` (host or device arrays; any previous layout; on
    several processes every process passes the same values)."""
    return jax.tree_util.tree_map(_place, state, shardings)


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Every array leaf of ``tree`` (e.g. a game) replicated over ``mesh``."""
    return jax.tree_util.tree_map(lambda x: _place(x, replicated(mesh)) if isinstance(x, (jax.Array, np.ndarray))
                                  else x, tree)


def to_host(tree: Any) -> Any:
    """Numpy copies of every leaf on every process, gathering across hosts when needed
    (every process must call it)."""
    from jax.experimental import multihost_utils

    def gather(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
                data = multihost_utils.process_allgather(jax.random.key_data(x), tiled=True)
                return jax.random.wrap_key_data(np.asarray(data), impl=jax.random.key_impl(x))
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return x
        return np.asarray(x)

    return jax.tree_util.tree_map(gather, tree)


def initialize_distributed(coordinator_address: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None) -> bool:
    """``jax.distributed.initialize`` from the arguments or the environment.

    The environment variables are MFG_COORDINATOR_ADDRESS (host:port of process 0),
    MFG_NUM_PROCESSES and MFG_PROCESS_ID.  On CPU the cross-process collectives use gloo.
    Returns False (and does nothing) when no coordinator is given.
    """
    coordinator_address = coordinator_address or os.environ.get("MFG_COORDINATOR_ADDRESS")
    if not coordinator_address:
        return False
    num_processes = int(num_processes if num_processes is not None else os.environ["MFG_NUM_PROCESSES"])
    process_id = int(process_id if process_id is not None else os.environ["MFG_PROCESS_ID"])
    if not 0 <= process_id < num_processes:
        raise ValueError(f"process_id must lie in 0..{num_processes - 1}, got {process_id}")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                               process_id=process_id)
    return True


def is_main_process() -> bool:
    """True on process 0 (the one that logs, plots and writes files)."""
    return jax.process_index() == 0


def describe(tree: Any) -> Any:
    """Each leaf's PartitionSpec (for logs and tests)."""
    return jax.tree_util.tree_map(lambda x: getattr(getattr(x, "sharding", None), "spec", None), tree)

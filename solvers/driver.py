"""One driver for every solver: jitted chunks of steps, diagnostics on device.

The host loop runs ``chunk_size`` solver steps per call of a jitted ``lax.scan``; every
step's diagnostics are computed on device inside the scan and stacked.  The host
dispatches chunk c+1 before it reads chunk c's metrics (JAX dispatches asynchronously),
so there is no host synchronisation inside a step or between two chunks.  A final,
shorter chunk reuses the same compiled program with the surplus steps masked, so one
configuration compiles exactly once.

Diagnostics per iteration (algorithm.md section 5), after step k -> k+1:

  exploitability            regularized (at the solver's lambda) exploitability of pi_{k+1}
  exploitability_unreg      the same with lambda = 0
  policy_return             J_lambda(pi_{k+1}; L_{pi_{k+1}})
  mean_field_step           ||L_{k+1} - L_k||_1 (summed over epochs)
  policy_kl                 E_{s ~ mu_{k+1}} KL(pi_{k+1}(.|s) || pi_k(.|s)) (mean over epochs)
  entropy                   E_{s ~ mu_{k+1}} H(pi_{k+1}(.|s)) (mean over epochs)
  mean_field_residual       ||Gamma_2(pi_{k+1}, L_{k+1}) - L_{k+1}||_1 for the carried L
  all_finite                1.0 if every array of the new state is finite
  mean_field_iterations     iterations of the step's stationary mean-field solve, and
  mean_field_change         the L1 change of its last iteration, and
  mean_field_converged      1.0 if that change met its tolerance (exact stationary solvers)

plus whatever the solver's ``step_diagnostics`` adds (e.g. NAC's critic errors).
Exploitability is always measured against the mean field the policy induces; solvers
whose carried mean field is something else (NAC's smoothed L) declare
``mean_field_is_induced = False`` and the driver recomputes it.

Seeds (or any batch of initial states) run together under ``vmap``: pass a batch of
initial policies, or a batch of PRNG keys (sampling solvers).

Devices: with ``mesh`` (``solvers.sharding.make_mesh``) the state is placed by
``solvers.sharding.state_shardings`` (the state and agent axes on "data", seeds on
"seeds"), each chunk keeps those shardings as its ``out_shardings``, and the diagnostics
come back replicated.  With ``donate=True`` the state's buffers are reused by the next
chunk (half the peak memory on an accelerator); the driver then reads each chunk's
metrics before it dispatches the next.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from mfg.game import MeanFieldGame, state_marginal
from mfg.oracles import exploitability, mean_field_residual
from solvers.base import SolverState

__all__ = ["RunResult", "diagnostics", "init_state", "run", "TRACE_COUNTS", "fit_rate", "MeanFieldSolveWarning"]

# Number of times each jitted entry point was traced (a recompilation guard for tests).
TRACE_COUNTS: dict[str, int] = {"chunk": 0}


def _expected_over_states(mean_field: jax.Array, per_state: jax.Array) -> jax.Array:
    """E_{s ~ mu} f(s), averaged over epochs for finite-horizon arrays."""
    mu = state_marginal(mean_field)
    total = (mu * per_state).sum(-1)
    return total.mean() if total.ndim else total


def diagnostics(game: MeanFieldGame, solver, old: SolverState, new: SolverState) -> dict:
    """Scalar diagnostics of one step (see the module docstring)."""
    induced = new.mean_field if getattr(solver, "mean_field_is_induced", True) else None
    expl = exploitability(game, new.policy, solver.temperature, joint=induced,
                          solve=getattr(solver, "mean_field_solve", None))
    tiny = jnp.finfo(new.policy.dtype).tiny
    log_new = jnp.log(jnp.maximum(new.policy, tiny))
    log_old = jnp.log(jnp.maximum(old.policy, tiny))
    kl = jnp.sum(jnp.where(new.policy > 0, new.policy * (log_new - log_old), 0.0), axis=-1)
    entropy = -jnp.sum(jax.scipy.special.xlogy(new.policy, new.policy), axis=-1)
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(new)
                                if jnp.issubdtype(x.dtype, jnp.floating)]))
    metrics = {
        "exploitability": expl.regularized,
        "exploitability_unreg": expl.unregularized,
        "policy_return": expl.policy_return,
        "mean_field_step": jnp.abs(new.mean_field - old.mean_field).sum(),
        "policy_kl": _expected_over_states(new.mean_field, kl),
        "entropy": _expected_over_states(new.mean_field, entropy),
        "mean_field_residual": mean_field_residual(game, new.policy, new.mean_field),
        "all_finite": finite.astype(new.policy.dtype),
    }
    if new.mean_field_stats is not None:
        metrics["mean_field_iterations"] = new.mean_field_stats.iterations.astype(new.policy.dtype)
        metrics["mean_field_change"] = new.mean_field_stats.change
        metrics["mean_field_converged"] = new.mean_field_stats.converged
    if hasattr(solver, "step_diagnostics"):
        metrics.update(solver.step_diagnostics(game, old, new))
    return metrics


class MeanFieldSolveWarning(RuntimeWarning):
    """A stationary mean-field solve stopped at its cap without meeting its tolerance."""


def _warn_unconverged(solver, converged, change, where: str) -> bool:
    """Warn when a mean-field solve hit its cap unconverged (``converged`` has a 0); True if so."""
    solve = getattr(solver, "mean_field_solve", None)
    if solve is None or solve.fixed_steps:
        return False
    converged = np.asarray(converged)
    if converged.size == 0 or converged.min() > 0:
        return False
    change = float(np.max(np.where(converged > 0, 0.0, np.asarray(change))))
    warnings.warn(
        f"{type(solver).__name__}: the stationary mean-field solve did not converge {where}: "
        f"{solve.max_iterations} iterations (its cap) left an L1 change of {change:.3g} above "
        f"its tolerance, so the mean field is not a fixed point of the policy. Damp it "
        f"(mean_field_solve=MeanFieldSolve(damping=0.5)), solve the frozen chain exactly "
        f"(method='linear', S <= 1024), or raise max_iterations; the diagnostics "
        f"mean_field_change and mean_field_residual show it per iteration.",
        MeanFieldSolveWarning, stacklevel=3)
    return True


def _chunk(solver, game, state, num_active, *, length: int, diagnose: bool, batched: bool,
           solver_axes=None):
    TRACE_COUNTS["chunk"] += 1

    def one(solver, state, num_active):
        def body(state, i):
            new = solver.step(game, state)
            metrics = diagnostics(game, solver, state, new) if diagnose else {}
            active = i < num_active
            new = jax.tree_util.tree_map(lambda a, b: jnp.where(active, a, b), new, state)
            return new, metrics

        return lax.scan(body, state, jnp.arange(length))

    if batched:
        return jax.vmap(one, in_axes=(solver_axes, 0, None))(solver, state, num_active)
    return one(solver, state, num_active)


_STATIC = ("length", "diagnose", "batched", "solver_axes")
_CHUNKS: dict = {}


def _chunk_jit(mesh=None, shardings=None, donate: bool = False):
    """The chunk, jitted once per (mesh, state layout, donation).  With a mesh its outputs
    keep ``shardings`` and its diagnostics are replicated."""
    from solvers.sharding import replicated

    leaves, treedef = jax.tree_util.tree_flatten(shardings)
    cache_key = (mesh, treedef, tuple(s.spec for s in leaves), donate)
    if cache_key not in _CHUNKS:
        layout = {} if mesh is None else {"out_shardings": (shardings, replicated(mesh))}
        _CHUNKS[cache_key] = jax.jit(_chunk, static_argnames=_STATIC, donate_argnames=("state",) if donate else (),
                                     **layout)
    return _CHUNKS[cache_key]


def _sweep_axes(solver, names) -> tuple[object, int]:
    """(vmap in_axes, grid length) for a solver whose fields ``names`` carry a leading
    grid axis.  The in_axes is the solver itself with None leaves and 0 on the swept
    fields: hashable, so it is a static argument of the jitted chunk."""
    static = getattr(type(solver), "_static_fields", ())
    data = [f.name for f in dataclasses.fields(solver) if f.name not in static]
    unknown = sorted(set(names) - set(data))
    if unknown:
        raise ValueError(f"cannot sweep {unknown}: {type(solver).__name__}'s traced hyper-parameters are {data}.")
    shapes = {name: jnp.shape(getattr(solver, name)) for name in names}
    lengths = {shape[0] if len(shape) == 1 else None for shape in shapes.values()}
    if len(lengths) != 1 or None in lengths:
        raise ValueError(f"swept fields must be 1-D arrays of one common length, got shapes {shapes}.")
    axes = jax.tree_util.tree_map(lambda _: None, solver)
    return dataclasses.replace(axes, **{name: 0 for name in names}), lengths.pop()


def init_state(solver, game: MeanFieldGame, *, policy=None, key=None, sweep: tuple[str, ...] = ()) -> SolverState:
    """The initial state ``run`` starts from, batched over seeds or the sweep grid when
    asked (see ``run`` for ``policy``, ``key`` and ``sweep``)."""
    key = jax.random.key(0) if key is None else key
    if sweep:
        solver_axes, grid = _sweep_axes(solver, tuple(sweep))
        if policy is not None and jnp.ndim(policy) != len(game.policy_shape):
            raise ValueError("with sweep, give one initial policy (shared by the grid), not a batch.")
        keys = jax.random.split(key, grid)
        return jax.vmap(lambda s, k: s.init(game, policy, k), in_axes=(solver_axes, 0))(solver, keys)
    batched_policy = policy is not None and jnp.ndim(policy) == len(game.policy_shape) + 1
    batched_key = jnp.ndim(key) == 1
    if not (batched_policy or batched_key):
        return solver.init(game, policy, key)
    if not batched_key:  # one seed stream per policy
        key = jax.random.split(key, jnp.shape(policy)[0])
    policy_arg = None if policy is None else jnp.asarray(policy)
    return jax.vmap(lambda p, k: solver.init(game, p, k), in_axes=(0 if batched_policy else None, 0))(policy_arg, key)


@dataclasses.dataclass
class RunResult:
    """What ``run`` returns.

    Attributes:
      state: the final ``SolverState`` (device arrays; a leading seed axis if batched).
      metrics: name -> numpy array [iterations] (or [seeds, iterations]).
      iterations: number of steps taken (< requested when the stop rule fired).
      seconds: wall time of the loop, compilation included.
    """

    state: SolverState
    metrics: dict[str, np.ndarray]
    iterations: int
    seconds: float


def run(
    solver,
    game: MeanFieldGame,
    num_iterations: int,
    *,
    policy: jax.Array | None = None,
    key: jax.Array | None = None,
    state: SolverState | None = None,
    chunk_size: int = 100,
    diagnose: bool = True,
    stop_exploitability: float | None = None,
    stop_residual: float | None = None,
    sweep: tuple[str, ...] = (),
    progress: bool = False,
    on_chunk: Callable[[int, dict], None] | None = None,
    on_state: Callable[[int, SolverState], None] | None = None,
    fixed_chunk_length: bool = False,
    mesh: "jax.sharding.Mesh | None" = None,
    shard: tuple[str, ...] = ("states", "agents"),
    donate: bool = False,
) -> RunResult:
    """Run ``num_iterations`` steps of ``solver`` on ``game``.

    Args:
      policy: initial policy, ``game.policy_shape`` or [seeds, *policy_shape] to run a
        batch of seeds under vmap.  Defaults to uniform.
      key: PRNG key for sampling solvers (default ``jax.random.key(0)``); a batch of keys
        [seeds] runs one seed per key under vmap (with ``policy`` shared or batched).
      state: resume from this state instead (overrides ``policy`` and ``key``).
      chunk_size: steps per jitted call; metrics reach the host once per chunk.
      diagnose: compute the per-step diagnostics (exploitability costs about one step).
      stop_exploitability: stop after the first chunk whose last exploitability (max
        over seeds) is at most this; the returned state is that chunk's.
      stop_residual: the same rule on the mean-field residual (both rules: either fires).
      sweep: names of the solver's traced hyper-parameters that hold a 1-D grid of
        values [G] (e.g. ``learning_rate=jnp.array([.05, .1, .2])``): the G runs go
        together under vmap, one compilation, one PRNG stream each (``key`` is split).
      progress: show a tqdm progress bar with the current exploitability.
      on_chunk: called on the host as on_chunk(iterations_done, chunk_metrics).
      on_state: called after on_chunk as on_state(iterations_done, state_after_chunk)
        (for checkpoints; it may fetch the state to the host).
      fixed_chunk_length: always compile chunks of ``chunk_size`` steps, even for runs
        shorter than that (a resumed run then reuses the original run's program).
      mesh: a ``jax.sharding.Mesh`` with axes ("seeds", "data") to shard the run over
        (``solvers.sharding``); None runs on the default device.
      shard: which axes go on the mesh's "data" axis: "states" and/or "agents".
      donate: let each chunk reuse the state's buffers (the metrics of a chunk are then
        read before the next is dispatched).
    """
    if num_iterations < 0:
        raise ValueError(f"num_iterations must be >= 0, got {num_iterations}.")
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size}.")
    if state is None:
        state = init_state(solver, game, policy=policy, key=key, sweep=sweep)
    solver_axes = _sweep_axes(solver, tuple(sweep))[0] if sweep else None
    batched = bool(sweep) or state.policy.ndim == len(game.policy_shape) + 1
    shardings = None
    if mesh is not None:
        from solvers.sharding import replicate, shard_state, state_shardings

        num_agents = int(getattr(solver, "num_agents", 0)) if getattr(solver, "critic", None) == "sampled" else 0
        shardings = state_shardings(state, mesh, num_states=game.num_states, num_actions=game.num_actions,
                                    num_agents=num_agents, batched=batched, shard=tuple(shard))
        state = shard_state(state, shardings)
        game = replicate(game, mesh)
    chunk = _chunk_jit(mesh, shardings, donate)
    if donate:
        # Leaves of an initial state may share a buffer (e.g. NAC's average policy is the
        # policy); a donated argument must own each of its buffers once.
        state = jax.tree_util.tree_map(lambda x: jnp.array(x, copy=True) if isinstance(x, jax.Array) else x, state)
    length = chunk_size if fixed_chunk_length else min(chunk_size, max(num_iterations, 1))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=num_iterations, desc=f"{type(solver).__name__} on {game.name}", unit="it")

    collected: list[dict] = []
    recorded = 0  # iterations whose metrics reached the host
    start = time.perf_counter()
    done = 0
    pending = None  # (state_after, metrics, steps) of the chunk whose metrics are unread
    stopped_state = None

    warned = False
    if state.mean_field_stats is not None:                # the initial state's solve
        stats = jax.device_get(state.mean_field_stats)
        warned = _warn_unconverged(solver, stats.converged, stats.change, "for the initial policy")

    def absorb(item):
        nonlocal stopped_state, recorded, warned
        chunk_state, metrics, steps = item
        host = {k: np.asarray(v)[..., :steps] for k, v in jax.device_get(metrics).items()}
        collected.append(host)
        if not warned and "mean_field_converged" in host and steps:
            failed = np.nonzero(np.min(host["mean_field_converged"].reshape(-1, steps), axis=0) < 1)[0]
            if failed.size:
                warned = _warn_unconverged(solver, host["mean_field_converged"], host["mean_field_change"],
                                           f"at iteration {recorded + int(failed[0]) + 1}")
        recorded += steps
        if bar is not None:
            bar.update(steps)
            if "exploitability" in host and steps:
                bar.set_postfix(exploitability=f"{float(np.max(host['exploitability'][..., -1])):.3e}")
        if on_chunk is not None:
            on_chunk(recorded, host)
        if on_state is not None:
            on_state(recorded, chunk_state)
        for rule, name in ((stop_exploitability, "exploitability"), (stop_residual, "mean_field_residual")):
            if (rule is not None and name in host and steps
                    and float(np.max(host[name][..., -1])) <= rule):
                stopped_state = chunk_state
                return True
        return False

    while done < num_iterations:
        steps = min(length, num_iterations - done)
        state, metrics = chunk(solver, game, state, jnp.int32(steps),
                               length=length, diagnose=diagnose, batched=batched,
                               solver_axes=solver_axes)
        done += steps
        if donate:                                     # the next chunk will consume this state
            if absorb((state, metrics, steps)):
                break
            continue
        if pending is not None and absorb(pending):
            pending = None
            done -= steps  # the chunk just dispatched is discarded
            break
        pending = (state, metrics, steps)
    if pending is not None:
        absorb(pending)
    final = stopped_state if stopped_state is not None else state
    jax.block_until_ready(final)
    if not warned and final.mean_field_stats is not None:           # diagnose=False: the last solve
        stats = jax.device_get(final.mean_field_stats)
        _warn_unconverged(solver, stats.converged, stats.change, f"at iteration {done}")
    seconds = time.perf_counter() - start
    if bar is not None:
        bar.close()
    metrics = {}
    if collected and collected[0]:
        metrics = {k: np.concatenate([c[k] for c in collected], axis=-1) for k in collected[0]}
    return RunResult(final, metrics, done, seconds)


def fit_rate(values: np.ndarray, skip: int = 1) -> float:
    """Slope of log(value) against log(iteration), fitted on iterations > ``skip``.

    A rate r means value ~ C t^r (e.g. -1 for O(1/t)).  NaN if fewer than 3 positive points.
    """
    values = np.asarray(values, dtype=np.float64)
    t = np.arange(1, values.shape[-1] + 1, dtype=np.float64)
    keep = (t > skip) & (values > 0) & np.isfinite(values)
    if keep.sum() < 3:
        return float("nan")
    slope, _ = np.polyfit(np.log(t[keep]), np.log(values[keep]), 1)
    return float(slope)

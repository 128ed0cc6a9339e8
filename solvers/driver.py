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
  all_finite                1.0 if every array of the new state is finite

Seeds (or any batch of initial states) run together under ``vmap``: pass a batch of
initial policies.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from mfg.game import MeanFieldGame, state_marginal
from mfg.oracles import exploitability
from solvers.base import SolverState

__all__ = ["RunResult", "diagnostics", "run", "TRACE_COUNTS", "fit_rate"]

# Number of times each jitted entry point was traced (a recompilation guard for tests).
TRACE_COUNTS: dict[str, int] = {"chunk": 0}


def _expected_over_states(mean_field: jax.Array, per_state: jax.Array) -> jax.Array:
    """E_{s ~ mu} f(s), averaged over epochs for finite-horizon arrays."""
    mu = state_marginal(mean_field)
    total = (mu * per_state).sum(-1)
    return total.mean() if total.ndim else total


def diagnostics(game: MeanFieldGame, solver, old: SolverState, new: SolverState) -> dict:
    """Scalar diagnostics of one step (see the module docstring)."""
    expl = exploitability(game, new.policy, solver.temperature, joint=new.mean_field)
    tiny = jnp.finfo(new.policy.dtype).tiny
    log_new = jnp.log(jnp.maximum(new.policy, tiny))
    log_old = jnp.log(jnp.maximum(old.policy, tiny))
    kl = jnp.sum(jnp.where(new.policy > 0, new.policy * (log_new - log_old), 0.0), axis=-1)
    entropy = -jnp.sum(jax.scipy.special.xlogy(new.policy, new.policy), axis=-1)
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(new)
                                if jnp.issubdtype(x.dtype, jnp.floating)]))
    return {
        "exploitability": expl.regularized,
        "exploitability_unreg": expl.unregularized,
        "policy_return": expl.policy_return,
        "mean_field_step": jnp.abs(new.mean_field - old.mean_field).sum(),
        "policy_kl": _expected_over_states(new.mean_field, kl),
        "entropy": _expected_over_states(new.mean_field, entropy),
        "all_finite": finite.astype(new.policy.dtype),
    }


def _chunk(solver, game, state, num_active, *, length: int, diagnose: bool, batched: bool):
    TRACE_COUNTS["chunk"] += 1

    def one(state, num_active):
        def body(state, i):
            new = solver.step(game, state)
            metrics = diagnostics(game, solver, state, new) if diagnose else {}
            active = i < num_active
            new = jax.tree_util.tree_map(lambda a, b: jnp.where(active, a, b), new, state)
            return new, metrics

        return lax.scan(body, state, jnp.arange(length))

    if batched:
        return jax.vmap(one, in_axes=(0, None))(state, num_active)
    return one(state, num_active)


_chunk_jit = jax.jit(_chunk, static_argnames=("length", "diagnose", "batched"))


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
    state: SolverState | None = None,
    chunk_size: int = 100,
    diagnose: bool = True,
    stop_exploitability: float | None = None,
    progress: bool = False,
    on_chunk: Callable[[int, dict], None] | None = None,
) -> RunResult:
    """Run ``num_iterations`` steps of ``solver`` on ``game``.

    Args:
      policy: initial policy, ``game.policy_shape`` or [seeds, *policy_shape] to run a
        batch of seeds under vmap.  Defaults to uniform.
      state: resume from this state instead (overrides ``policy``).
      chunk_size: steps per jitted call; metrics reach the host once per chunk.
      diagnose: compute the per-step diagnostics (exploitability costs about one step).
      stop_exploitability: stop after the first chunk whose last exploitability (max
        over seeds) is at most this; the returned state is that chunk's.
      progress: show a tqdm progress bar with the current exploitability.
      on_chunk: called on the host as on_chunk(iterations_done, chunk_metrics).
    """
    if num_iterations < 0:
        raise ValueError(f"num_iterations must be >= 0, got {num_iterations}.")
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size}.")
    batched = False
    if state is None:
        if policy is not None and jnp.ndim(policy) == len(game.policy_shape) + 1:
            batched = True
            state = jax.vmap(lambda p: solver.init(game, p))(jnp.asarray(policy))
        else:
            state = solver.init(game, policy)
    else:
        batched = state.policy.ndim == len(game.policy_shape) + 1
    length = min(chunk_size, max(num_iterations, 1))
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

    def absorb(item):
        nonlocal stopped_state, recorded
        chunk_state, metrics, steps = item
        host = {k: np.asarray(v)[..., :steps] for k, v in jax.device_get(metrics).items()}
        collected.append(host)
        recorded += steps
        if bar is not None:
            bar.update(steps)
            if "exploitability" in host and steps:
                bar.set_postfix(exploitability=f"{float(np.max(host['exploitability'][..., -1])):.3e}")
        if on_chunk is not None:
            on_chunk(recorded, host)
        if (stop_exploitability is not None and "exploitability" in host and steps
                and float(np.max(host["exploitability"][..., -1])) <= stop_exploitability):
            stopped_state = chunk_state
            return True
        return False

    while done < num_iterations:
        steps = min(length, num_iterations - done)
        state, metrics = _chunk_jit(solver, game, state, jnp.int32(steps),
                                    length=length, diagnose=diagnose, batched=batched)
        done += steps
        if pending is not None and absorb(pending):
            pending = None
            done -= steps  # the chunk just dispatched is discarded
            break
        pending = (state, metrics, steps)
    if pending is not None:
        absorb(pending)
    final = stopped_state if stopped_state is not None else state
    jax.block_until_ready(final)
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

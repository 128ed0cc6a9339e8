"""Exact N-player evaluation: dynamic programming over (own state, counts of the others).

By symmetry, what player 0 faces in the N-player game (``mfg.nplayer.game``) is its own
state x and the count vector c of the other N - 1 players over the S states, one of

    M = C(N - 1 + S - 1, S - 1)

configurations.  With player 0 at (x, action a) and the others at c,

* state games: m = (e_x + c) / N; the others in state s move with the kernel
  K_s(s') = sum_b pi_t(b | s) P(s' | s, b, m), so their next counts are the sum of
  independent multinomials, Mult(c_s, K_s) over s;
* state-action games: the others' state-action counts k are drawn first (for each s,
  Mult(c_s, pi_t(. | s))), m = (e_(x,a) + k) / N, and the others in (s, b) move with
  P(. | s, b, m).

The law of the next counts c' has the generating function

    F(w) = prod_g ( sum_s' K_g(s') w_s' ) ^ k_g          (g over states or state-action pairs)

a polynomial of degree N - 1.  Evaluated at the N-th roots of unity in the first S - 1
variables (w_S = 1) it is the discrete Fourier transform of the law: one inverse FFT of
N^(S-1) points gives every P(c' | x, c) at once, exactly up to rounding.

Backward induction (finite horizon, V_T = 0) or value iteration (stationary) then gives,
on the S M configurations,

    Q_t(x, c, a) = E[ r(x, a, m) + gamma sum_{x'} P(x' | x, a, m) sum_{c'} P(c' | .) V_{t+1}(x', c') ]
    V*_t = lambda log sum_a exp(Q*_t / lambda)       (max when lambda = 0: the deviator's best response)
    V^p_t(x, c) = sum_a p_t(a | x) (Q^p_t - lambda log p_t(a | x))   (a mean-field policy p)

and J = sum_{x, c} mu_0(x) Mult(c; N - 1, nu) V_0(x, c), nu the others' initial law
(``mfg.nplayer.game.others_start``: mu_0, or the stationary mean field of pi).

Precision: float64 is exact to about 1e-13; float32 (complex64 transforms, log-gamma
weights) drifts to about 5e-4 relative at N = 1,000 (docs/nplayer.md).

Sizes (``exact_size``): the transition of the others is held as a dense [rows, M] table
per epoch, rows = S M (state games) or S A M_SA (state-action games, M_SA the
configurations over S A pairs); evaluating it costs rows N^(S-1) complex logarithms.
Measured on a 2-core CPU: S = 2 at N = 1,000 in seconds and N = 10^4 in minutes, S = 3
at N = 64 in about 40 s, S = 5 at N = 12 in about a minute (N = 30 would need 62 GiB);
state-action games far less (``marginal_game`` turns those that read only mu into state
games).  Past the memory limit ``ExactTooLarge`` is raised at once, with the estimate.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike
from jax.scipy.special import gammaln, xlogy

from mfg.game import MeanFieldGame
from mfg.nplayer.game import check_players, check_policy, others_start
from mfg.oracles import policy_value, soft_value
from mfg.transitions import to_dense

__all__ = ["ExactTooLarge", "ExactSize", "NPlayerExploitability", "exact_size", "exact_exploitability",
           "count_configurations"]

# Rows of the others' transition evaluated together: bounds the complex work arrays.
_BATCH_BYTES = 1 << 27
# Fraction of the machine's physical memory the exact method may plan to use.
MEMORY_FRACTION = 0.5


class ExactTooLarge(ValueError):
    """The exact N-player evaluation would not fit in memory; the message gives the estimate."""


def machine_memory_bytes() -> int:
    """Physical memory of this machine (bytes)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 << 30


@functools.lru_cache(maxsize=128)
def _configurations(n: int, k: int) -> np.ndarray:
    if k == 1:
        return np.array([[n]], dtype=np.int64)
    blocks = []
    for first in range(n, -1, -1):
        rest = _configurations(n - first, k - 1)
        blocks.append(np.concatenate([np.full((len(rest), 1), first, np.int64), rest], axis=1))
    out = np.concatenate(blocks)
    out.setflags(write=False)
    return out


def count_configurations(n: int, k: int) -> np.ndarray:
    """[C(n + k - 1, k - 1), k] every vector of k non-negative counts summing to n."""
    return _configurations(int(n), int(k))


@dataclasses.dataclass(frozen=True)
class ExactSize:
    """What the exact evaluation of an N-player game costs.

    Attributes:
      num_players: N.
      configurations: M, count vectors of the N - 1 others over the S states.
      rows: (own state, others) pairs whose next-count law is computed per epoch.
      grid: N^(S-1), Fourier points per row.
      bytes: peak memory planned (the others' transition table and the work arrays).
      log_evaluations: complex logarithms per epoch (rows x grid x categories): the time.
    """

    num_players: int
    kind: str
    configurations: int
    rows: int
    grid: int
    bytes: int
    log_evaluations: int

    def describe(self) -> str:
        return (f"N = {self.num_players} ({self.kind} mean field): {self.configurations:,} configurations of the "
                f"others, {self.rows:,} rows of {self.grid:,} Fourier points, about {self.bytes / 2**30:.3g} GiB "
                f"and {self.log_evaluations:.3g} complex logarithms per epoch")


def exact_size(game: MeanFieldGame, num_players: int) -> ExactSize:
    """The configurations, memory and work of ``exact_exploitability`` at N players."""
    N = check_players(num_players)
    S, A = game.num_states, game.num_actions
    item = jnp.dtype(game.initial_distribution.dtype).itemsize
    M = math.comb(N - 1 + S - 1, S - 1)
    grid = N ** (S - 1)
    if game.mean_field == "state":
        rows, categories, groups = S * M, S, S * M
    else:
        m_sa = math.comb(N - 1 + S * A - 1, S * A - 1)
        rows, categories, groups = S * A * m_sa, S * A, S * A * m_sa
    batch = min(_batch_rows(grid, categories, item), rows)
    work = batch * (grid * (categories + 3) * 2 + S * A * S) * item      # complex work arrays, dense kernels
    table = rows * M * item                                               # the others' next-count law
    own = rows * (A * (1 + S) if game.mean_field == "state" else 1 + S) * item       # reward, own kernel
    values = 8 * S * M * A * item + groups * 4 * item                     # Q and value stacks
    return ExactSize(N, game.mean_field, M, rows, grid, int(table + work + own + values),
                     int(rows) * int(grid) * categories)


def _batch_rows(grid: int, categories: int, item: int) -> int:
    return max(1, _BATCH_BYTES // max(1, grid * (categories + 3) * 2 * item))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class NPlayerExploitability:
    """Exact N-player exploitability of a mean-field policy pi (scalars).

    ``regularized = best_response_return - policy_return`` (lambda-regularized returns of
    player 0: its best response that sees (x, c), and pi itself, against N - 1 players
    using pi); ``unregularized`` the same with lambda = 0.  ``deviation_gain`` (and its
    unregularized twin) is J_N(pi_dev; pi) - J_N(pi; pi) for the given mean-field
    deviation, NaN when none was given.
    """

    num_players: int = dataclasses.field(metadata=dict(static=True))
    regularized: jax.Array
    unregularized: jax.Array
    best_response_return: jax.Array
    policy_return: jax.Array
    deviation_gain: jax.Array
    deviation_gain_unregularized: jax.Array


def _fourier_points(N: int, S: int, dtype) -> np.ndarray:
    """[S, N^(S-1)] w_s = exp(-2 pi i j_s / N) on the grid of N-th roots of unity (w_S = 1),
    row-major; with this sign F(w) is the forward DFT of the law, which ``ifftn`` inverts."""
    if S == 1:
        return np.ones((1, 1), dtype)
    axes = np.meshgrid(*([np.arange(N)] * (S - 1)), indexing="ij")
    phases = np.stack([a.reshape(-1) for a in axes]) * (2 * np.pi / N)
    return np.concatenate([np.exp(-1j * phases), np.ones((1, phases.shape[1]))]).astype(dtype)


def _next_counts(kernels: jax.Array, counts: jax.Array, points: jax.Array, grid_shape: tuple,
                 grid_index: jax.Array) -> jax.Array:
    """Law of the others' next state counts, [M], from ``counts[g]`` players moving with
    ``kernels[g]`` ([G, S]): coefficients of prod_g (K_g . w)^k_g by inverse FFT."""
    if points.shape[1] == 1:                                  # S = 1 or no others: one configuration
        return jnp.ones(grid_index.shape, kernels.dtype)
    z = kernels.astype(points.dtype) @ points                 # [G, grid]
    # Integer powers through the logarithm (exact for any branch); 0^0 = 1.
    log_f = jnp.sum(jnp.where(counts[:, None] > 0, counts[:, None] * jnp.log(z), 0.0), axis=0)
    law = jnp.fft.ifftn(jnp.exp(log_f).reshape(grid_shape)).real.reshape(-1)
    return jnp.maximum(law[grid_index], 0.0)                  # rounding can leave -1e-17


def _multinomial_log_pmf(counts: jax.Array, probs: jax.Array) -> jax.Array:
    """log Mult(counts; sum(counts), probs) over the last axis."""
    n = counts.sum(-1)
    return gammaln(n + 1.0) - gammaln(counts + 1.0).sum(-1) + xlogy(counts, probs).sum(-1)


def _epoch_tables(game: MeanFieldGame, t, others: jax.Array, tables: dict, num_players: int, batch: int):
    """One epoch's tables: (reward, own kernel, the others' next-count law, weights).

    State games: reward [S, M, A], own kernel [S, M, A, S], law [S, M, M] (it does not
    depend on player 0's action), weights None.  State-action games: the same over rows
    (x, a, k) -- [S, A, K], [S, A, K, S], [S, A, K, M] -- and the weights P(k | c) [K]
    that fold k into c (``_q_values``).
    """
    S, A = game.num_states, game.num_actions
    dtype = others.dtype
    grid_shape = (num_players,) * (S - 1)
    points, grid_index = tables["points"], tables["grid_index"]
    if game.mean_field == "state":
        configs = tables["configs"].astype(dtype)                              # [M, S]
        M = configs.shape[0]
        own_states = jnp.repeat(jnp.arange(S), M)
        rows = (own_states, jnp.tile(configs, (S, 1)))

        def row(item):
            x, c = item
            mu = (jax.nn.one_hot(x, S, dtype=dtype) + c) / num_players
            reward = game.reward_fn(game.params, t, mu).astype(dtype)[x]     # [A]
            kernel = to_dense(game.transition_fn(game.params, t, mu), S).probs.astype(dtype)
            moving = jnp.einsum("sb,sbt->st", others, kernel)               # K_s [S, S]
            return reward, kernel[x], _next_counts(moving, c, points, grid_shape, grid_index)

        reward, own, law = lax.map(row, rows, batch_size=batch)
        return reward.reshape(S, M, A), own.reshape(S, M, A, S), law.reshape(S, M, M), None

    pairs = tables["pair_configs"].astype(dtype)                               # [K, S A]
    K = pairs.shape[0]
    own_pairs = jnp.repeat(jnp.arange(S * A), K)
    rows = (own_pairs, jnp.tile(pairs, (S * A, 1)))

    def row(item):
        xa, k = item
        joint = (jax.nn.one_hot(xa, S * A, dtype=dtype) + k).reshape(S, A) / num_players
        x, a = xa // A, xa % A
        reward = game.reward_fn(game.params, t, joint).astype(dtype)[x, a]
        kernel = to_dense(game.transition_fn(game.params, t, joint), S).probs.astype(dtype)
        return reward, kernel[x, a], _next_counts(kernel.reshape(S * A, S), k, points, grid_shape, grid_index)

    reward, own, law = lax.map(row, rows, batch_size=batch)
    # P(k | c) = prod_s Mult(k_s.; c_s, pi_t(. | s)): how the others' actions split.
    weights = jnp.exp(_multinomial_log_pmf(pairs.reshape(K, S, A), others[None]).sum(-1))   # [K]
    return (reward.reshape(S, A, K), own.reshape(S, A, K, S), law.reshape(S, A, K, -1), weights)


def _q_values(game, tables, epoch, values: jax.Array) -> jax.Array:
    """Q [V, S, M, A] for a stack of next values [V, S, M] (one backup of each)."""
    reward, own, law, weights = epoch
    gamma = game.discount.astype(values.dtype)
    if weights is None:                                            # state games
        future = jnp.einsum("xmn,vyn->vxmy", law, values)          # E[V(x', c') | x, c]  [V, S, M, S]
        return reward[None] + gamma * jnp.einsum("xmay,vxmy->vxma", own, future)
    future = jnp.einsum("xakn,vyn->vxaky", law, values)            # [V, S, A, K, S]
    q_rows = reward[None] + gamma * jnp.einsum("xaky,vxaky->vxak", own, future)
    # Fold the others' action split: Q(x, c, a) = sum_{k -> c} P(k | c) q(x, a, k).
    M = values.shape[-1]
    folded = jax.ops.segment_sum(jnp.moveaxis(q_rows * weights, -1, 0), tables["pair_to_config"], num_segments=M)
    return jnp.moveaxis(folded, 0, -1).transpose(0, 1, 3, 2)       # [V, S, M, A]


def _backup(q, policies, temperature):
    """Values [6, S, M] from Q [6, S, M, A]: (BR, pi, dev) regularized then unregularized."""
    out = []
    for reg, offset in ((None, 0), (False, 3)):       # None: regularized when lambda > 0
        out.append(soft_value(q[offset], temperature, reg))
        for i in (1, 2):
            out.append(policy_value(q[offset + i], policies[i - 1][:, None, :], temperature, reg))
    return jnp.stack(out)


@functools.partial(jax.jit, static_argnames=("num_players", "batch"))
def _exact_values(game, policy, deviation, temperature, tables, *, num_players: int, batch: int):
    S = game.num_states
    dtype = policy.dtype
    M = tables["configs"].shape[0]
    temperature = jnp.asarray(temperature, dtype)
    zeros = jnp.zeros((6, S, M), dtype)
    if game.is_finite_horizon:
        def backward(values, inputs):
            t, pi_t, dev_t = inputs
            epoch = _epoch_tables(game, t, pi_t, tables, num_players, batch)
            return _backup(_q_values(game, tables, epoch, values), (pi_t, dev_t), temperature), None

        epochs = jnp.arange(game.horizon, dtype=jnp.int32)
        values, _ = lax.scan(backward, zeros, (epochs, policy, deviation), reverse=True)
    else:
        epoch = _epoch_tables(game, jnp.int32(0), policy, tables, num_players, batch)
        tol = 64 * jnp.finfo(dtype).eps

        def body(carry):
            values, _, k = carry
            new = _backup(_q_values(game, tables, epoch, values), (policy, deviation), temperature)
            change = jnp.abs(new - values).max() / jnp.maximum(1.0, jnp.abs(new).max())
            return new, change, k + 1

        values, _, _ = lax.while_loop(lambda c: (c[1] > tol) & (c[2] < 100_000), body,
                                      (zeros, jnp.asarray(jnp.inf, dtype), 0))
    # Initial law: x ~ mu_0 and, independently, c ~ Mult(N - 1, nu) (``others_start``).
    mu0 = game.initial_distribution.astype(dtype)
    nu = others_start(game, policy)
    start = mu0[:, None] * jnp.exp(_multinomial_log_pmf(tables["configs"].astype(dtype), nu[None]))[None]
    returns = jnp.einsum("xm,vxm->v", start, values)
    return returns


def exact_exploitability(game: MeanFieldGame, policy: ArrayLike, num_players: int, temperature: float = 0.0,
                         deviation: ArrayLike | None = None, memory_limit: int | None = None) -> NPlayerExploitability:
    """Exact N-player exploitability of the mean-field policy ``policy``.

    Args:
      game: any ``MeanFieldGame`` (finite horizon or stationary; state or state-action
        mean field) whose kernel can be made dense ([S, A, S]).
      policy: the policy all N players use, ``game.policy_shape``.
      num_players: N >= 1.
      temperature: lambda >= 0; the regularized values charge player 0 lambda log of its
        own action probabilities.
      deviation: optional mean-field policy of player 0 (``game.policy_shape``) whose gain
        J_N(deviation; pi) - J_N(pi; pi) is reported too.
      memory_limit: bytes the evaluation may plan to use (default: half of this machine's
        memory).
    Raises:
      ExactTooLarge: when ``exact_size`` exceeds ``memory_limit``, with the estimate.
    """
    N = check_players(num_players)
    pi = check_policy(game, policy)
    dev = pi if deviation is None else check_policy(game, deviation, "deviation")
    temperature = float(temperature)
    if not math.isfinite(temperature) or temperature < 0:
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature!r}.")
    size = exact_size(game, N)
    limit = int(MEMORY_FRACTION * machine_memory_bytes()) if memory_limit is None else int(memory_limit)
    if size.bytes > limit:
        raise ExactTooLarge(
            f"exact N-player evaluation of {game.name!r} is too large: {size.describe()}; the limit is "
            f"{limit / 2**30:.3g} GiB ({MEMORY_FRACTION:.0%} of this machine's "
            f"{machine_memory_bytes() / 2**30:.3g} GiB). Use mfg.nplayer.sampled_exploitability, a smaller N"
            + (", or mfg.nplayer.marginal_game if the game reads only the state marginal."
               if game.mean_field == "state_action" else "."))
    dtype = game.initial_distribution.dtype
    complex_dtype = np.complex128 if dtype == jnp.float64 else np.complex64
    S, A = game.num_states, game.num_actions
    configs = count_configurations(N - 1, S)
    grid_index = (np.ravel_multi_index(tuple(configs[:, :-1].T), (N,) * (S - 1)) if S > 1
                  else np.zeros(len(configs), np.int64))
    tables = {"configs": jnp.asarray(configs, jnp.int32), "grid_index": jnp.asarray(grid_index, jnp.int32),
              "points": jnp.asarray(_fourier_points(N, S, complex_dtype))}
    categories = S
    if game.mean_field == "state_action":
        pairs = count_configurations(N - 1, S * A)
        lookup = np.zeros(max(1, N ** (S - 1)), np.int64)
        lookup[grid_index] = np.arange(len(configs))
        state_counts = pairs.reshape(len(pairs), S, A).sum(-1)
        pair_to_config = (lookup[np.ravel_multi_index(tuple(state_counts[:, :-1].T), (N,) * (S - 1))]
                          if S > 1 else np.zeros(len(pairs), np.int64))
        tables |= {"pair_configs": jnp.asarray(pairs, jnp.int32), "pair_to_config": jnp.asarray(pair_to_config, jnp.int32)}
        categories = S * A
    batch = _batch_rows(size.grid, categories, np.dtype(complex_dtype).itemsize // 2)
    returns = _exact_values(game, jnp.asarray(pi, dtype), jnp.asarray(dev, dtype), temperature, tables,
                            num_players=N, batch=min(batch, size.rows))
    br, pv, dv, br0, pv0, dv0 = (returns[i] for i in range(6))
    nan = jnp.asarray(jnp.nan, dtype)
    return NPlayerExploitability(
        num_players=N, regularized=br - pv, unregularized=br0 - pv0, best_response_return=br, policy_return=pv,
        deviation_gain=nan if deviation is None else dv - pv,
        deviation_gain_unregularized=nan if deviation is None else dv0 - pv0)

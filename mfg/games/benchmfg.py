"""Bench-MFG's environments (PyPI ``bench-mfg-suite`` 0.1.3), with its definitions and defaults.

Bench-MFG states every game as a deterministic next-state map x' = F(x, a, n, mu) of a
noise index n with probabilities noise_prob[n], so its kernel is the K = N successor table

    P(x' | x, a, mu) = sum_n noise_prob[n] [F(x, a, n, mu) = x'],

which is this library's ``SparseTransition`` as it stands (``kernel="noise"``); games whose
map does not depend on mu also come in the faster forms of ``mfg.games._common`` (a chain
clamped at its ends is a shift kernel).  Randomness drawn by rounding a probability p on
the N noise atoms u_n = (n + 1/2) / N ("move if u_n < p") is reproduced exactly: SIS,
kinetic congestion and MF-Garnet therefore have probabilities quantized to multiples of
1 / N, and kernels that are piecewise constant in mu (docs/peers.md, "Bench-MFG quirks").

Defaults are those of Bench-MFG's shipped YAML configurations (``benchmfg/config/
environment/*.yaml``, what its CLI runs), not of its class constructors, which differ (for
SIS the constructor's cost of infection is 5, its factory's fallback 1, the YAML's 10).
Every game is stationary, discounted by gamma = 0.9; Bench-MFG's ``horizon`` (100) is not
a horizon of the game but the number of Bellman sweeps its evaluation truncates at
(``benchmfg_exploitability``).

The ten names of Bench-MFG's factory are nine games: "StrictContractionGame" builds the
same ``MultipleEquilibria1DGame`` as "MultipleEquilibriaGame" (same config section), and
its ``potential_game2d.yaml`` has no environment behind it.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from mfg.game import MeanFieldGame, make_game, max_over_actions, sum_over_actions
from mfg.games._common import combine_moves, fixed_kernel, grid_kernel
from mfg.oracles import truncated_q_values
from mfg.transitions import DenseTransition, SparseTransition, push_forward

__all__ = [
    "BENCHMFG_HORIZON",
    "benchmfg_exploitability",
    "benchmfg_contraction",
    "benchmfg_four_rooms",
    "benchmfg_kinetic_congestion",
    "benchmfg_lasry_lions",
    "benchmfg_mf_garnet",
    "benchmfg_multiple_equilibria",
    "benchmfg_no_interaction",
    "benchmfg_rock_paper_scissors",
    "benchmfg_sis",
    "garnet_arrays",
]

BENCHMFG_HORIZON = 100     # every shipped config: the number of sweeps of its truncated evaluation
BENCHMFG_DISCOUNT = 0.9    # every shipped config
# benchmfg.envs.mfg_model_class_jit.MEAN_FIELD_FIXED_POINT_ITERATIONS: push-forward steps
# inside its exploitability (its algorithms take 20 per iteration).
BENCHMFG_EXPLOITABILITY_STEPS = 50
KERNELS = ("noise", "shift", "pull", "sparse", "dense")
_CHAIN_NOISE = (0.025, 0.95, 0.025)   # P(eps = -1, 0, +1) of the 1-D chains


# ------------------------------------------------------------------ shared machinery

@dataclasses.dataclass(frozen=True)
class NoiseKernel:
    """Transition fn of a mean-field-dependent successor map (hashable: static in the game).

    ``successors(params, mu)`` gives the [S, A, N] next states at mu, each reached with
    probability ``params["noise_prob"][n]``."""

    successors: Callable

    def __call__(self, params, t, mu):
        del t
        next_state = self.successors(params, mu)
        probs = jnp.broadcast_to(params["noise_prob"], next_state.shape).astype(mu.dtype)
        return SparseTransition(next_state, probs)


def _fixed_game(name, next_state: np.ndarray, noise_prob, kernel: str, **game):
    """A game whose successor table [S, A, N] does not depend on the mean field."""
    if kernel not in ("noise", "pull", "sparse", "dense"):
        raise ValueError(f"kernel must be one of 'noise', 'pull', 'sparse', 'dense' for {name}, got {kernel!r}.")
    probs = np.broadcast_to(np.asarray(noise_prob, np.float64), next_state.shape)
    params, transition_fn = fixed_kernel("sparse" if kernel == "noise" else kernel, next_state, probs)
    return params, transition_fn


def _initial(num_states: int, initial_distribution) -> np.ndarray:
    if initial_distribution is None:
        return np.full(num_states, 1.0 / num_states)
    return np.asarray(initial_distribution, np.float64)


# ----------------------------------------------------------------- the 1-D chains

def _chain_table(num_states: int, noisy: bool) -> np.ndarray:
    """[S, 3, 3] successors clip(x + (a - 1) + (n - 1), 0, S - 1) (noise ignored if not noisy)."""
    x = np.arange(num_states)[:, None, None]
    move = np.arange(3)[None, :, None] - 1
    eps = (np.arange(3)[None, None, :] - 1) if noisy else np.zeros((1, 1, 3), int)
    return np.clip(x + move + eps, 0, num_states - 1).astype(np.int32)


def _chain_kernel(name: str, num_states: int, noise_prob, noisy: bool, kernel: str):
    if kernel == "shift":
        noise = np.asarray(noise_prob, np.float64) if noisy else np.array([0.0, 1.0, 0.0])
        offsets, probs = combine_moves(np.arange(3)[:, None] - 1, np.array([[-1], [0], [1]]), noise)
        return grid_kernel("shift", probs, offsets, (num_states,), "clamp")
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {', '.join(map(repr, KERNELS))}, got {kernel!r}.")
    return _fixed_game(name, _chain_table(num_states, noisy), noise_prob, kernel)


def _chain_reward(params, state_term):
    """r(x, a) = -c_move |a - 1| + state_term(x), the form of every 1-D chain: [S, 3]."""
    direction = jnp.arange(3, dtype=state_term.dtype) - 1
    return (-params["movement"] * jnp.abs(direction))[None, :] + state_term[:, None]


def _lasry_lions_reward(params, t, mu):
    x = jnp.arange(mu.shape[0], dtype=mu.dtype)
    return _chain_reward(params, -params["center_attraction"] * (x - params["center"]) ** 2 - params["crowd"] * mu)


def benchmfg_lasry_lions(num_states: int = 7, crowd_penalty: float = 40.0, movement_penalty: float = 2.0,
                         center_attraction: float = 3.0, noise_prob=_CHAIN_NOISE, is_noisy: bool = True,
                         discount: float = BENCHMFG_DISCOUNT, initial_distribution=None,
                         kernel: str = "shift", dtype=None) -> MeanFieldGame:
    """Lasry-Lions chain: x' = clip(x + (a - 1) + eps), eps ~ noise_prob on {-1, 0, 1};

        r(x, a, mu) = -c_move |a - 1| - c_center (x - (S - 1)/2)^2 - c_crowd mu(x).

    Bench-MFG's ``lasry_lions_chain.yaml``: S = 7, c_crowd = 40, c_move = 2, c_center = 3.
    """
    params, transition_fn = _chain_kernel("benchmfg_lasry_lions", num_states, noise_prob, is_noisy, kernel)
    params = params | {"crowd": crowd_penalty, "movement": movement_penalty,
                       "center_attraction": center_attraction, "center": (num_states - 1) / 2.0}
    return make_game(name="benchmfg_lasry_lions", num_states=num_states, num_actions=3, discount=discount,
                     reward_fn=_lasry_lions_reward, transition_fn=transition_fn, params=params,
                     initial_distribution=_initial(num_states, initial_distribution), dtype=dtype)


def _no_interaction_reward(params, t, mu):
    return _chain_reward(params, jnp.arange(mu.shape[0], dtype=mu.dtype))


def benchmfg_no_interaction(num_states: int = 7, movement_penalty: float = 0.1, noise_prob=_CHAIN_NOISE,
                            is_noisy: bool = True, discount: float = BENCHMFG_DISCOUNT,
                            initial_distribution=None, kernel: str = "shift", dtype=None) -> MeanFieldGame:
    """The chain without interaction: r(x, a) = -c_move |a - 1| + x (an MDP; its
    equilibrium is the optimal policy).  ``no_interaction_game.yaml``: S = 7, c_move = 0.1."""
    params, transition_fn = _chain_kernel("benchmfg_no_interaction", num_states, noise_prob, is_noisy, kernel)
    params = params | {"movement": movement_penalty}
    return make_game(name="benchmfg_no_interaction", num_states=num_states, num_actions=3, discount=discount,
                     reward_fn=_no_interaction_reward, transition_fn=transition_fn, params=params,
                     initial_distribution=_initial(num_states, initial_distribution), dtype=dtype)


def _multiple_equilibria_reward(params, t, mu):
    x = jnp.arange(mu.shape[0], dtype=mu.dtype)
    distance = jnp.min(jnp.abs(x[:, None] - params["targets"][None, :]), axis=1)
    return _chain_reward(params, -params["attraction"] * distance + params["alpha"] * mu)


def benchmfg_multiple_equilibria(num_states: int = 7, alpha: float = 5.0, beta: float = 20.0,
                                 movement_penalty: float = 4.0, targets=(2, 4), noise_prob=_CHAIN_NOISE,
                                 is_noisy: bool = True, discount: float = BENCHMFG_DISCOUNT,
                                 initial_distribution=None, kernel: str = "shift", dtype=None) -> MeanFieldGame:
    """Two beach bars on the chain, crowds attract (several equilibria):

        r(x, a, mu) = -c_1 |a - 1| - c_2 min_i |x - x_i| + alpha mu(x).

    ``multiple_equilibria.yaml`` (also Bench-MFG's "StrictContractionGame"): S = 7,
    alpha = 5, c_2 = beta = 20, c_1 = 4, targets (2, 4).
    """
    targets = np.asarray(targets, np.float64)
    if targets.ndim != 1 or len(targets) < 2 or targets.min() < 0 or targets.max() >= num_states:
        raise ValueError(f"targets must be at least two states in [0, {num_states - 1}], got {targets.tolist()}.")
    params, transition_fn = _chain_kernel("benchmfg_multiple_equilibria", num_states, noise_prob, is_noisy, kernel)
    params = params | {"alpha": alpha, "attraction": beta, "movement": movement_penalty, "targets": targets}
    return make_game(name="benchmfg_multiple_equilibria", num_states=num_states, num_actions=3, discount=discount,
                     reward_fn=_multiple_equilibria_reward, transition_fn=transition_fn, params=params,
                     initial_distribution=_initial(num_states, initial_distribution), dtype=dtype)


# ------------------------------------------------------------ two- and three-state games

def _contraction_reward(params, t, mu):
    switching = jnp.array([0.0, 1.0], mu.dtype)
    return -params["switching_cost"] * switching[None, :] - params["congestion"] * mu[:, None]


def benchmfg_contraction(switching_cost: float = 2.0, congestion: float = 2.0, discount: float = BENCHMFG_DISCOUNT,
                         initial_distribution=None, kernel: str = "noise", dtype=None) -> MeanFieldGame:
    """Two states, stay (a = 0) or switch (a = 1), deterministic:
    r(x, a, mu) = -C [a = switch] - alpha mu(x).  ``contraction_game.yaml``: C = alpha = 2."""
    table = np.array([[[0], [1]], [[1], [0]]], np.int32)
    params, transition_fn = _fixed_game("benchmfg_contraction", table, [1.0], kernel)
    params = params | {"switching_cost": switching_cost, "congestion": congestion}
    return make_game(name="benchmfg_contraction", num_states=2, num_actions=2, discount=discount,
                     reward_fn=_contraction_reward, transition_fn=transition_fn, params=params,
                     initial_distribution=_initial(2, initial_distribution), dtype=dtype)


_RPS_MATRIX = np.array([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]])


def _rps_reward(params, t, mu):
    return jnp.broadcast_to((params["matrix"] @ mu)[:, None], (3, 3))


def benchmfg_rock_paper_scissors(discount: float = BENCHMFG_DISCOUNT, initial_distribution=None,
                                 kernel: str = "noise", dtype=None) -> MeanFieldGame:
    """The action chooses the next state (x' = a); r(x, mu) = (A mu)(x) with the
    skew-symmetric A = [[0, -1, 1], [1, 0, -1], [-1, 1, 0]] (a state-dependent reward,
    unlike MFGLib's ``rock_paper_scissors``)."""
    table = np.broadcast_to(np.arange(3, dtype=np.int32)[None, :, None], (3, 3, 1)).copy()
    params, transition_fn = _fixed_game("benchmfg_rock_paper_scissors", table, [1.0], kernel)
    params = params | {"matrix": _RPS_MATRIX}
    return make_game(name="benchmfg_rock_paper_scissors", num_states=3, num_actions=3, discount=discount,
                     reward_fn=_rps_reward, transition_fn=transition_fn, params=params,
                     initial_distribution=_initial(3, initial_distribution), dtype=dtype)


def _sis_successors(params, mu):
    precision = params["noise_prob"].shape[0]
    rolls = (jnp.arange(precision, dtype=mu.dtype) + 0.5) / precision                     # [N]
    p_infect = jnp.clip(params["beta"] * params["levels"] * mu[1], 0.0, 1.0)                # [A]
    susceptible = (rolls[None, :] < p_infect[:, None]).astype(jnp.int32)                  # 1 = infected
    infected = jnp.broadcast_to(jnp.where(rolls < params["nu"], 0, 1).astype(jnp.int32), susceptible.shape)
    return jnp.stack([susceptible, infected])                                             # [2, A, N]


def _sis_reward(params, t, mu):
    cost = jnp.array([0.0, 1.0], mu.dtype) * params["cost"]
    return params["levels"][None, :] - cost[:, None]


def benchmfg_sis(num_actions: int = 5, beta: float = 0.8, nu: float = 0.1, cost_infection: float = 10.0,
                 precision: int = 100, discount: float = BENCHMFG_DISCOUNT, initial_distribution=None,
                 dtype=None) -> MeanFieldGame:
    """SIS epidemic with a chosen social intensity a in linspace(0, 1, A):

        infected w.p. clip(beta a mu(I)), recover w.p. nu, r(x, a) = a - C [x = I],

    each probability rounded on ``precision`` noise atoms (Bench-MFG's precision_N = 100).
    ``sis_epidemic.yaml``: A = 5, beta = 0.8, nu = 0.1, C = 10.
    """
    params = {"noise_prob": np.full(precision, 1.0 / precision), "levels": np.linspace(0.0, 1.0, num_actions),
              "beta": beta, "nu": nu, "cost": cost_infection}
    return make_game(name="benchmfg_sis", num_states=2, num_actions=num_actions, discount=discount,
                     reward_fn=_sis_reward, transition_fn=NoiseKernel(_sis_successors), params=params,
                     initial_distribution=_initial(2, initial_distribution), dtype=dtype)


# -------------------------------------------------------------------------- grid games

# Bench-MFG's move order on its grids (row 0 at the bottom): up, right, down, left, stay.
_MOVES = np.array([[1, 0], [0, 1], [-1, 0], [0, -1], [0, 0]])


def _four_rooms_mask(rows: int, cols: int, doors) -> np.ndarray:
    mask = np.zeros((rows, cols), bool)
    mask[:, cols // 2] = True
    mask[rows // 2, :] = True
    for row, col in doors:
        mask[row, col] = False
    return mask


def _aversion_reward(params, t, mu):
    return jnp.broadcast_to((-params["alpha"] * jnp.log(jnp.maximum(mu, params["epsilon"])))[:, None],
                            (mu.shape[0], 5))


def benchmfg_four_rooms(alpha: float = 1.0, epsilon: float = 1e-12, noise_prob=(0.2,) * 5,
                        doors=((2, 5), (8, 5), (5, 8), (5, 2)), discount: float = BENCHMFG_DISCOUNT,
                        initial_distribution=None, kernel: str = "noise", dtype=None) -> MeanFieldGame:
    """Crowd aversion in four rooms (11 x 11 grid, cross-shaped walls with four doors):
    x' = x + m(a) + m(n) if that cell is on the grid and not a wall, else x (the combined
    move is checked, not each part); r(x, mu) = -alpha log max(mu(x), epsilon).
    ``four_rooms_obstacles.yaml``: alpha = 1, noise uniform on the five moves.  Wall
    cells are states too (S = 121): agents never enter them, and mu_0 (uniform) puts
    mass on them at the start."""
    rows = cols = 11
    wall = _four_rooms_mask(rows, cols, doors)
    row, col = np.divmod(np.arange(rows * cols), cols)
    target_row = row[:, None, None] + _MOVES[None, :, None, 0] + _MOVES[None, None, :, 0]
    target_col = col[:, None, None] + _MOVES[None, :, None, 1] + _MOVES[None, None, :, 1]
    inside = (target_row >= 0) & (target_row < rows) & (target_col >= 0) & (target_col < cols)
    blocked = ~inside | wall[np.clip(target_row, 0, rows - 1), np.clip(target_col, 0, cols - 1)]
    table = np.where(blocked, np.arange(rows * cols)[:, None, None], target_row * cols + target_col)
    params, transition_fn = _fixed_game("benchmfg_four_rooms", table.astype(np.int32), noise_prob, kernel)
    params = params | {"alpha": alpha, "epsilon": epsilon}
    return make_game(name="benchmfg_four_rooms", num_states=rows * cols, num_actions=5, discount=discount,
                     reward_fn=_aversion_reward, transition_fn=transition_fn, params=params,
                     state_shape=(rows, cols), initial_distribution=_initial(rows * cols, initial_distribution),
                     dtype=dtype)


def _kinetic_successors(params, mu):
    target = params["move_target"]                                        # [S, A] int
    stays = target == jnp.arange(mu.shape[0])[:, None]
    density = mu[target]
    success = 1.0 - jnp.where(density >= params["threshold"], 1.0,
                              jnp.minimum(1.0, density / params["threshold"]))
    precision = params["noise_prob"].shape[0]
    rolls = (jnp.arange(precision, dtype=mu.dtype) + 0.5) / precision
    moves = rolls[None, None, :] < success[:, :, None]
    here = jnp.arange(mu.shape[0], dtype=jnp.int32)[:, None, None]
    return jnp.where(stays[:, :, None] | ~moves, here, target[:, :, None]).astype(jnp.int32)


def _kinetic_reward(params, t, mu):
    at_target = (jnp.arange(mu.shape[0]) == params["target"]).astype(mu.dtype)
    move_cost = jnp.where(jnp.arange(5) == 4, 0.0, params["movement_cost"]).astype(mu.dtype)
    return -(1.0 - at_target)[:, None] - move_cost[None, :]


def benchmfg_kinetic_congestion(height: int = 5, width: int = 5, target_state: int = 24,
                                movement_cost: float = 0.1, capacity_threshold: float = 0.18,
                                precision: int = 100, discount: float = BENCHMFG_DISCOUNT,
                                initial_distribution=None, dtype=None) -> MeanFieldGame:
    """Reach a target through congestion: the move to the neighbouring cell y (clamped at
    the edges) succeeds w.p. 1 - min(1, mu(y) / threshold) (0 once mu(y) >= threshold),
    rounded on ``precision`` atoms; r(x, a) = -[x != target] - c_move [a != stay].
    ``kinetic_congestion.yaml``: 5 x 5, target 24 (top-right), c_move = 0.1, threshold 0.18.
    """
    num_states = height * width
    if not 0 <= target_state < num_states:
        raise ValueError(f"target_state must be in [0, {num_states - 1}], got {target_state}.")
    row, col = np.divmod(np.arange(num_states), width)
    target_row = np.clip(row[:, None] + _MOVES[None, :, 0], 0, height - 1)
    target_col = np.clip(col[:, None] + _MOVES[None, :, 1], 0, width - 1)
    params = {"noise_prob": np.full(precision, 1.0 / precision),
              "move_target": (target_row * width + target_col).astype(np.int32),
              "threshold": capacity_threshold, "target": np.int32(target_state), "movement_cost": movement_cost}
    return make_game(name="benchmfg_kinetic_congestion", num_states=num_states, num_actions=5, discount=discount,
                     reward_fn=_kinetic_reward, transition_fn=NoiseKernel(_kinetic_successors), params=params,
                     state_shape=(height, width), initial_distribution=_initial(num_states, initial_distribution),
                     dtype=dtype)


# ---------------------------------------------------------------------------- MF-Garnet

def garnet_arrays(num_states: int = 100, num_actions: int = 6, branching_factor: int = 6, seed: int = 0,
                  game_type: str = "potential") -> dict[str, np.ndarray]:
    """Bench-MFG's ``MFGarnet`` draws, in its order from ``numpy.random.default_rng(seed)``:
    (c_p, rho_p, c_r, rho_r) uniform on [0, 1] (they replace the config's values), then per
    (s, a) the support (``branching_factor`` states, with repeats) and Dirichlet(1) weights
    of P0 (a repeated successor keeps only its last weight, as in Bench-MFG), then
    C [S, A, S, S] standard normal (rounded to float32, as Bench-MFG stores it),
    R0 [S, A] normal, M [S, S] normal, symmetrized ("potential") or antisymmetrized ("cyclic")."""
    if game_type not in ("potential", "cyclic"):
        raise ValueError(f"game_type must be 'potential' or 'cyclic', got {game_type!r}.")
    if not 1 <= branching_factor <= num_states:
        raise ValueError(f"branching_factor must be in [1, {num_states}], got {branching_factor}.")
    rng = np.random.default_rng(int(seed))
    cp, rho_p, cr, rho_r = (float(rng.uniform(0.0, 1.0)) for _ in range(4))
    base = np.zeros((num_states, num_actions, num_states))
    for s in range(num_states):
        for a in range(num_actions):
            support = rng.integers(0, num_states, size=(branching_factor,))
            weights = rng.dirichlet(np.ones(branching_factor))
            # Bench-MFG writes base[support] += weights: with a repeated successor, numpy's
            # buffered fancy-index add keeps one weight (the last), not their sum, so a
            # row of P0 sums to less than 1 (the normalization below absorbs it).
            row = base[s, a]
            row[support] += weights
    coupling = rng.normal(size=(num_states, num_actions, num_states, num_states)).astype(np.float32)
    reward0 = rng.normal(loc=0.0, scale=1.0, size=(num_states, num_actions))
    m = rng.normal(size=(num_states, num_states))
    interaction = 0.5 * (m + m.T) if game_type == "potential" else 0.5 * (m - m.T)
    return {"cp": cp, "rho_p": rho_p, "cr": cr, "rho_r": rho_r, "base": base,
            "coupling": coupling.astype(np.float64), "reward0": reward0, "interaction": interaction}


def _garnet_cdf(params, mu, multiplicative: bool):
    """[S, A, S] the cumulative next-state distribution of p(. | s, a, mu) before rounding."""
    mu = mu / jnp.maximum(mu.sum(), params["eps"])
    g = jnp.einsum("saxy,y->sax", params["coupling"], mu)
    if multiplicative:
        intensity = params["base"] * jnp.maximum(0.0, params["cp"] + params["rho_p"] * g)
    else:
        intensity = jnp.maximum(0.0, params["cp"] * params["base"] + params["rho_p"] * g)
    intensity = intensity + params["relu_eps"]
    p = intensity / (intensity.sum(-1, keepdims=True) + params["eps"])
    p = p / jnp.maximum(p.sum(-1, keepdims=True), params["eps"])
    return jnp.cumsum(p, axis=-1)


def _noise_atoms(params, dtype):
    count = params["noise_prob"].shape[0]
    return (jnp.arange(count, dtype=dtype) + 0.5) / count


def _garnet_successors(params, mu, multiplicative: bool):
    """[S, A, N] Bench-MFG's successor of each noise atom: the first s' with cdf(s') > u_n,
    the last state when u_n >= cdf(S - 1) (round-off)."""
    cdf = _garnet_cdf(params, mu, multiplicative)                                  # [S, A, S]
    u = _noise_atoms(params, mu.dtype)
    above = cdf[:, :, None, :] > u[None, None, :, None]                           # [S, A, N, S]
    first = jnp.argmax(above, axis=-1)
    last = mu.shape[0] - 1
    return jnp.where(u[None, None, :] >= cdf[:, :, -1:], last, first).astype(jnp.int32)


@dataclasses.dataclass(frozen=True)
class RoundedGarnetKernel:
    """Transition fn of MF-Garnet as a dense [S, A, S] kernel: the same rounded
    probabilities as the successor table (``_garnet_successors``), counted instead of
    enumerated.  With k(c) = #{n : u_n < c} (in closed form for N a power of two, else a
    binary search of c among the sorted atoms; both exact, in the table's arithmetic),

        P(s' | s, a) = (k(cdf(s')) - k(cdf(s' - 1))) / N   for s' < S - 1,
        P(S - 1 | s, a) = (N - k(cdf(S - 2))) / N,

    since atom n goes to the first s' with cdf(s') > u_n (cdf is non-decreasing: a sum
    of non-negative terms).  It skips the table's [S, A, N, S] comparison, the costliest
    step of a kernel rebuild (2.9 ms of it at 100 states), and the noise atoms' equal
    weights 1 / N make the counts the probabilities."""

    multiplicative: bool

    def __call__(self, params, t, mu):
        del t
        cdf = _garnet_cdf(params, mu, self.multiplicative)
        atoms = params["noise_prob"].shape[0]
        count = jnp.asarray(atoms, mu.dtype)
        if atoms & (atoms - 1) == 0:
            # N a power of two: u_n < c  <=>  n < N c - 1/2, both sides exact in binary
            # floating point (scaling by N is exact, and so is subtracting 1/2 from N c),
            # so k(c) = clip(ceil(N c - 1/2), 0, N) with no search
            below = jnp.clip(jnp.ceil(count * cdf - 0.5), 0.0, count)
        else:
            below = jnp.searchsorted(_noise_atoms(params, mu.dtype), cdf, side="left").astype(mu.dtype)
        upper = below.at[..., -1].set(count)                 # every atom lies below "cdf(S - 1)"
        lower = jnp.concatenate([jnp.zeros_like(upper[..., :1]), upper[..., :-1]], axis=-1)
        return DenseTransition((upper - lower) / count)


def _garnet_reward(params, t, mu, multiplicative: bool):
    mu = mu / jnp.maximum(mu.sum(), params["eps"])
    interaction = params["interaction"] @ mu
    if multiplicative:
        return params["reward0"] * (params["cr"] + params["rho_r"] * interaction)[:, None]
    return params["cr"] * params["reward0"] + params["rho_r"] * interaction[:, None]


def benchmfg_mf_garnet(num_states: int = 100, num_actions: int = 6, num_noises: int = 64,
                       branching_factor: int = 6, seed: int = 0, dynamics: str = "additive",
                       reward: str = "additive", game_type: str = "potential", eps: float = 1e-12,
                       relu_eps: float = 0.0, discount: float = BENCHMFG_DISCOUNT, initial_distribution=None,
                       kernel: str = "dense", dtype=None) -> MeanFieldGame:
    """MF-Garnet (Bench-MFG): a random game whose kernel and reward depend on mu,

        p(. | s, a, mu) ∝ relu(c_p P0(. | s, a) + rho_p C[s, a] mu)   (additive), or
                          P0(. | s, a) relu(c_p + rho_p C[s, a] mu)    (multiplicative),
        r(s, a, mu) = c_r R0(s, a) + rho_r (M mu)(s)                   (additive), or
                      R0(s, a) (c_r + rho_r (M mu)(s))                 (multiplicative),

    sampled by inverse CDF on ``num_noises`` atoms (so rounded to multiples of 1/N).  The
    arrays are Bench-MFG's draws for ``seed`` (``garnet_arrays``).  ``mf_garnet.yaml``:
    S = 100, A = 6, N = 64, branching 6, additive, potential.  C holds S^3 A numbers
    (48 MB at S = 100).  ``kernel``: "dense" (``RoundedGarnetKernel``, the default) or
    "noise" (Bench-MFG's own form, the [S, A, N] successor table): the same kernel.
    """
    if dynamics not in ("additive", "multiplicative") or reward not in ("additive", "multiplicative"):
        raise ValueError(f"dynamics and reward must be 'additive' or 'multiplicative', got {dynamics!r}, {reward!r}.")
    if num_noises < 2:
        raise ValueError(f"num_noises must be >= 2 (inverse-CDF sampling), got {num_noises}.")
    if kernel not in ("dense", "noise"):
        raise ValueError(f"kernel must be 'dense' or 'noise' for benchmfg_mf_garnet, got {kernel!r}.")
    if num_states < 2:
        raise ValueError(f"num_states must be >= 2, got {num_states}.")
    arrays = garnet_arrays(num_states, num_actions, branching_factor, seed, game_type)
    params = arrays | {"noise_prob": np.full(num_noises, 1.0 / num_noises), "eps": eps, "relu_eps": relu_eps}
    multiplicative = dynamics == "multiplicative"
    transition_fn = (RoundedGarnetKernel(multiplicative) if kernel == "dense" else
                     NoiseKernel(functools.partial(_garnet_successors, multiplicative=multiplicative)))
    return make_game(name="benchmfg_mf_garnet", num_states=num_states, num_actions=num_actions, discount=discount,
                     reward_fn=functools.partial(_garnet_reward, multiplicative=reward == "multiplicative"),
                     transition_fn=transition_fn, params=params,
                     initial_distribution=_initial(num_states, initial_distribution), dtype=dtype)


# ------------------------------------------------------------- Bench-MFG's exploitability

def benchmfg_exploitability(game: MeanFieldGame, policy: jax.Array, initial_mean_field: jax.Array,
                            horizon: int = BENCHMFG_HORIZON, steps: int = BENCHMFG_EXPLOITABILITY_STEPS
                            ) -> jax.Array:
    """Bench-MFG's exploitability (``exploitability_jax``), on this library's operators:

        mu_pi = Phi^steps(initial_mean_field)  (``steps`` renormalized push-forwards, the
                                                kernel rebuilt at each iterate),
        V_pi, V* = H - 1 Bellman sweeps from zero (evaluation and max), frozen at mu_pi,
        exploitability = <mu_pi, V* - V_pi>

    (weighted by mu_pi, not mu_0; unregularized; the greedy policy of the sweeps is not
    used).  It depends on where the mean field starts: Bench-MFG passes its algorithm's
    current mean field.
    """
    dtype = game.initial_distribution.dtype
    policy = jnp.asarray(policy, dtype)

    def push(mu, _):
        joint = mu[:, None] * policy
        new = push_forward(game.transition(jnp.int32(0), joint), joint)
        return new / new.sum(), None

    mu, _ = jax.lax.scan(push, jnp.asarray(initial_mean_field, dtype), None, length=steps)
    joint = mu[:, None] * policy
    if horizon < 2:
        return jnp.zeros((), dtype)
    q_pi = truncated_q_values(game, joint, policy, 0.0, sweeps=horizon - 1)
    q_star = truncated_q_values(game, joint, None, 0.0, sweeps=horizon - 1)
    return jnp.dot(mu, max_over_actions(q_star) - sum_over_actions(policy * q_pi))

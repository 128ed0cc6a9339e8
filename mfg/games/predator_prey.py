"""OpenSpiel's multi-population predator-prey MFG (``python_mfg_predator_prey``).

Perolat et al. 2022, "Scaling up Mean Field Games with Online Mirror Descent", section 5.4.
P populations on a size x size grid (square with clamped edges, or a torus).  Each
decision epoch an agent of population i at cell z collects

    r_i(z, mu_t) = -c log(rho_i,t(z) + 1e-25) + sum_j R[i, j] rho_j,t(z)

(rho_j,t the distribution of population j; R[i, j] > 0: i is attracted to j), then
moves by its action (stay, +x, +y, -y, -x; clamped to the grid) and then by a noise move
(stay w.p. 1 - p, each of the four moves w.p. p/4; clamped again).  Horizon 10, size 5,
3 populations, p = 0.8, c = 1 by default, as in OpenSpiel.

Multi-population as one population.  The state is (population, x, y), S = P size^2,
index i size^2 + x size + y; agents never change population.  The mean field carries
each population's mass 1/P (the initial distribution is the populations' initial
distributions divided by P) and rho_j = mu(j, .) / mu(j, .).sum().  The values of the
game are then the populations' values averaged with weights 1/P, so our exploitability
is OpenSpiel's NashConv (a sum over populations) divided by P; best responses and
equilibria are those of the multi-population game.

Quirk of OpenSpiel 2.0.2 (not copied; it cannot change exploitability): at t = 0 its
rewards read the initial distribution with the index of the later epochs' layout
(population-major vs cell-major), so the t = 0 densities are wrong.  Epoch-0 positions do
not depend on the policy, so this adds the same constant to every policy's return.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from mfg.game import MeanFieldGame, make_game
from mfg.games._common import fixed_kernel, stationary_discount

__all__ = ["predator_prey", "DEFAULT_REWARD_MATRIX", "default_initial_positions"]

# OpenSpiel's action order: moves (dx, dy).
MOVES = ((0, 0), (1, 0), (0, 1), (0, -1), (-1, 0))
DEFAULT_REWARD_MATRIX = ((0.0, -1.0, 1.0), (1.0, 0.0, -1.0), (-1.0, 1.0, 0.0))
OPENSPIEL_EPSILON = 1e-25


def default_initial_positions(size: int) -> list[tuple[int, int]]:
    """OpenSpiel's three-population start: (0, 0), (size-1, 0) and (0, size-1)."""
    return [(0, 0), (size - 1, 0), (0, size - 1)]


def _reward(params, t, mu):
    P = params["reward_matrix"].shape[0]
    per_population = mu.reshape(P, -1)
    rho = per_population / per_population.sum(axis=1, keepdims=True)        # [P, cells]
    own = -params["congestion"] * jnp.log(rho + params["log_eps"])          # [P, cells]
    interaction = params["reward_matrix"] @ rho                              # [P, cells]
    return (own + interaction).reshape(-1)[:, None] * jnp.ones((1, len(MOVES)), mu.dtype)


def _successors(size: int, geometry: str) -> np.ndarray:
    """[cells, A, 5] successor cells: action move then noise move, each clamped (or wrapped)."""
    x, y = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    x, y = x.reshape(-1), y.reshape(-1)

    def move(px, py, d):
        nx, ny = px + d[0], py + d[1]
        if geometry == "torus":
            return nx % size, ny % size
        return np.clip(nx, 0, size - 1), np.clip(ny, 0, size - 1)

    table = np.zeros((size * size, len(MOVES), len(MOVES)), np.int64)
    for a, action in enumerate(MOVES):
        ax, ay = move(x, y, action)
        for k, noise in enumerate(MOVES):
            nx, ny = move(ax, ay, noise)
            table[:, a, k] = nx * size + ny
    return table


def predator_prey(
    size: int = 5, horizon: int | None = 10, reward_matrix: Any = DEFAULT_REWARD_MATRIX,
    initial_positions: Any = None, initial_distribution: Any = None, noise_probability: float = 0.8, congestion_coeff: float = 1.0,
    geometry: str = "square", kernel: str = "pull", discount: float | None = None, dtype=None,
) -> MeanFieldGame:
    """Predator-prey with P populations (P = len(reward_matrix)), S = P size^2, A = 5.

    Args:
      reward_matrix: [P, P] interaction R (default: 0 chases 1, flees 2, cyclically).
      initial_positions: one (x, y) start cell per population (default: three corners,
        as OpenSpiel); ignored when ``initial_distribution`` is given.
      initial_distribution: [P, size, size] per-population distributions (each summing
        to 1), indexed [population, x, y].
      geometry: "square" (clamped edges, OpenSpiel's default) or "torus".
    """
    R = np.asarray(reward_matrix, np.float64)
    if R.ndim != 2 or R.shape[0] != R.shape[1]:
        raise ValueError(f"reward_matrix must be square [P, P], got shape {R.shape}.")
    P = R.shape[0]
    if geometry not in ("square", "torus"):
        raise ValueError(f"geometry must be 'square' or 'torus', got {geometry!r}.")
    if not 0 <= noise_probability <= 1:
        raise ValueError(f"noise_probability must lie in [0, 1], got {noise_probability}.")
    if initial_distribution is None:
        positions = default_initial_positions(size) if initial_positions is None else initial_positions
        if len(positions) != P:
            raise ValueError(f"initial_positions needs one (x, y) per population ({P}), got {len(positions)}.")
        initial_distribution = np.zeros((P, size, size))
        for i, (px, py) in enumerate(positions):
            initial_distribution[i, px, py] = 1.0
    init = np.asarray(initial_distribution, np.float64)
    if init.shape != (P, size, size):
        raise ValueError(f"initial_distribution must have shape [P, size, size] = {(P, size, size)}, got {init.shape}.")
    sums = init.reshape(P, -1).sum(axis=1)
    if np.any(init < 0) or not np.allclose(sums, 1.0):
        raise ValueError(f"each population's initial distribution must be non-negative and sum to 1, got sums {sums}.")

    cells = size * size
    cell_successors = _successors(size, geometry)                                   # [cells, A, 5]
    offsets = (np.arange(P) * cells)[:, None, None, None]
    next_state = (cell_successors[None] + offsets).reshape(P * cells, len(MOVES), len(MOVES))
    noise = np.array([1.0 - noise_probability] + [noise_probability / 4.0] * 4)
    probs = np.broadcast_to(noise, next_state.shape)
    kernel_params, transition_fn = fixed_kernel(kernel, next_state, probs)
    params = {"reward_matrix": R, "congestion": congestion_coeff, "log_eps": OPENSPIEL_EPSILON, **kernel_params}
    return make_game(
        name="predator_prey", num_states=P * cells, num_actions=len(MOVES), horizon=horizon,
        discount=stationary_discount(horizon, discount),
        reward_fn=_reward, transition_fn=transition_fn, params=params,
        initial_distribution=init.reshape(-1) / P, mean_field="state",
        state_shape=(P, size, size), dtype=dtype,
    )

"""MFAX's environments (repository CWibault/mfax, source only), with its definitions and defaults.

MFAX states a game as a deterministic individual step plus idiosyncratic noise atoms, and
its push-forward wrappers give, per (state, action), a short list of successors with
probabilities: this library's ``SparseTransition``.  Its episodes are finite
(``max_steps_in_episode`` = 30 decisions, t = 0..29), discounted by the algorithm's
``discount_factor`` (0.99 in every shipped config); exploitability weights the returns by
mu_0, as here.

Two features need care:

* rewards read the *next* aggregate state (linear-quadratic: the next mean position
  m_{t+1}).  Without common noise m_{t+1} is a function of L_t, so these games use the
  state-action mean field and compute m_{t+1} = mean(push(P_t, L_t)) inside the reward;
* the last decision (t = 29) earns MFAX's terminal reward instead of the step reward.

The two toy games are ported with common noise off (MFAX's environment default; its
training configs switch it on).  The macroeconomics model (``mfax_endogenous``, an
Aiyagari economy) always carries common noise in MFAX: an aggregate productivity z_t.
A realized path z_0..z_{T-1} is a parameter of the game here, so that the game given a
path is an ordinary finite-horizon ``MeanFieldGame``; MFAX's exploitability under common
noise is the mean over sampled paths of each path's exploitability, its best response
knowing the path (backward induction on the realized flow), which
``common_noise_exploitability`` computes with one vmap over paths.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from mfg.game import MeanFieldGame, make_game
from mfg.oracles import exploitability
from mfg.transitions import ComposedTransition, SparseTransition, pull_index

__all__ = ["mfax_linear_quadratic", "mfax_beach_bar", "mfax_endogenous", "endogenous_noise_paths",
           "with_common_noise", "common_noise_exploitability", "MFAX_HORIZON", "MFAX_DISCOUNT",
           "ENDOGENOUS_HORIZON", "ENDOGENOUS_DISCOUNT"]

MFAX_HORIZON = 30       # max_steps_in_episode of both toy games
MFAX_DISCOUNT = 0.99    # discount_factor of every shipped config


def _static_sparse(params, t, joint):
    """The toy games' fixed kernel: MFAX's flat successor table (with its transpose for a
    gather push when ``pull_sources`` is given), or a move then the noise (``then_*``)."""
    del t, joint
    first = SparseTransition(params["next_state"], params["probs"], params.get("pull_sources"))
    if "then_next_state" not in params:
        return first
    return ComposedTransition(first, SparseTransition(params["then_next_state"], params["then_probs"]))


# From this many (state, action) pairs on, the toy games store their kernel in the form
# with fewer gathers ("composed" for the linear-quadratic game, "pull" for the beach bar);
# below it, launches dominate and the flat table's fewer kernels are faster (measured,
# exploitability of the uniform policy: LQ at S = 99 0.53 ms flat against 0.67 composed;
# at S = 999 6.5 against 3.6; beach bar at S = 10,001 34 against 25 with the gather push).
AUTO_KERNEL_MIN_PAIRS = 4096


def _auto(kernel: str, pairs: int, large: str) -> str:
    return (large if pairs >= AUTO_KERNEL_MIN_PAIRS else "sparse") if kernel == "auto" else kernel


def _toy_kernel(kind: str, deterministic: np.ndarray, noisy_of_move, probs: np.ndarray, num_states: int) -> dict:
    """The params of a toy game's kernel in storage ``kind``.

    ``deterministic`` [S, A] is the noiseless move, ``noisy_of_move`` maps a cell m to its
    noisy successors, and ``probs`` [K] weighs them and the noiseless one (MFAX's order).
    "sparse": MFAX's [S, A, K] table; "pull": the same with its transpose (gather push);
    "composed": the move (one successor) then the noise on the cell reached ([S, 1, K]),
    which is the same kernel when the noise depends on that cell alone."""
    if kind not in ("sparse", "pull", "composed"):
        raise ValueError(f"kernel must be 'sparse', 'pull' or 'composed', got {kind!r}.")
    if kind == "composed":
        cells = np.arange(num_states)
        then = np.concatenate([noisy_of_move(cells[:, None]), cells[:, None]], axis=-1)[:, None, :]
        return {"next_state": deterministic[..., None].astype(np.int32), "probs": np.ones(deterministic.shape + (1,)),
                "then_next_state": then.astype(np.int32), "then_probs": np.broadcast_to(probs, then.shape).copy()}
    table = np.concatenate([noisy_of_move(deterministic[..., None]), deterministic[..., None]], axis=-1)
    params = {"next_state": table.astype(np.int32), "probs": np.broadcast_to(probs, table.shape).copy()}
    if kind == "pull":
        params["pull_sources"] = pull_index(table, num_states)
    return params


# ----------------------------------------------------------------------- linear-quadratic

def _next_mean(params, joint):
    """m_{t+1} = sum_s s push(P, L_t)(s) = sum_{s,a} L_t(s, a) E[s' | s, a]: the next mean
    position (no common noise), through the kernel's fixed expected next position
    ([S, A], computed once when the game is built) instead of a push every epoch."""
    return jnp.sum(joint * params["next_position"])


def _lq_reward(params, t, joint):
    gap = _next_mean(params, joint) - jnp.arange(joint.shape[0], dtype=joint.dtype)     # m_{t+1} - s
    a = params["actions"]
    step = (-params["c_action"] * a[None, :] ** 2 + params["q"] * a[None, :] * gap[:, None]
            - 0.5 * params["kappa"] * gap[:, None] ** 2)
    terminal = jnp.broadcast_to(-0.5 * params["c_term"] * gap[:, None] ** 2, step.shape)
    return jnp.where(t >= params["horizon"] - 1, terminal, step)


def _float32_gaussian_weights(atoms_per_side: int) -> np.ndarray:
    """MFAX's noise weights, computed (as it does) in float32: pdf(k) / sum, k = -n..n."""
    k = np.arange(-atoms_per_side, atoms_per_side + 1, dtype=np.float32)
    pdf = np.exp(np.float32(-0.5) * k ** 2) / np.sqrt(np.float32(2.0 * np.pi))
    return (pdf / pdf.sum()).astype(np.float32).astype(np.float64)


def mfax_linear_quadratic(num_states: int = 99, actions=(-3, -2, -1, 0, 1, 2, 3), kappa: float = 0.5,
                          c_action: float = 0.5, q: float = 0.1, c_term: float = 1.0, sigma: float = 1.0,
                          rho: float = 0.5, atoms_per_side: int = 3, idio_noise: bool = True,
                          horizon: int = MFAX_HORIZON, discount: float = MFAX_DISCOUNT,
                          kernel: str = "auto", dtype=None) -> MeanFieldGame:
    """MFAX's linear-quadratic game (Perrin et al. 2020, Wu et al. 2025 parameters):

        x' = clip(round(x + a + sigma sqrt(1 - rho^2) k), 0, S - 1),  k ~ N(0, 1) on -3..3,
        r_t = -c_a a^2 + q a (m_{t+1} - x) - kappa/2 (m_{t+1} - x)^2,   t < T - 1,
        r_{T-1} = -c_term/2 (m_T - x)^2,

    m the mean position; S = 99 states, 7 actions, T = 30 decisions, gamma = 0.99.  The
    noise weights are MFAX's, rounded to float32 as it computes them.  ``kernel``:
    "composed" (the move, then the noise on the cell reached: 1 entry per (s, a) and 8
    per cell instead of 8 per (s, a)), "sparse" (MFAX's table), "pull" (that table with a
    gather push), or "auto" (composed from ``AUTO_KERNEL_MIN_PAIRS`` pairs on, else
    sparse); the same kernel in every form.
    """
    actions = np.asarray(actions, np.float64)
    x = np.arange(num_states)[:, None, None]
    deterministic = np.clip(x + actions[None, :, None], 0, num_states - 1)
    atoms = np.arange(-atoms_per_side, atoms_per_side + 1, dtype=np.float32)
    scale = np.float32(sigma) * np.sqrt(np.float32(1.0 - rho ** 2))
    shifts = (scale * atoms).astype(np.float64)

    def noisy_of_move(move):          # [..., 1] cells -> [..., K] noisy successors
        return np.clip(np.round(move + shifts), 0, num_states - 1)

    weights = _float32_gaussian_weights(atoms_per_side) if idio_noise else np.zeros(2 * atoms_per_side + 1)
    probs = np.concatenate([weights, [0.0 if idio_noise else 1.0]])     # MFAX appends the noiseless move
    kernel = _auto(kernel, num_states * len(actions), "composed")
    params = _toy_kernel(kernel, deterministic[..., 0], noisy_of_move, probs / probs.sum(), num_states)
    params |= {"actions": actions, "kappa": kappa, "c_action": c_action, "q": q, "c_term": c_term,
               "horizon": np.int32(horizon)}
    # E[s' | s, a] in float64, for the reward's next mean position (the kernel is fixed)
    position = np.arange(num_states, dtype=np.float64)
    if "then_next_state" in params:     # the noise's mean position after each cell moved to
        position = np.sum(params["then_probs"][:, 0, :] * position[params["then_next_state"][:, 0, :]], axis=-1)
    params["next_position"] = np.sum(params["probs"] * position[params["next_state"]], axis=-1)
    return make_game(name="mfax_linear_quadratic", num_states=num_states, num_actions=len(actions),
                     horizon=horizon, discount=discount, reward_fn=_lq_reward, transition_fn=_static_sparse,
                     params=params, initial_distribution=np.full(num_states, 1.0 / num_states),
                     mean_field="state_action", dtype=dtype)


# ---------------------------------------------------------------------------- beach bar

def _project(previous, proposed, bar):
    """MFAX's ``_project_to_legal``: a move onto or across the bar stops next to it."""
    from_left = (previous < bar) & (proposed >= bar)
    from_right = (previous > bar) & (proposed <= bar)
    return np.where(from_right, bar + 1, np.where(from_left, bar - 1, proposed))


def _beach_bar_reward(params, t, joint):
    distance = jnp.abs(params["bar"] - jnp.arange(joint.shape[0], dtype=joint.dtype))
    return -distance[:, None] - jnp.abs(params["actions"])[None, :] / joint.shape[0]


def mfax_beach_bar(num_states: int = 101, bar_location: int = 50, actions=tuple(range(-5, 6)),
                   noise=(-2, -1, 0, 1, 2), noise_probs=(0.05, 0.1, 0.7, 0.1, 0.05), idio_noise: bool = True,
                   horizon: int = MFAX_HORIZON, discount: float = MFAX_DISCOUNT, kernel: str = "auto",
                   dtype=None) -> MeanFieldGame:
    """MFAX's 1-D beach bar, bar open throughout (no common noise):

        x' = proj(x, clip(proj(x, clip(x + a)) + eps)),  eps ~ noise_probs on -2..2,
        r(x, a) = -|bar - x| - |a| / S,

    where proj stops a move that reaches or crosses the bar next to it (the bar cell is
    never entered; mu_0 is uniform off it).  S = 101, 11 actions (-5..5), T = 30,
    gamma = 0.99.  MFAX draws the bar uniformly in [floor(S/4), ceil(3S/4)) at every reset;
    here it is a parameter (``benchmarks/peers/golden_mfax.py`` reads MFAX's draws).  The
    reward does not depend on the mean field: it is an MDP, whatever its name.  ``kernel``:
    "sparse" (MFAX's table), "pull" (with a gather push) or "auto" (pull from
    ``AUTO_KERNEL_MIN_PAIRS`` pairs on); not "composed": the noise is projected against
    the start cell, which at the bar cell itself is not the cell moved to.
    """
    if not 0 < bar_location < num_states - 1:
        raise ValueError(f"bar_location must be in [1, {num_states - 2}], got {bar_location}.")
    actions = np.asarray(actions, np.int64)
    x = np.arange(num_states)[:, None, None]
    deterministic = _project(x, np.clip(x + actions[None, :, None], 0, num_states - 1), bar_location)

    def noisy_of_move(move):          # [S, A, 1] cells moved to -> [S, A, K], projected from x
        return _project(x, np.clip(move + np.asarray(noise), 0, num_states - 1), bar_location)

    weights = np.asarray(noise_probs, np.float64) if idio_noise else np.zeros(len(noise))
    kernel = _auto(kernel, num_states * len(actions), "pull")
    if kernel not in ("sparse", "pull"):
        raise ValueError(f"kernel must be 'sparse' or 'pull' for the beach bar (its noise is projected from "
                         f"the start cell, not the cell moved to), got {kernel!r}.")
    probs = np.concatenate([weights, [0.0 if idio_noise else 1.0]])
    params = _toy_kernel(kernel, deterministic[..., 0], noisy_of_move, probs / probs.sum(), num_states)
    params |= {"actions": actions.astype(np.float64), "bar": float(bar_location)}
    mu0 = np.full(num_states, 1.0)
    mu0[bar_location] = 0.0
    return make_game(name="mfax_beach_bar", num_states=num_states, num_actions=len(actions), horizon=horizon,
                     discount=discount, reward_fn=_beach_bar_reward, transition_fn=_static_sparse, params=params,
                     initial_distribution=mu0 / mu0.sum(), dtype=dtype)


# ------------------------------------------------------------- the macroeconomics model

ENDOGENOUS_HORIZON = 128      # its max_steps_in_episode
ENDOGENOUS_DISCOUNT = 0.95    # discount_factor of its shipped configs (configs/endogenous_*.yaml)


def _geometric_grid(lower: float, upper: float, size: int) -> np.ndarray:
    """MFAX's grid per state dimension: clip(geomspace(lb + p, ub + p, n) - p, 0), p = max(|lb|, 0.25)."""
    pivot = max(abs(lower), 0.25)
    return np.clip(np.geomspace(lower + pivot, upper + pivot, size) - pivot, 0.0, None)


def _endogenous_prices(params, mu, z):
    """Interest rate and wage of the Cobb-Douglas firm at aggregate capital K = E[wealth]
    and labour L = E[income]:  r = e^z alpha (L / (K + 1e-6))^(1 - alpha),
    w = e^z (1 - alpha) (K / (L + 1e-6))^alpha."""
    mu = mu.reshape(params["wealth_grid"].shape[0], params["income_grid"].shape[0])
    capital = jnp.sum(mu.sum(1) * params["wealth_grid"])
    labour = jnp.sum(mu.sum(0) * params["income_grid"])
    alpha = params["alpha"]
    interest = jnp.exp(z) * alpha * (labour / (capital + 1e-6)) ** (1 - alpha)
    wage = jnp.exp(z) * (1 - alpha) * (capital / (labour + 1e-6)) ** alpha
    return interest, wage


def _endogenous_wealth(params, t, mu):
    """[S] cash on hand (1 + r_t) x_wealth + w_t x_income at epoch t."""
    interest, wage = _endogenous_prices(params, mu, params["common_noise"][t])
    return (1.0 + interest) * params["state_wealth"] + wage * params["state_income"]


def _endogenous_reward(params, t, mu):
    """CRRA utility of consumption c = wealth - wealth (1 - a), u(c) = c^(1 - sigma) / (1 - sigma);
    the last decision consumes everything: u(wealth)."""
    wealth = _endogenous_wealth(params, t, mu)[:, None]
    next_wealth = wealth * (1.0 - params["actions"][None, :])
    sigma = params["sigma"]
    step = (wealth - next_wealth) ** (1.0 - sigma) / (1.0 - sigma)        # MFAX's rounding: wealth - next
    terminal = jnp.broadcast_to(wealth ** (1.0 - sigma) / (1.0 - sigma), step.shape)
    return jnp.where(t >= params["horizon"] - 1, terminal, step)


def _geometric_interval(params, x):
    """clip(searchsorted(grid, x, side="right") - 1, 0, n - 2) on the geometric wealth grid,
    without the binary search (a third of a transition's build at S = 1,000): the
    logarithm's guess floor(log((x + p) / (lb + p)) / log(ratio)), then corrected by one
    step down or up against the grid itself, so that the result is searchsorted's
    exactly (the guess is off by at most one ulp-sized rounding;
    ``test_geometric_interval_is_searchsorted`` checks it)."""
    grid = params["wealth_grid"]
    last = grid.shape[0] - 2
    guess = jnp.floor(jnp.log((x + params["wealth_pivot"]) / params["wealth_base"]) / params["wealth_log_ratio"])
    index = jnp.clip(guess, 0, last).astype(jnp.int32)
    # rounding can put the guess one interval off, never two: one corrective step
    index = jnp.where(x < grid[index], index - 1, jnp.where(x >= grid[index + 1], index + 1, index))
    return jnp.clip(index, 0, last)


def _wealth_split(params, t, mu):
    """Next wealth cash_t (1 - a) split linearly between its two grid neighbours (MFAX's
    ``distribute``, its weights rounded to float32 as it does): ([S, A, 2] wealth indices,
    [S, A, 2] weights)."""
    wealth_grid = params["wealth_grid"]
    wealth = _endogenous_wealth(params, t, mu)[:, None]
    next_wealth = wealth * (1.0 - params["actions"][None, :])                         # [S, A]
    low = _geometric_interval(params, next_wealth)
    left, right = wealth_grid[low], wealth_grid[low + 1]
    frac = jnp.clip((next_wealth - left) / jnp.maximum(right - left, jnp.finfo(wealth_grid.dtype).eps), 0.0, 1.0)
    split = jnp.stack([1.0 - frac, frac], axis=-1).astype(jnp.float32).astype(mu.dtype)
    return jnp.stack([low, low + 1], axis=-1), split


def _income_moves(wealth_index, income_index, num_income: int, income_atoms, income_probs, idio_noise: bool):
    """The income step after the wealth step, the same for every action and every epoch
    (built once, on the host): y moved by the atoms (clipped), plus MFAX's noiseless
    successor (weight 1 - idio): ([S, 1, N + 1] successors, [S, 1, N + 1] weights),
    normalized as MFAX normalizes."""
    moved = np.clip(income_index[:, None] + np.asarray(income_atoms)[None, :], 0, num_income - 1)
    next_state = np.concatenate([moved, income_index[:, None]], axis=-1) + (wealth_index * num_income)[:, None]
    weights = np.concatenate([float(idio_noise) * np.asarray(income_probs, np.float64), [1.0 - float(idio_noise)]])
    return next_state[:, None, :].astype(np.int32), np.broadcast_to(weights / weights.sum(), next_state.shape)[:, None, :].copy()


def _endogenous_composed(params, t, mu):
    """The wealth step (2 successors) then the income step (4): a ``ComposedTransition``,
    6 entries per (s, a) where the flat table has 8 (``kernel="sparse"``)."""
    wealth_index, split = _wealth_split(params, t, mu)
    income = params["state_income_index"][:, None, None]
    num_income = params["income_grid"].shape[0]
    total = split.sum(-1, keepdims=True)
    first = SparseTransition((wealth_index * num_income + income).astype(jnp.int32),
                             split / jnp.where(total > 0, total, 1.0))
    return ComposedTransition(first, SparseTransition(params["income_next_state"], params["income_weights"]))


def _endogenous_sparse(params, t, mu):
    """MFAX's own flat table: (wealth neighbour, income atom) pairs, then the two
    noiseless successors (weight 1 - idio): 8 successors per (s, a)."""
    num_income = params["income_grid"].shape[0]
    wealth_index, split = _wealth_split(params, t, mu)
    income = params["state_income_index"][:, None, None]
    noisy_income = jnp.clip(income + params["income_atoms"][None, None, :], 0, num_income - 1)   # [S, 1, N]
    noisy_next = (wealth_index[..., :, None] * num_income + noisy_income[..., None, :]).reshape(
        wealth_index.shape[:2] + (-1,))
    still_next = wealth_index * num_income + income
    noisy_probs = (split[..., :, None] * params["income_probs"][None, None, None, :]).reshape(noisy_next.shape)
    still_probs = (1.0 - params["idio_noise"]) * split
    next_state = jnp.concatenate([noisy_next, jnp.broadcast_to(still_next, split.shape)], axis=-1)
    probs = jnp.concatenate([params["idio_noise"] * noisy_probs, still_probs], axis=-1)
    total = probs.sum(-1, keepdims=True)
    return SparseTransition(next_state.astype(jnp.int32), probs / jnp.where(total > 0, total, 1.0))


def mfax_endogenous(wealth_states: int = 200, income_states: int = 5, wealth_bounds=(0.0, 99.0),
                    income_bounds=(0.1, 2.0), num_actions: int = 20, sigma: float = 2.0, alpha: float = 0.36,
                    income_atoms=(-1, 0, 1), income_probs=(0.1, 0.8, 0.1), idio_noise: bool = True,
                    common_noise: np.ndarray | None = None, horizon: int = ENDOGENOUS_HORIZON,
                    discount: float = ENDOGENOUS_DISCOUNT, kernel: str = "composed", dtype=None) -> MeanFieldGame:
    """MFAX's endogenous-price economy (``pushforward/endogenous``, an Aiyagari model):

        cash_t = (1 + r_t) x + w_t y,   x' = cash_t (1 - a)  (split between grid neighbours),
        y' = y moved by {-1, 0, +1} grid steps w.p. (0.1, 0.8, 0.1),
        r_t = e^{z_t} alpha (L_t / K_t)^(1 - alpha),  w_t = e^{z_t} (1 - alpha) (K_t / L_t)^alpha,
        u = (cash_t a)^(1 - sigma) / (1 - sigma);  the last decision consumes all: u(cash_t),

    with K_t, L_t the mean wealth and income under mu_t.  Wealth x on a geometric grid of
    200 points in [0, 99], income y of 5 in [0.1, 2]: S = 1,000 states (wealth-major,
    s = 5 i_x + i_y), 20 actions a (the consumed share, midpoints of 20 bins of [0, 1]),
    T = 128 decisions, mu_0 uniform, gamma = 0.95 (its configs).

    Args:
      common_noise: the realized productivity path z_0..z_{T-1} ([T]; default zeros,
        no common noise).  MFAX draws z_0 = 0, z_{t+1} = 0.9 z_t + 0.03 N(0, 1)
        (``endogenous_noise_paths``); its environment has no switch to turn it off
        (docs/peers.md, M7): ``nu = 0`` there gives the zero path.
      kernel: "composed" (the wealth step then the income step, 2 + 4 entries per
        (s, a)) or "sparse" (MFAX's flat table of 8); the same kernel either way.
    """
    if kernel not in ("composed", "sparse"):
        raise ValueError(f"kernel must be 'composed' or 'sparse', got {kernel!r}.")
    wealth_grid = _geometric_grid(*wealth_bounds, wealth_states)
    income_grid = _geometric_grid(*income_bounds, income_states)
    path = np.zeros(horizon) if common_noise is None else np.asarray(common_noise, np.float64)
    if path.shape != (horizon,) or not np.all(np.isfinite(path)):
        raise ValueError(f"common_noise must be a finite path of length horizon = {horizon}, got shape "
                         f"{path.shape}.")
    if sigma == 1.0:
        raise ValueError("sigma = 1 (log utility) is not MFAX's CRRA form u = c^(1 - sigma) / (1 - sigma); "
                         "use sigma != 1.")
    edges = np.linspace(0.0, 1.0, num_actions + 1)
    wealth_index, income_index = np.divmod(np.arange(wealth_states * income_states), income_states)
    pivot = max(abs(wealth_bounds[0]), 0.25)
    params = {"wealth_grid": wealth_grid, "income_grid": income_grid, "wealth_pivot": pivot,
              "wealth_base": wealth_bounds[0] + pivot,
              "wealth_log_ratio": np.log((wealth_bounds[1] + pivot) / (wealth_bounds[0] + pivot)) / (wealth_states - 1),
              "state_wealth": wealth_grid[wealth_index], "state_income": income_grid[income_index],
              "state_income_index": income_index.astype(np.int32),
              "actions": 0.5 * (edges[:-1] + edges[1:]), "sigma": sigma, "alpha": alpha,
              "income_atoms": np.asarray(income_atoms, np.int32),
              "income_probs": np.asarray(income_probs, np.float64), "idio_noise": float(idio_noise),
              "common_noise": path, "horizon": np.int32(horizon)}
    if kernel == "composed":
        params["income_next_state"], params["income_weights"] = _income_moves(
            wealth_index, income_index, income_states, income_atoms, income_probs, idio_noise)
    return make_game(name="mfax_endogenous", num_states=wealth_states * income_states, num_actions=num_actions,
                     horizon=horizon, discount=discount, reward_fn=_endogenous_reward,
                     transition_fn=_endogenous_composed if kernel == "composed" else _endogenous_sparse,
                     params=params,
                     state_shape=(wealth_states, income_states),
                     initial_distribution=np.full(wealth_states * income_states, 1.0 / (wealth_states * income_states)),
                     dtype=dtype)


def endogenous_noise_paths(key: jax.Array, num_paths: int, horizon: int = ENDOGENOUS_HORIZON,
                           rho: float = 0.9, nu: float = 0.03, dtype=jnp.float32) -> jax.Array:
    """[num_paths, horizon] AR(1) productivity paths z_0 = 0, z_{t+1} = rho z_t + nu xi_t,
    xi_t ~ N(0, 1) (MFAX's law; its own draws follow its key splitting, not this one)."""
    shocks = nu * jax.random.normal(key, (num_paths, horizon - 1), dtype)

    def step(z, xi):
        z = rho * z + xi
        return z, z

    _, tail = jax.lax.scan(step, jnp.zeros(num_paths, dtype), shocks.T)
    return jnp.concatenate([jnp.zeros((1, num_paths), dtype), tail]).T


def with_common_noise(game: MeanFieldGame, path: jax.Array) -> MeanFieldGame:
    """The same game on another realized common-noise path ([T]; traceable, so it vmaps)."""
    if "common_noise" not in game.params:
        raise ValueError(f"game {game.name!r} has no common noise (no 'common_noise' parameter).")
    return game.replace(params=game.params | {"common_noise": jnp.asarray(path, game.initial_distribution.dtype)})


def common_noise_exploitability(game: MeanFieldGame, policy: jax.Array, paths: jax.Array, temperature=0.0):
    """MFAX's exploitability under common noise: the mean over realized paths ([P, T]) of
    each path's ``Exploitability`` (mean field rolled out on the path, best response by
    backward induction knowing it), for a policy [T, S, A] that does not see the noise.
    Returns the per-path ``Exploitability`` (leading axis P); ``.unregularized.mean()`` is MFAX's number."""
    return jax.vmap(lambda path: exploitability(with_common_noise(game, path), policy, temperature))(paths)

"""MFGLib 0.3.0's example games, vectorized, with MFGLib's definitions and defaults.

Conventions mapped from MFGLib: its horizon ``T`` means epochs 0..T, i.e. our
``horizon = T + 1`` (a reward at every epoch, the last one included); its kernels are
indexed p[s', s, a] where ours are P[s, a, s']; multi-dimensional state spaces are
flattened in row-major order (``state_shape`` keeps the grid).  All games read the
state-action mean field L where MFGLib does (``mean_field="state_action"``).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from mfg.game import MeanFieldGame, make_game, state_marginal
from mfg.games._common import combine_moves, fixed_kernel, grid_kernel, static_dense, stationary_discount
from mfg.transitions import DenseTransition, SparseTransition

__all__ = [
    "left_right",
    "rock_paper_scissors",
    "susceptible_infected",
    "beach_bar",
    "crowd_motion",
    "linear_quadratic",
    "building_evacuation",
    "conservative_treasure_hunting",
    "random_linear",
]


# ------------------------------------------------------------------ left_right (Cui 2021)

def _left_right_reward(params, t, joint):
    mu = state_marginal(joint)
    zeros = jnp.zeros(2, joint.dtype)
    return jnp.stack([zeros, zeros - mu[1], zeros - 2 * mu[2]])


def _go_to_action_state(num_states: int, num_actions: int) -> np.ndarray:
    probs = np.zeros((num_states, num_actions, num_states))
    for a in range(num_actions):
        probs[:, a, 1 + a] = 1.0
    return probs


def left_right(mu0=(1.0, 0.0, 0.0), dtype=None) -> MeanFieldGame:
    """Choose left (a=0) or right (a=1); pay the crowd on your side, twice on the right.

    S = 3 (start, left, right), A = 2, horizon 2 (MFGLib T = 1).
    r(left) = -mu(left), r(right) = -2 mu(right).
    """
    return make_game(
        name="left_right", num_states=3, num_actions=2, horizon=2,
        reward_fn=_left_right_reward, transition_fn=static_dense,
        params={"probs": _go_to_action_state(3, 2)}, initial_distribution=mu0,
        mean_field="state_action", dtype=dtype,
    )


# ------------------------------------------------------- rock_paper_scissors (Shapley)

def _rps_reward(params, t, joint):
    mu = state_marginal(joint)
    ones = jnp.ones(3, joint.dtype)
    return jnp.stack([
        0 * ones,
        ones * (2 * mu[3] - mu[2]),
        ones * (4 * mu[1] - 2 * mu[3]),
        ones * (6 * mu[2] - 3 * mu[1]),
    ])


def rock_paper_scissors(horizon: int = 2, mu0=(1.0, 0.0, 0.0, 0.0), dtype=None) -> MeanFieldGame:
    """Generalized (non-zero-sum) rock-paper-scissors; S = 4, A = 3 (MFGLib T = 1)."""
    return make_game(
        name="rock_paper_scissors", num_states=4, num_actions=3, horizon=horizon,
        reward_fn=_rps_reward, transition_fn=static_dense,
        params={"probs": _go_to_action_state(4, 3)}, initial_distribution=mu0,
        mean_field="state_action", dtype=dtype,
    )


# ---------------------------------------------------------- susceptible_infected (SIS)

def _sis_reward(params, t, joint):
    return params["reward"]


def _sis_transition(params, t, joint):
    infected = state_marginal(joint)[1]
    p_infect = params["infection"] * infected
    one, zero = jnp.ones_like(p_infect), jnp.zeros_like(p_infect)
    susceptible = jnp.stack([
        jnp.stack([1.0 - p_infect, p_infect]),  # go out: infected w.p. 0.81 mu(I)
        jnp.stack([one, zero]),                   # distance: stay susceptible
    ])
    recovering = jnp.broadcast_to(params["recovery"], (2, 2))
    return DenseTransition(jnp.stack([susceptible, recovering]))


def susceptible_infected(horizon: int | None = 51, mu0=(0.4, 0.6), discount: float | None = None,
                         dtype=None) -> MeanFieldGame:
    """SIS epidemic: susceptible agents go out (a=0) or distance (a=1).

    Going out infects with probability 0.9^2 mu(I); infected agents recover w.p. 0.3.
    Costs: distancing 0.5, being infected 1.  S = A = 2, horizon 51 (MFGLib T = 50);
    ``horizon=None`` gives the stationary discounted game (discount 0.9 by default).
    """
    reward = np.array([[0.0, -0.5], [-1.0, -1.5]])
    return make_game(
        name="susceptible_infected", num_states=2, num_actions=2, horizon=horizon,
        discount=stationary_discount(horizon, discount),
        reward_fn=_sis_reward, transition_fn=_sis_transition,
        params={"reward": reward, "infection": 0.9**2, "recovery": np.array([0.3, 0.7])},
        initial_distribution=mu0, mean_field="state_action", dtype=dtype,
    )


# ----------------------------------------------------------------- beach_bar (Perrin 2020)

def _log_crowd_reward(params, t, joint):
    """base[t?] - log(mu(s) + eps), broadcast over actions (beach bar, crowd motion)."""
    base = params["base"]
    base = base[t] if base.ndim == 3 else base
    mu = state_marginal(joint)
    return base - jnp.log(mu + params["log_eps"])[:, None]


def beach_bar(
    horizon: int | None = 3, n: int = 4, bar_loc: int = 2, log_eps: float = 1e-20,
    p_still: float = 0.5, mu0=None, kernel: str = "shift", discount: float | None = None, dtype=None,
) -> MeanFieldGame:
    """Beach bar (MFGLib's): n cells on a line (clamped ends, as MFGLib implements it).

    Actions move -1/0/+1 then noise -1/0/+1 w.p. (1-p)/2, p, (1-p)/2.  Reward
    -d(s, bar) - |move|/n - log(mu(s) + eps) with MFGLib's rolled-index distance.
    MFGLib defaults: T = 2 (horizon 3), n = 4, bar_loc = 2.  ``horizon=None`` gives the
    stationary discounted game (discount 0.9 by default).
    """
    if not 0 <= bar_loc < n:
        raise ValueError(f"bar_loc must lie in [0, n-1] = [0, {n - 1}], got {bar_loc}.")
    if not 0 <= p_still <= 1:
        raise ValueError(f"p_still must be a probability in [0, 1], got {p_still}.")
    distance = -np.minimum(np.roll(np.arange(n), bar_loc), np.roll(np.arange(n)[::-1], bar_loc + 1))
    base = distance[:, None] - np.array([1.0, 0.0, 1.0])[None, :] / n
    offsets, probs = combine_moves([-1, 0, 1], [-1, 0, 1], [(1 - p_still) / 2, p_still, (1 - p_still) / 2])
    kernel_params, transition_fn = grid_kernel(kernel, probs, offsets, (n,), "clamp")
    params = {"base": base, "log_eps": log_eps, **kernel_params}
    return make_game(
        name="beach_bar", num_states=n, num_actions=3, horizon=horizon,
        discount=stationary_discount(horizon, discount),
        reward_fn=_log_crowd_reward, transition_fn=transition_fn, params=params,
        initial_distribution=np.full(n, 1.0 / n) if mu0 is None else mu0,
        mean_field="state_action", dtype=dtype,
    )


# -------------------------------------------------------------- crowd_motion (Perolat 2021)

# MFGLib draws the bar's random walk with torch's RNG (seed 0); this is that path for the
# default T = 3, read back from MFGLib's reward tables (benchmarks/peers/golden_mfglib.py).
MFGLIB_CROWD_MOTION_BAR_PATH = ((10, 10), (10, 10), (9, 11), (9, 11))


def _bar_walk(horizon, length, width, loc_change_freq, seed):
    """A bar random walk with MFGLib's rule, drawn with numpy (MFGLib uses torch)."""
    rng = np.random.default_rng(seed)
    loc = (length // 2, width // 2)
    path = [loc]
    for i in range(horizon - 1):
        if (i + 1) % loc_change_freq == 0:
            new = (loc[0] + rng.choice([-1, 1]), loc[1] + rng.choice([-1, 1]))
            if 0 <= new[0] < length and 0 <= new[1] < width:
                loc = new
        path.append(loc)
    return tuple(path)


def crowd_motion(
    horizon: int = 4, torus_l: int = 20, torus_w: int = 20, loc_change_freq: int = 2,
    c: float = 10.0, log_eps: float = 1e-10, p_still: float = 0.5, seed: int = 0,
    bar_path=None, mu0=None, kernel: str = "shift", dtype=None,
) -> MeanFieldGame:
    """Crowd motion (MFGLib's 2D beach bar): an l x w grid (clamped), 5 actions.

    Moves (+1,0), (-1,0), (0,+1), (0,-1), (0,0), then noise in the same 4 directions
    w.p. (1-p)/4 each and none w.p. p.  Reward c (1 - |s - bar_t|_1 / (l + w))
    - log(mu(s) + eps).  The bar follows ``bar_path`` (one cell per epoch); by default
    MFGLib's seed-0 path for the default sizes, otherwise a numpy walk with MFGLib's rule.
    """
    if bar_path is None:
        default = (horizon, torus_l, torus_w, loc_change_freq, seed) == (4, 20, 20, 2, 0)
        bar_path = MFGLIB_CROWD_MOTION_BAR_PATH if default else _bar_walk(
            horizon, torus_l, torus_w, loc_change_freq, seed)
    bar_path = np.asarray(bar_path)
    if bar_path.shape != (horizon, 2):
        raise ValueError(f"bar_path must have shape [horizon, 2] = ({horizon}, 2), got {bar_path.shape}.")
    i, j = np.meshgrid(np.arange(torus_l), np.arange(torus_w), indexing="ij")
    dist = (np.abs(i[None] - bar_path[:, 0, None, None]) + np.abs(j[None] - bar_path[:, 1, None, None]))
    closeness = 1.0 - dist / (torus_l + torus_w)
    base = c * np.broadcast_to(closeness.reshape(horizon, -1, 1), (horizon, torus_l * torus_w, 5))
    moves = [(1, 0), (-1, 0), (0, 1), (0, -1), (0, 0)]
    x = (1 - p_still) / 4
    offsets, probs = combine_moves(moves, moves, [x, x, x, x, p_still])
    kernel_params, transition_fn = grid_kernel(kernel, probs, offsets, (torus_l, torus_w), "clamp")
    params = {"base": base, "log_eps": log_eps, **kernel_params}
    S = torus_l * torus_w
    return make_game(
        name="crowd_motion", num_states=S, num_actions=5, horizon=horizon,
        reward_fn=_log_crowd_reward, transition_fn=transition_fn, params=params,
        initial_distribution=np.full(S, 1.0 / S) if mu0 is None else mu0,
        mean_field="state_action", state_shape=(torus_l, torus_w), dtype=dtype,
    )


# ------------------------------------------------------- linear_quadratic (Perrin 2020)

def _lq_mean(params, joint):
    return jnp.sum(params["positions"] * state_marginal(joint))


def _lq_reward(params, t, joint):
    m_t = _lq_mean(params, joint)
    x = params["positions"][:, None]
    gap = m_t - x
    running = (params["action_cost"] + params["q_actions"] * gap
               - 0.5 * params["kappa"] * gap**2) * params["delta"]
    terminal = jnp.broadcast_to(-0.5 * params["c_term"] * gap**2, running.shape)
    return jnp.where(t == params["last_epoch"], terminal, running)


def _lq_transition(params, t, joint):
    m_t = _lq_mean(params, joint)
    el, m = params["el"], params["m"]
    s = jnp.arange(params["positions"].shape[0])[:, None, None]
    a = jnp.arange(params["q_actions"].shape[0])[None, :, None]
    # Same operation order as MFGLib, so that rounding ties break identically.
    drift = (params["k"] * ((m_t - s) + el) + a) - m
    target = (s - el) + drift * params["delta"] + params["noise_shift"][None, None, :]
    nxt = jnp.clip(jnp.round(target), -el, el).astype(jnp.int32) + el
    probs = jnp.broadcast_to(params["noise_probs"], nxt.shape)
    return SparseTransition(nxt, probs)


def linear_quadratic(
    horizon: int = 4, el: int = 5, m: int = 2, sigma: float = 3.0, delta: float = 0.1,
    k: float = 1.0, q: float = 0.01, kappa: float = 0.5, c_term: float = 1.0, mu0=None,
    dtype=None,
) -> MeanFieldGame:
    """MFGLib's discretized linear-quadratic game on positions -el..el, actions -m..m.

    x' = round(x + (k (m_t - x) + a) delta + sigma eps sqrt(delta)), clipped, with eps on
    7 points 3 sigma-spaced and Gaussian weights (as MFGLib, which scales eps by sigma
    twice).  Running reward (-a^2/2 + q a (m_t - x) - kappa/2 (m_t - x)^2) delta; the last
    epoch pays -c_term/2 (m_t - x)^2.  m_t is the population's mean position.
    """
    n_s = 2 * el + 1
    eps = np.arange(-3, 4) * sigma
    eps_pr = np.exp(-0.5 * eps**2) / math.sqrt(2 * math.pi)
    eps_pr = eps_pr / eps_pr.sum()
    actions = np.arange(-m, m + 1)
    params = {
        "positions": np.arange(-el, el + 1).astype(np.float64),
        "action_cost": np.broadcast_to(-0.5 * actions**2.0, (n_s, 2 * m + 1)),
        "q_actions": q * actions.astype(np.float64),
        "kappa": kappa, "delta": delta, "c_term": c_term, "k": k,
        "noise_shift": sigma * eps * math.sqrt(delta), "noise_probs": eps_pr,
        "el": np.int32(el), "m": np.int32(m), "last_epoch": np.int32(horizon - 1),
    }
    return make_game(
        name="linear_quadratic", num_states=n_s, num_actions=2 * m + 1, horizon=horizon,
        reward_fn=_lq_reward, transition_fn=_lq_transition, params=params,
        initial_distribution=np.full(n_s, 1.0 / n_s) if mu0 is None else mu0,
        mean_field="state_action", dtype=dtype,
    )


# ---------------------------------------------------- building_evacuation (Perolat 2021)

def _evacuation_reward(params, t, joint):
    mu = jnp.maximum(state_marginal(joint), params["log_eps"])
    r = -params["eta"] * jnp.log(mu) + params["exit_bonus"]
    return jnp.broadcast_to(r[:, None], joint.shape)


def building_evacuation(
    horizon: int = 4, n_floor: int = 5, floor_l: int = 10, floor_w: int = 10,
    log_eps: float = 1e-20, eta: float = 1.0, evac_r: float = 10.0, mu0=None,
    kernel: str = "pull", dtype=None,
) -> MeanFieldGame:
    """Multi-floor evacuation: move on a floor, take stairs at opposite corners.

    Actions: 0 +l, 1 -l, 2 -w, 3 +w (clamped), 4 downstairs (only at (0, 0)),
    5 upstairs (only at (l-1, w-1)).  Reward -eta log(mu(s)) + evac_r on the ground floor.
    """
    f, i, j = np.meshgrid(np.arange(n_floor), np.arange(floor_l), np.arange(floor_w), indexing="ij")
    f, i, j = f.ravel(), i.ravel(), j.ravel()
    at_down = (i == 0) & (j == 0)
    at_up = (i == floor_l - 1) & (j == floor_w - 1)
    targets = [
        (f, np.minimum(i + 1, floor_l - 1), j),
        (f, np.maximum(i - 1, 0), j),
        (f, i, np.maximum(j - 1, 0)),
        (f, i, np.minimum(j + 1, floor_w - 1)),
        (np.where(at_down, np.maximum(f - 1, 0), f), i, j),
        (np.where(at_up, np.minimum(f + 1, n_floor - 1), f), i, j),
    ]
    nxt = np.stack([(ff * floor_l + ii) * floor_w + jj for ff, ii, jj in targets], axis=1)[..., None]
    S = n_floor * floor_l * floor_w
    kernel_params, transition_fn = fixed_kernel(kernel, nxt, np.ones(nxt.shape))
    params = {"eta": eta, "log_eps": log_eps, "exit_bonus": np.where(f == 0, evac_r, 0.0), **kernel_params}
    return make_game(
        name="building_evacuation", num_states=S, num_actions=6, horizon=horizon,
        reward_fn=_evacuation_reward, transition_fn=transition_fn, params=params,
        initial_distribution=np.full(S, 1.0 / S) if mu0 is None else mu0,
        mean_field="state_action", state_shape=(n_floor, floor_l, floor_w), dtype=dtype,
    )


# ------------------------------------------- conservative_treasure_hunting (Guo 2022)

def _treasure_gap(joint):
    """d_s = ||L - e_(s,s)||^2 for each s: distance of the population from 'all at s, a=s'."""
    return jnp.sum(joint**2) - 2 * jnp.diagonal(joint) + 1.0


def _treasure_reward(params, t, joint):
    gap = _treasure_gap(joint) / 2.0
    r = jnp.diag(params["treasure"] * (1 - gap))
    return jnp.where(t == 0, jnp.zeros_like(r), r)


def _treasure_transition(params, t, joint):
    n = joint.shape[0]
    c = params["crowding"][t]
    gap = _treasure_gap(joint)[:, None, None]
    denom = 1.0 + n * c * gap
    eye = jnp.eye(n, dtype=joint.dtype)[None, :, :]          # [1, a, s']
    probs = (c * gap) / denom + eye / denom
    start = jnp.broadcast_to(eye, (n, n, n))
    return DenseTransition(jnp.where(t == 0, start, probs))


def conservative_treasure_hunting(
    horizon: int = 6, n: int = 3, r=(1.0, 1.0, 1.0), c=(1.0, 1.0, 1.0, 1.0, 1.0), mu0=None,
    dtype=None,
) -> MeanFieldGame:
    """Guo et al. 2022's treasure hunting (MFGLib's defaults: T = 5, n = 3).

    At t = 0 each agent jumps to the cell it picks; afterwards it stays at the picked cell
    w.p. growing with how concentrated the population is (c_t), else moves uniformly.
    Reward r_s (1 - ||L_t - e_(s,s)||^2 / 2) for choosing a = s at s, from t = 1 on.
    """
    if len(r) != n:
        raise ValueError(f"r must have n = {n} entries, got {len(r)}.")
    if len(c) != horizon - 1:
        raise ValueError(f"c must have horizon - 1 = {horizon - 1} entries, got {len(c)}.")
    return make_game(
        name="conservative_treasure_hunting", num_states=n, num_actions=n, horizon=horizon,
        reward_fn=_treasure_reward, transition_fn=_treasure_transition,
        params={"treasure": np.asarray(r, float), "crowding": np.concatenate([[0.0], c])},
        initial_distribution=np.full(n, 1.0 / n) if mu0 is None else mu0,
        mean_field="state_action", dtype=dtype,
    )


# --------------------------------------------------------------------- random_linear

def _random_linear_reward(params, t, joint):
    return params["r1"] @ joint + params["r2"]


def _random_linear_transition(params, t, joint):
    logits = jnp.einsum("tsk,ka->tsa", params["p1"], joint) + params["p2"]   # [s', s, a]
    return DenseTransition(jnp.transpose(jax.nn.softmax(logits, axis=0), (1, 2, 0)))


def random_linear(
    horizon: int = 4, n: int = 5, m: float = 10.0, seed: int = 0, tensors=None, mu0=None,
    dtype=None,
) -> MeanFieldGame:
    """Rewards and (softmax) transitions affine in the mean field L (MFGLib's random_linear).

    r = r1 L + r2,  P(s'|s,a) = softmax_{s'}(sum_k p1[s', s, k] L[k, a] + p2[s', s, a]),
    with entries uniform in [-m, m].  MFGLib draws them with torch's RNG: with the default
    (n, m, seed) = (5, 10, 0) the tensors are MFGLib's own seed-0 draws (uniform policy's
    exploitability 25.9469 at horizon 4, as in MFGLib); other settings draw them with numpy
    from ``seed`` (pass MFGLib's as ``tensors={"r1", "r2", "p1", "p2"}`` to reproduce them).
    """
    if tensors is None and (n, m, seed) == (5, 10.0, 0):
        from mfg.games._mfglib_draws import MFGLIB_RANDOM_LINEAR_SEED0

        tensors = MFGLIB_RANDOM_LINEAR_SEED0
    if tensors is None:
        rng = np.random.default_rng(seed)
        draw = lambda *shape: 2 * m * rng.random(shape) - m
        tensors = {"r1": draw(n, n), "r2": draw(n, n), "p1": draw(n, n, n), "p2": draw(n, n, n)}
    return make_game(
        name="random_linear", num_states=n, num_actions=n, horizon=horizon,
        reward_fn=_random_linear_reward, transition_fn=_random_linear_transition,
        params={k: np.asarray(v, float) for k, v in tensors.items()},
        initial_distribution=np.full(n, 1.0 / n) if mu0 is None else mu0,
        mean_field="state_action", dtype=dtype,
    )

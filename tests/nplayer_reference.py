"""Brute-force reference for the N-player game: every player's state and action enumerated.

Independent of mfg.nplayer (no counts, no Fourier transform): the joint state of all N
players, S^N of them, and the joint action of the N - 1 others, A^(N-1), are enumerated
with itertools; player 0's values come from plain backward induction (finite horizon)
or value iteration (stationary) over joint states.  Only for tiny N.
"""

from __future__ import annotations

import itertools

import numpy as np

from mfg.transitions import to_dense


def _tables(game, t, states, actions):
    """reward [S, A] and kernel [S, A, S] at the empirical mean field of (states, actions)."""
    import jax.numpy as jnp

    S, A, N = game.num_states, game.num_actions, len(states)
    joint = np.zeros((S, A))
    for s, a in zip(states, actions):
        joint[s, a] += 1.0 / N
    view = joint.sum(1) if game.mean_field == "state" else joint
    view = jnp.asarray(view, game.initial_distribution.dtype)
    reward = np.asarray(game.reward_fn(game.params, jnp.int32(t), view))
    kernel = np.asarray(to_dense(game.transition_fn(game.params, jnp.int32(t), view), S).probs)
    return reward, kernel


def player_zero_q(game, t, others_policy, next_values, N):
    """Q[joint state index, a0]: player 0's action a0, the others drawing from others_policy [S, A]."""
    S, A = game.num_states, game.num_actions
    joints = list(itertools.product(range(S), repeat=N))
    q = np.zeros((len(joints), A))
    for j, states in enumerate(joints):
        for a0 in range(A):
            total = 0.0
            for rest in itertools.product(range(A), repeat=N - 1):
                actions = (a0,) + rest
                weight = np.prod([others_policy[s, a] for s, a in zip(states[1:], rest)])
                if weight == 0.0:
                    continue
                reward, kernel = _tables(game, t, states, actions)
                future = 0.0
                for k, nxt in enumerate(joints):
                    p = np.prod([kernel[s, a, s2] for s, a, s2 in zip(states, actions, nxt)])
                    future += p * next_values[k]
                total += weight * (reward[states[0], a0] + float(game.discount) * future)
            q[j, a0] = total
    return joints, q


def _backup(q, own_policy, joints, temperature):
    if own_policy is None:          # best response
        if temperature > 0:
            top = q.max(1, keepdims=True)
            return (top + temperature * np.log(np.exp((q - top) / temperature).sum(1, keepdims=True)))[:, 0]
        return q.max(1)
    pi = np.array([own_policy[states[0]] for states in joints])
    entropy = -np.sum(np.where(pi > 0, pi * np.log(np.where(pi > 0, pi, 1.0)), 0.0), axis=1)
    return np.sum(pi * q, axis=1) + temperature * entropy


def brute_force_returns(game, policy, N, temperature=0.0, deviation=None, sweeps=400):
    """(J of player 0's best response, J of the policy, J of the deviation) by enumeration."""
    S = game.num_states
    mu0 = np.asarray(game.initial_distribution)
    policy = np.asarray(policy)
    deviation = policy if deviation is None else np.asarray(deviation)
    joints = list(itertools.product(range(S), repeat=N))
    # Player 0 from mu_0, the others from mu_0 (finite horizon) or the policy's stationary
    # mean field (stationary games), as docs/nplayer.md defines the game.
    if game.horizon:
        nu = mu0
    else:
        from mfg.oracles import induced_mean_field

        nu = np.asarray(induced_mean_field(game, policy)).sum(-1)
    start = np.array([mu0[states[0]] * np.prod([nu[s] for s in states[1:]]) for states in joints])
    values = [np.zeros(len(joints)) for _ in range(3)]
    epochs = range(game.horizon - 1, -1, -1) if game.horizon else range(sweeps)
    for t in epochs:
        pi_t = policy[t] if game.horizon else policy
        dev_t = deviation[t] if game.horizon else deviation
        tt = t if game.horizon else 0
        new = []
        for i, own in enumerate((None, pi_t, dev_t)):
            _, q = player_zero_q(game, tt, pi_t, values[i], N)
            new.append(_backup(q, own, joints, temperature))
        values = new
    return tuple(float(start @ v) for v in values)

"""Makes docs/img/nplayer_rate.png: exact eps_N - eps_MF against N at three equilibria.

    python docs/figures/nplayer_rate.py

The regularized equilibria (lambda = 0.2, damped fixed point) of stationary SIS (read
over state counts), a stationary Garnet (S = 3, A = 2) and crowd modelling (size 4,
horizon 5); the exact N-player exploitability (mfg.nplayer.exact_exploitability) minus
the mean-field one, on log-log axes, with the least-squares slope of each and the
N^-1/2 reference.  About three minutes on 2 cores.
"""

import os

import jax

jax.config.update("jax_enable_x64", True)

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mfg import exploitability, games  # noqa: E402
from mfg.nplayer import exact_exploitability, marginal_game  # noqa: E402
from solvers import FixedPoint, run  # noqa: E402

LAMBDA = 0.2
CASES = {
    "SIS (S=2), stationary": (marginal_game(games.susceptible_infected(horizon=None)), [2, 4, 8, 16, 32, 64, 128, 256]),
    "Garnet (S=3, A=2), stationary": (games.garnet(num_states=3, num_actions=2), [2, 4, 8, 16, 32, 64]),
    "crowd modelling (S=4), horizon 5": (games.crowd_modelling(size=4, horizon=5), [2, 4, 8, 16]),
}

fig, ax = plt.subplots(figsize=(6.4, 4.6), constrained_layout=True)
markers = iter("osD")
for label, (game, sizes) in CASES.items():
    policy = run(FixedPoint(temperature=LAMBDA, damping=0.2), game, 400, chunk_size=400).state.policy
    mean_field = float(exploitability(game, policy, LAMBDA).regularized)
    gaps = np.array([float(exact_exploitability(game, policy, n, LAMBDA).regularized) - mean_field for n in sizes])
    slope = np.polyfit(np.log(sizes), np.log(gaps), 1)[0]
    tail = np.polyfit(np.log(sizes[-3:]), np.log(gaps[-3:]), 1)[0]
    print(f"{label}: gaps {np.array2string(gaps, precision=4)}; slope {slope:.2f} (last three sizes {tail:.2f})")
    ax.plot(sizes, gaps, marker=next(markers), label=f"{label}: slope {slope:.2f} (last 3: {tail:.2f})")
n = np.array([2, 256])
ax.plot(n, 0.5 * n ** -0.5, "k:", label="N^-1/2 (reference)")
ax.set(xscale="log", yscale="log", xlabel="players N", ylabel="exact eps_N - eps_MF  (λ = 0.2)",
       title="Mean-field equilibria in the N-player game")
ax.legend(fontsize=8, loc="upper right")  # the data run from the upper left to the lower right
out = os.path.join(os.path.dirname(__file__), "..", "img", "nplayer_rate.png")
fig.savefig(out, dpi=120)
print("wrote", os.path.normpath(out))

"""Makes docs/img/nac_convergence.png: NAC on stationary crowd modelling (S = 10).

    python docs/figures/nac_convergence.py

Exact-expectation NAC (one-hot features) and online NAC (N = 10^4 agents, K = 10 TD
steps, 4 seeds) against the exact exploitability, lambda = 1, gamma = 0.9.
"""

import os

import jax

jax.config.update("jax_enable_x64", True)

from experiments.plots import plot_convergence  # noqa: E402
from mfg import games  # noqa: E402
from solvers import NaturalActorCritic, fit_rate, run  # noqa: E402

game = games.crowd_modelling(horizon=None)
exact = run(NaturalActorCritic(learning_rate=0.02, temperature=1.0, mean_field_rate=0.1), game, 500)
online = run(NaturalActorCritic(learning_rate=0.01, temperature=1.0, mean_field_rate=0.1, critic="sampled",
                                num_agents=10_000, td_steps=10), game, 500,
             key=jax.random.split(jax.random.key(0), 4))
for label, result in (("exact", exact), ("online", online)):
    expl = result.metrics["exploitability"]
    print(f"{label}: final exploitability {expl[..., -1]}, fitted rate {fit_rate(expl.reshape(-1, expl.shape[-1]).mean(0), skip=10):.2f}")
out = os.path.join(os.path.dirname(__file__), "..", "img", "nac_convergence.png")
plot_convergence({"exact NAC": exact.metrics, "online NAC, N=10^4": online.metrics}, out,
                 title="NAC on crowd modelling (stationary, S=10, $\\lambda$=1, $\\gamma$=0.9)")
print("wrote", os.path.normpath(out))

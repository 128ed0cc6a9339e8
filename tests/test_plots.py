"""Convergence plots: written as PNG from the driver's metrics, seeds as bands."""

import numpy as np

from experiments.plots import plot_convergence
from mfg import games
from solvers import NaturalActorCritic, run


def test_convergence_plot_is_written(tmp_path):
    game = games.susceptible_infected(horizon=None)
    single = run(NaturalActorCritic(learning_rate=0.05), game, 20).metrics
    batch = {k: np.stack([v, v * 1.1]) for k, v in single.items()}
    path = plot_convergence({"one seed": single, "two seeds": batch}, str(tmp_path / "sub" / "conv.png"),
                            title="SIS")
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000

"""Convergence plots from a run's metrics (matplotlib, Agg backend; extra ``[plot]``).

``plot_convergence({"label": metrics, ...}, path)`` draws, for one or several runs side
by side (metrics as returned by ``solvers.run``: name -> array [iterations] or
[seeds, iterations], seeds shown as their median with the min-max band):

  left   exploitability (regularized, solid; unregularized, dashed) against iteration,
         log-log (power-law rates are straight lines);
  right  the residuals: mean-field residual, mean-field step, policy KL change and,
         when present, the critic error, log-scale against iteration (colour: the run,
         as on the left; line style: the residual).
"""

from __future__ import annotations

import os
from typing import Mapping

import numpy as np

__all__ = ["plot_convergence", "RESIDUALS"]

RESIDUALS = {
    "mean_field_residual": r"mean-field residual $\|\Gamma_2(\pi_t, L_t) - L_t\|_1$",
    "mean_field_step": r"mean-field step $\|L_{t+1} - L_t\|_1$",
    "policy_kl": r"policy change $E_\mu\,KL(\pi_{t+1}\|\pi_t)$",
    "critic_error": r"critic error $\|Q_w - Q^\pi\|_d$",
}


def _band(values: np.ndarray):
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        return values, None, None
    return np.median(values, 0), values.min(0), values.max(0)


def _positive(values):
    # Exploitabilities reach -1e-12 at convergence (round-off): show them at the floor.
    return np.maximum(values, 1e-16)


def plot_convergence(runs: Mapping[str, Mapping[str, np.ndarray]], path: str, title: str | None = None) -> str:
    """Write the convergence figure of ``runs`` (label -> metrics) to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = ["-", "--", ":", "-."]
    drawn: set[str] = set()
    for index, (label, metrics) in enumerate(runs.items()):
        color = colors[index % len(colors)]
        for name, style, suffix in (("exploitability", "-", ""), ("exploitability_unreg", "--", " (unregularized)")):
            if name not in metrics:
                continue
            mid, low, high = _band(metrics[name])
            t = np.arange(1, mid.shape[-1] + 1)
            left.plot(t, _positive(mid), style, color=color, label=label + suffix)
            if low is not None:
                left.fill_between(t, _positive(low), _positive(high), color=color, alpha=0.2)
        for k, name in enumerate(RESIDUALS):
            if name not in metrics or not np.nanmax(np.abs(metrics[name])) > 1e-12:
                continue  # absent, or identically zero (e.g. a one-hot critic's error)
            mid, low, high = _band(metrics[name])
            t = np.arange(1, mid.shape[-1] + 1)
            right.plot(t, _positive(mid), styles[k % len(styles)], color=color)
            drawn.add(name)
            if low is not None:
                right.fill_between(t, _positive(low), _positive(high), color=color, alpha=0.15)
    left.set(xscale="log", yscale="log", xlabel="iteration t", ylabel="exploitability",
             title="exploitability of $\\pi_t$")
    right.set(yscale="log", xlabel="iteration t", ylabel="residual", title="residuals")
    left.legend(fontsize=8)
    # Runs are told apart by colour (left legend), residuals by line style (this one).
    from matplotlib.lines import Line2D
    proxies = [Line2D([], [], color="0.3", linestyle=styles[k % len(styles)], label=description)
               for k, (name, description) in enumerate(RESIDUALS.items()) if name in drawn]
    if proxies:
        right.legend(handles=proxies, fontsize=7, loc="best")
    for axis in (left, right):
        axis.grid(True, which="major", alpha=0.3)
    if title:
        fig.suptitle(title)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path

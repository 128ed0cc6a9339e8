"""Plots of a run (matplotlib, Agg backend; extra ``[plot]``): convergence, and the serverless comparison.

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

__all__ = ["plot_convergence", "RESIDUALS", "plot_latency_cdf", "plot_slo_vs_cpu", "plot_pressure",
           "plot_frontiers", "plot_online_training"]

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


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def _representatives(results: Mapping, family) -> dict:
    """One entry per family: single policies as they are, a swept baseline at its middle knob."""
    groups: dict = {}
    for name in results:
        groups.setdefault(family(name), []).append(name)
    return {names[len(names) // 2]: results[names[len(names) // 2]] for names in groups.values()}


def plot_latency_cdf(results: Mapping, path: str, family=None) -> str:
    """Request latency CDF (log x) per policy, seeds pooled; swept baselines at their middle knob."""
    from mfg.serverless.particles import latency_edges

    plt = _pyplot()
    family = family or (lambda name: name.split(" (")[0])
    fig, axis = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    edges = latency_edges()
    for name, result in _representatives(results, family).items():
        histogram = np.sum([run["histogram"] for run in result.runs], axis=0)
        cdf = np.cumsum(histogram)[:-1] / histogram.sum()          # P(T <= edge_k), k = 0..B
        axis.step(edges, cdf, where="post", label=name)
    axis.axvline(1.0, color="0.5", linestyle=":", label="SLO (1 s)")
    axis.set(xscale="log", xlabel="request latency (s)", ylabel="fraction of requests",
             title="latency CDF (requests past the last edge: timeout)", ylim=(0, 1.01))
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def plot_slo_vs_cpu(results: Mapping, path: str, family) -> str:
    """Every policy on the (allocated CPU, SLO violation rate) plane; sweeps joined, 95% CI bars."""
    plt = _pyplot()
    fig, axis = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    groups: dict = {}
    for name, result in results.items():
        groups.setdefault(family(name), []).append(result)
    markers = "os^Dv<>p*h"
    for index, (group, members) in enumerate(groups.items()):
        points = sorted((m.metric("allocated_cpu"), m.metric("slo_violation_rate")) for m in members)
        x = np.array([p[0][0] for p in points])
        y = np.maximum([p[1][0] for p in points], 1e-6)
        half = np.array([p[1][1] for p in points])
        # On a log axis an interval reaching below zero is drawn down to a tenth of the value.
        lower = np.minimum(half, 0.9 * y)
        axis.errorbar(x, y, xerr=[p[0][1] for p in points], yerr=[lower, half],
                      marker=markers[index % len(markers)], linestyle="-" if len(points) > 1 else "none",
                      capsize=3, label=group)
    axis.set(xscale="log", yscale="log", xlabel="allocated CPU (cores per function, log scale)",
             ylabel="SLO violation rate (share of requests)",
             title="SLO violations against allocated CPU (lower left is better)")
    from matplotlib.ticker import FormatStrFormatter

    axis.xaxis.set_major_formatter(FormatStrFormatter("%g"))
    axis.xaxis.set_minor_formatter(FormatStrFormatter("%g"))
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=8)
    return _save(fig, path)


def plot_pressure(results: Mapping, path: str, capacity_knee: float | None = None, family=None) -> str:
    """Cluster CPU pressure (allocated / capacity) over the day, seed 0; swept baselines at their middle knob."""
    plt = _pyplot()
    family = family or (lambda name: name.split(" (")[0])
    fig, axis = plt.subplots(figsize=(8, 4), constrained_layout=True)
    for name, result in _representatives(results, family).items():
        pressure = result.runs[0]["series"]["pressure"]
        axis.plot(np.arange(len(pressure)) / 60.0, pressure, label=name, linewidth=1)
    if capacity_knee is not None:
        axis.axhline(capacity_knee, color="0.4", linestyle=":", label=f"contention knee ({capacity_knee:g})")
    axis.set(xlabel="time of day (h)", ylabel="CPU pressure (allocated / capacity)",
             title="cluster pressure, the mean field every function sees")
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=8)
    return _save(fig, path)


def plot_frontiers(settings: Mapping[str, list], path: str, floor: Mapping[str, float] | None = None) -> str:
    """One panel per cluster setting: every policy on the (cores per function, SLO
    violations) plane, mean over evaluation days with their min-max as bars.

    ``settings``: setting -> rows with ``policy``, ``knob``, ``allocated_cores``,
    ``slo_violations`` and its ``slo_violations_range`` (``benchmarks/serverless_learned.py``'s
    means).  A family's swept knobs are joined by a line; each family has its own marker
    and colour, the legend sits below the panels (off the data), the axes fit the points,
    and ``floor`` (setting -> violations no policy avoids) is a dotted line.
    """
    plt = _pyplot()
    panels = list(settings)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.4), squeeze=False)
    markers = "os^Dv<>p*hX"
    families = list(dict.fromkeys(row["policy"] for rows in settings.values() for row in rows))
    # more families than the default cycle's 10 colours: a 20-colour map, so that no two
    # series share a colour (each also has its marker)
    colors = (plt.rcParams["axes.prop_cycle"].by_key()["color"] if len(families) <= 10
              else [plt.get_cmap("tab20")(i) for i in (0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19)])
    for axis, setting in zip(axes[0], panels):
        rows = settings[setting]
        for index, family in enumerate(families):
            members = sorted((r for r in rows if r["policy"] == family), key=lambda r: r["allocated_cores"])
            if not members:
                continue
            x = np.array([r["allocated_cores"] for r in members])
            y = np.array([r["slo_violations"] for r in members])
            low = y - np.array([r.get("slo_violations_range", [v, v])[0] for r, v in zip(members, y)])
            high = np.array([r.get("slo_violations_range", [v, v])[1] for r, v in zip(members, y)]) - y
            axis.errorbar(x, y, yerr=[low, high], marker=markers[index % len(markers)],
                          color=colors[index % len(colors)], linestyle="-" if len(members) > 1 else "none",
                          markersize=6, capsize=2, linewidth=1, label=family)
        if floor and setting in floor:
            axis.axhline(floor[setting], color="0.4", linestyle=":", linewidth=1, label="violations floor")
        axis.set(xscale="log", yscale="log", xlabel="allocated cores per function", title=setting)
        from matplotlib.ticker import FormatStrFormatter

        axis.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        axis.xaxis.set_minor_formatter(FormatStrFormatter("%g"))
        axis.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("SLO violations (share of requests)")
    handles = {}
    for axis in axes[0]:
        for handle, label in zip(*axis.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    # two legend columns per panel fit its width (labels up to ~30 characters at 8 pt)
    columns = max(1, min(4, 2 * len(panels), len(handles)))
    rows = -(-len(handles) // columns)
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=columns, fontsize=8,
               frameon=False)
    fig.tight_layout(rect=(0, min(0.5, (0.03 + 0.045 * rows) * (1.0 if len(panels) > 1 else 1.2)), 1, 1))
    return _save(fig, path)


def plot_online_training(histories: Mapping[str, Mapping[str, np.ndarray]], path: str,
                         phase_minutes: float | None = None) -> str:
    """The online learner's diagnostics per actor phase (``mfg.serverless.learned.History``):
    mean squared TD error, policy change (total variation), entropy, and the population's
    SLO violations and cores per function while it learns, one colour per run."""
    plt = _pyplot()
    panels = (("td_error", "mean squared TD error", True), ("policy_change", "policy change (TV)", True),
              ("entropy", "policy entropy (nats)", False), ("violations", "SLO violations", True),
              ("cores", "cores per function", False), ("pressure", "pressure", False))
    fig, axes = plt.subplots(2, 3, figsize=(12, 6), constrained_layout=True)
    for axis, (name, label, log) in zip(axes.ravel(), panels):
        for index, (run, history) in enumerate(histories.items()):
            values = np.asarray(history[name], np.float64)
            t = np.arange(1, values.size + 1) * (phase_minutes / 60.0 if phase_minutes else 1.0)
            axis.plot(t, np.maximum(values, 1e-12) if log else values, linewidth=1, label=run,
                      marker="os^Dv"[index % 5], markevery=max(1, values.size // 12), markersize=4)
        axis.set(ylabel=label, xlabel="training time (h)" if phase_minutes else "actor phase",
                 yscale="log" if log else "linear")
        axis.grid(True, alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(4, len(labels)), fontsize=8, frameon=False)
    return _save(fig, path)

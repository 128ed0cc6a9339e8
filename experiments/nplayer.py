"""The ``nplayer`` section of an experiment: the trained policy in the finite N-player game.

    nplayer: {sizes: [2, 10, 100, 1000], method: auto, episodes: 256, seed: 0}

For each N the policy's N-player exploitability is computed exactly where that is cheap
(``mfg.nplayer.exact_exploitability``; ``method: auto`` picks it when ``exact_size``
fits in memory and its work is below ``EXACT_WORK_MAX``) and sampled otherwise
(``mfg.nplayer.sampled_exploitability``: a lower bound from an adaptive deviation, an
upper bound from the hindsight deviator, 95% intervals).  Writes

    nplayer/results.json   every number, per N
    nplayer/table.md       the same as a table
    plots/nplayer.png      exploitability against N (log-log), the mean-field value as N = infinity
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = ["evaluate_nplayer", "plot_nplayer", "EXACT_WORK_MAX"]

# Work (complex logarithms of the Fourier evaluation plus entries of the others' law read
# by the backups) past which ``method: auto`` samples instead: about a minute on 2 cores.
EXACT_WORK_MAX = 3e9


def _epochs(game) -> int:
    return game.horizon if game.is_finite_horizon else 1


def _choose(game, n: int, method: str) -> str:
    from mfg.nplayer.exact import MEMORY_FRACTION, exact_size, machine_memory_bytes

    if method != "auto":
        return method
    size = exact_size(game, n)
    fits = size.bytes <= MEMORY_FRACTION * machine_memory_bytes()
    # Per epoch: the Fourier evaluation (complex logs) and the backups through the
    # [rows, M] law (stationary games repeat the backup until it converges).
    sweeps = _epochs(game) if game.is_finite_horizon else math.log(1e-14) / math.log(float(game.discount))
    work = size.log_evaluations * _epochs(game) + size.rows * size.configurations * sweeps
    return "exact" if fits and work <= EXACT_WORK_MAX else "sampled"


def evaluate_nplayer(section, game, policy, temperature: float, out_dir: Path, plots_dir: Path | None,
                     log: Callable[[str], None] = print, write: Callable[[Path, str], None] | None = None) -> dict:
    """Evaluate ``policy`` at each N of ``section.sizes``; write results, table and plot."""
    import jax

    from mfg.nplayer import exact_exploitability, sampled_exploitability
    from mfg.oracles import exploitability

    from mfg.nplayer import marginal_game

    write = write or (lambda path, text: path.write_text(text))
    policy = np.asarray(policy)
    if section.marginal:
        game = marginal_game(game)
    mean_field = exploitability(game, policy, temperature)
    rows = []
    sampled_sizes = []
    for n in section.sizes:
        method = _choose(game, n, section.method)
        if method == "exact":
            log(f"n-player: exact evaluation at N = {n}")
            e = exact_exploitability(game, policy, n, temperature)
            rows.append({"num_players": n, "method": "exact", "exploitability": float(e.regularized),
                         "exploitability_unregularized": float(e.unregularized), "value": float(e.policy_return)})
        else:
            sampled_sizes.append(n)
            rows.append({"num_players": n, "method": "sampled"})
    if sampled_sizes:
        log(f"n-player: sampled evaluation at N = {sampled_sizes} ({section.episodes} episodes each)")
        results = sampled_exploitability(game, policy, sampled_sizes, jax.random.key(section.seed),
                                         episodes=section.episodes, temperature=temperature,
                                         hindsight=section.hindsight, horizon=section.horizon)
        by_size = {r.num_players: r for r in results}
        for row in rows:
            r = by_size.get(row["num_players"]) if row["method"] == "sampled" else None
            if r is None:
                continue
            row |= {"deviation": r.deviation, "value": r.value.mean, "value_half_width": r.value.half_width,
                    "lower_bound": r.deviation_gain.mean, "lower_bound_half_width": r.deviation_gain.half_width,
                    "upper_bound": None if r.hindsight_gain is None else r.hindsight_gain.mean,
                    "upper_bound_half_width": None if r.hindsight_gain is None else r.hindsight_gain.half_width,
                    "horizon": r.horizon, "truncation_bound": r.truncation_bound}
    report = {"temperature": temperature, "mean_field_exploitability": float(mean_field.regularized),
              "mean_field_exploitability_unregularized": float(mean_field.unregularized), "sizes": rows}
    out_dir.mkdir(parents=True, exist_ok=True)
    write(out_dir / "results.json", json.dumps(report, indent=1))
    write(out_dir / "table.md", table_markdown(report))
    if plots_dir is not None:
        plots_dir.mkdir(parents=True, exist_ok=True)
        log(f"wrote {plot_nplayer(report, plots_dir / 'nplayer.png', game.name)}")
    return report


def _pm(mean, half) -> str:
    return "" if mean is None else f"{mean:.4g} ± {half:.2g}"


def table_markdown(report: dict) -> str:
    lines = [f"N-player exploitability (temperature {report['temperature']:g}); mean field (N = ∞): "
             f"{report['mean_field_exploitability']:.4g}", "",
             "| N | method | exploitability | lower bound (deviation) | upper bound (hindsight) | value |",
             "|---|---|---|---|---|---|"]
    for r in report["sizes"]:
        if r["method"] == "exact":
            lines.append(f"| {r['num_players']} | exact | {r['exploitability']:.6g} | | | {r['value']:.6g} |")
        else:
            lines.append(f"| {r['num_players']} | sampled | | {_pm(r['lower_bound'], r['lower_bound_half_width'])} "
                         f"({r['deviation']}) | "
                         f"{_pm(r.get('upper_bound'), r.get('upper_bound_half_width'))} | "
                         f"{_pm(r['value'], r['value_half_width'])} |")
    return "\n".join(lines) + "\n"


def plot_nplayer(report: dict, path: Path, title: str = "") -> Path:
    """Exploitability against N on log-log axes; bounds as error bars; N = infinity dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4), constrained_layout=True)
    exact = [r for r in report["sizes"] if r["method"] == "exact"]
    sampled = [r for r in report["sizes"] if r["method"] == "sampled"]
    floor = math.inf
    if exact:
        n = [r["num_players"] for r in exact]
        eps = [r["exploitability"] for r in exact]
        ax.plot(n, eps, "o-", label="exact")
        floor = min([floor] + [e for e in eps if e > 0])
    for key, marker, offset, label in (("lower_bound", "v", 0.97, "lower bound (a deviation)"),
                                       ("upper_bound", "^", 1.03, "upper bound (hindsight deviator)")):
        pts = [r for r in sampled if r.get(key) is not None]
        if not pts:
            continue
        n = np.array([r["num_players"] for r in pts]) * offset          # side by side, not on top of each other
        mean = np.array([r[key] for r in pts])
        half = np.array([r[key + "_half_width"] for r in pts])
        ax.errorbar(n, mean, yerr=half, fmt=marker, capsize=3, label=label)
        floor = min([floor] + [m for m in mean - half if m > 0])
    mf = report["mean_field_exploitability"]
    hidden = []
    if math.isfinite(floor) and mf < floor / 100:
        # A converged equilibrium's value (1e-12) would squash the data into the top of
        # the axis: say it instead of drawing it.
        hidden.append(f"mean field (N = ∞): {mf:.2g}, below the axis")
    elif mf > 0:
        ax.axhline(mf, ls="--", color="gray", label=f"mean field, N = ∞ ({mf:.2g})")
        floor = min(floor, mf)
    dropped = sum(1 for r in sampled for key in ("lower_bound", "upper_bound")
                  if r.get(key) is not None and r[key] - r[key + "_half_width"] <= 0)
    if dropped:
        hidden.append(f"{dropped} interval(s) reaching 0 or below are cut at the axis")
    ax.set_xscale("log")
    ax.set_yscale("log")
    if math.isfinite(floor):
        ax.set_ylim(bottom=floor / 3)
    if hidden:
        ax.text(0.02, 0.02, "\n".join(hidden), transform=ax.transAxes, fontsize=8, color="gray")
    ax.set(xlabel="players N", ylabel=f"N-player exploitability (λ = {report['temperature']:g})",
           title=f"{title}\nthe mean-field policy in the N-player game" if title else None)
    ax.legend(loc="upper right", fontsize=8)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path

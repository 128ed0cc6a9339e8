"""Memory an experiment needs, estimated from its config before anything is allocated.

A size that cannot fit (a grid of 10^9 states, 10^12 sampled agents, a million seeds) is
refused at once with the estimate and the machine's memory, instead of failing after a
long wait inside numpy or XLA (or swapping the machine to a halt).  The estimate is a
*lower bound* built from the arrays every run must hold, so that a refused config could
never have run; a config that passes may still need more (feature matrices, XLA's
temporaries), which the solvers report in the usual way.

    bytes per float  b = 4 (float32) or 8 (float64)
    solver arrays    3 T S A b per seed      (policy, Q-values, the best response's Q)
                     + 2 T S b per seed      (mean-field flow, values)
    dense kernel     S A S b                 (game.params.kernel = "dense", one epoch)
    sampled agents   24 N b/4 per seed       (state, action, reward of N = num_agents agents)
    evaluation       F (64 + 1440 x 8) per seed (F = evaluation.num_functions simulated
                     functions, their day of per-minute rates)
    N-player         16 N_max x episodes     (sampled players)

with T = max(horizon, 1), (S, A) from ``mfg.games.size_of``.
"""

from __future__ import annotations

import dataclasses

from experiments.config import ConfigError, ExperimentConfig

__all__ = ["Estimate", "estimate", "check_fits", "available_memory_bytes", "gib"]


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A lower bound on the bytes a run needs, by part (name -> bytes)."""

    parts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.parts.values())


def gib(n: float) -> str:
    return f"{n / 2**30:.3g} GiB"


def available_memory_bytes() -> tuple[int, int]:
    """(available, total) bytes of this machine's memory (``/proc/meminfo``, else sysconf)."""
    try:
        fields = {}
        with open("/proc/meminfo") as f:
            for line in f:
                name, value = line.split(":", 1)
                fields[name] = int(value.split()[0]) * 1024
        return fields.get("MemAvailable", fields["MemTotal"]), fields["MemTotal"]
    except (OSError, KeyError, ValueError):  # pragma: no cover - not Linux
        from mfg.nplayer.exact import machine_memory_bytes

        total = machine_memory_bytes()
        return total, total


def estimate(config: ExperimentConfig) -> Estimate:
    """The lower bound of the module docstring for ``config``."""
    from mfg.games import size_of

    b = 8 if config.precision == "float64" else 4
    seeds = config.run.seeds
    states, actions, horizon = size_of(config.game.name, **config.game.params)
    epochs = max(int(horizon or 1), 1)
    parts = {f"solver arrays (T x S x A = {epochs} x {states} x {actions}, {seeds} seed(s))":
             (3 * epochs * states * actions + 2 * epochs * states) * b * seeds}
    if config.game.params.get("kernel") == "dense":
        parts[f"dense kernel (S x A x S = {states} x {actions} x {states})"] = states * actions * states * b
    params = config.solver.params
    if params.get("critic") == "sampled":
        agents = int(params.get("num_agents", 10_000))
        parts[f"sampled agents ({agents} x {seeds} seed(s))"] = 6 * agents * b * seeds
    if config.evaluation is not None:
        e = config.evaluation
        parts[f"evaluation ({e.num_functions} functions x {e.seeds} seed(s))"] = \
            e.num_functions * (64 + 1440 * 8) * e.seeds
    if config.nplayer is not None and config.nplayer.method != "exact":
        n = max(config.nplayer.sizes)
        parts[f"sampled N-player worlds ({n} players x {config.nplayer.episodes} episodes)"] = \
            16 * n * config.nplayer.episodes
    return Estimate(parts)


def check_fits(config: ExperimentConfig, available: int | None = None) -> Estimate:
    """``estimate(config)``; raises ``ConfigError`` when it exceeds the available memory."""
    needed = estimate(config)
    free, total = available_memory_bytes()
    free = free if available is None else available
    if needed.total > free:
        largest = max(needed.parts, key=needed.parts.get)
        raise ConfigError(
            f"experiment {config.name!r} needs at least {gib(needed.total)} of memory, this machine has "
            f"{gib(free)} available ({gib(total)} in all); the largest part: {largest} = "
            f"{gib(needed.parts[largest])}. Make it smaller (docs/experiments.md, 'What is checked').")
    return needed

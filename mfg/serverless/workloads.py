"""Workloads in the Azure Functions 2019 trace format: reader, writer, synthetic generator.

The public "Azure Functions Trace 2019" (Shahrad et al., USENIX ATC 2020) has, per day NN:

  invocations_per_function_md.anon.dNN.csv   HashOwner, HashApp, HashFunction, Trigger,
                                             "1" .. "1440" (invocations in each minute)
  function_durations_percentiles.anon.dNN.csv HashOwner, HashApp, HashFunction, Average,
                                             Count, Minimum, Maximum, percentile_Average_0,
                                             _1, _25, _50, _75, _99, _100   (milliseconds)
  app_memory_percentiles.anon.dNN.csv        HashOwner, HashApp, SampleCount,
                                             AverageAllocatedMb, AverageAllocatedMb_pct1,
                                             _5, _25, _50, _75, _95, _99, _100

``read_trace(folder, day)`` reads the three files (the memory file is optional) with a
clear error naming the file, line and column of anything malformed.  The real trace
cannot be downloaded on our machines; point ``read_trace`` at a folder holding it.

``generate(num_apps, seed)`` draws a synthetic day that matches the published statistics
(functions per app, trigger mix, popularity over ~8 orders of magnitude, a daily cycle
with peaks ~2x the trough, log-normal durations, periodic timers, bursty other triggers)
and ``write_trace`` writes it in the same format; ``generate(num_apps, seed, day=d)`` is
another day of the same apps and functions (as the public trace's 14 days are: the same
functions, popularities, durations and timer phases, new bursts and Poisson counts), so
a policy that keeps one table per function can train on one day and be tested on
another; ``SAMPLE_DIR`` holds a small one (``generate(60, seed=0)``) used by the tests
and the default experiments.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np

__all__ = ["Trace", "TraceFormatError", "read_trace", "MAX_INVOCATIONS_PER_MINUTE", "write_trace", "generate", "SAMPLE_DIR",
           "TRIGGERS", "MINUTES", "generate_functions", "invocation_file", "duration_file", "memory_file"]

MINUTES = 1440
TRIGGERS = ("http", "timer", "event", "queue", "storage", "orchestration", "others")
INVOCATION_HEADER = ["HashOwner", "HashApp", "HashFunction", "Trigger"] + [str(m) for m in range(1, MINUTES + 1)]
DURATION_HEADER = ["HashOwner", "HashApp", "HashFunction", "Average", "Count", "Minimum", "Maximum",
                   "percentile_Average_0", "percentile_Average_1", "percentile_Average_25",
                   "percentile_Average_50", "percentile_Average_75", "percentile_Average_99",
                   "percentile_Average_100"]
MEMORY_HEADER = ["HashOwner", "HashApp", "SampleCount", "AverageAllocatedMb", "AverageAllocatedMb_pct1",
                 "AverageAllocatedMb_pct5", "AverageAllocatedMb_pct25", "AverageAllocatedMb_pct50",
                 "AverageAllocatedMb_pct75", "AverageAllocatedMb_pct95", "AverageAllocatedMb_pct99",
                 "AverageAllocatedMb_pct100"]
SAMPLE_DIR = Path(__file__).resolve().parent / "data" / "azure_sample"
# Invocations of one function in one minute past which a row is refused: 10^8 a minute
# (1.7 M/s) is far above the public trace's busiest function, and keeps the per-minute
# arrival counts and their sums exact in int64 and float64.
MAX_INVOCATIONS_PER_MINUTE = 10**8


class TraceFormatError(ValueError):
    """A trace file is not in the Azure Functions 2019 format; the message says where."""


def invocation_file(day: int) -> str:
    return f"invocations_per_function_md.anon.d{day:02d}.csv"


def duration_file(day: int) -> str:
    return f"function_durations_percentiles.anon.d{day:02d}.csv"


def memory_file(day: int) -> str:
    return f"app_memory_percentiles.anon.d{day:02d}.csv"


@dataclasses.dataclass
class Trace:
    """One day of a trace, functions in file order.

    Attributes:
      owners, apps, functions: [F] hash strings of each function's owner, app and name.
      triggers: [F] trigger names (one of ``TRIGGERS``).
      invocations: [F, 1440] int64 invocations per minute.
      durations: [F, 11] float64 (Average, Count, Minimum, Maximum, then the percentiles
        0, 1, 25, 50, 75, 99, 100 of the average duration), NaN where the durations file
        has no row for the function.
      memory: app hash -> [10] float64 (SampleCount, AverageAllocatedMb and its
        percentiles 1, 5, 25, 50, 75, 95, 99, 100); empty when no memory file was read.
    """

    owners: np.ndarray
    apps: np.ndarray
    functions: np.ndarray
    triggers: np.ndarray
    invocations: np.ndarray
    durations: np.ndarray
    memory: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    @property
    def num_functions(self) -> int:
        return len(self.functions)

    def rates_per_second(self) -> np.ndarray:
        """[F, 1440] mean arrival rate (requests/s) in each minute."""
        return self.invocations / 60.0


def _rows(path: Path, header: list[str]):
    if not path.is_file():
        raise TraceFormatError(f"{path}: no such trace file")
    try:
        yield from _parse_rows(path, header)
    except UnicodeDecodeError as err:
        raise TraceFormatError(f"{path}: not a UTF-8 text (CSV) file ({err.reason} at byte {err.start})") from None
    except csv.Error as err:
        raise TraceFormatError(f"{path}: not a CSV file ({err})") from None


def _parse_rows(path: Path, header: list[str]):
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        first = next(reader, [])
        if not first:
            raise TraceFormatError(f"{path}: empty file (expected the header {header[:5]}...)")
        if first != header:
            missing = [c for c in header if c not in first]
            extra = [c for c in first if c not in header]
            raise TraceFormatError(
                f"{path}: header does not match the Azure Functions 2019 format "
                f"({len(first)} columns, expected {len(header)}; missing {missing[:5]}, unexpected {extra[:5]})")
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise TraceFormatError(f"{path}, line {line}: {len(row)} fields, expected {len(header)}")
            yield line, row


def _number(path, line, column, text, kind=float, bound=None):
    try:
        value = kind(text)
    except ValueError:
        raise TraceFormatError(f"{path}, line {line}, column {column!r}: {text!r} is not a "
                               f"{'non-negative integer' if kind is int else 'number'}") from None
    if not np.isfinite(value) or value < 0:
        raise TraceFormatError(f"{path}, line {line}, column {column!r}: {text!r} must be finite and >= 0")
    if bound is not None and value > bound:
        raise TraceFormatError(f"{path}, line {line}, column {column!r}: {text!r} invocations in one minute is "
                               f"past the bound {bound:.0e} (MAX_INVOCATIONS_PER_MINUTE)")
    return value


def read_trace(folder: str | Path, day: int = 1) -> Trace:
    """Read day ``day`` of a trace folder (invocations required; durations, memory optional).

    Refused with ``TraceFormatError`` naming the file, line and column: a header that is
    not the format's, a field that is not a non-negative number, an unknown trigger, a
    count past ``MAX_INVOCATIONS_PER_MINUTE``, a function (owner, app, function) given
    twice, a durations row for a function the invocations file does not have, a memory
    row for an app it does not have, or an app given twice in the memory file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise TraceFormatError(f"{folder}: no such trace folder" if not folder.exists() else
                               f"{folder}: not a folder")
    owners, apps, functions, triggers, counts = [], [], [], [], []
    index: dict[tuple[str, str, str], int] = {}
    first_line: dict[tuple[str, str, str], int] = {}
    path = folder / invocation_file(day)
    for line, row in _rows(path, INVOCATION_HEADER):
        trigger = row[3]
        if trigger not in TRIGGERS:
            raise TraceFormatError(f"{path}, line {line}, column 'Trigger': {trigger!r} is not one of {TRIGGERS}")
        key = (row[0], row[1], row[2])
        if key in index:
            raise TraceFormatError(f"{path}, line {line}: function {row[2][:16]}... (owner, app, function) "
                                   f"repeats line {first_line[key]}; each function has one row")
        index[key], first_line[key] = len(functions), line
        owners.append(row[0]), apps.append(row[1]), functions.append(row[2]), triggers.append(trigger)
        counts.append([_number(path, line, str(m + 1), text, int, MAX_INVOCATIONS_PER_MINUTE)
                       for m, text in enumerate(row[4:])])
    if not functions:
        raise TraceFormatError(f"{path}: no function rows")
    durations = np.full((len(functions), 11), np.nan)
    path = folder / duration_file(day)
    if path.exists():
        seen: dict[int, int] = {}
        for line, row in _rows(path, DURATION_HEADER):
            i = index.get((row[0], row[1], row[2]))
            if i is None:
                raise TraceFormatError(f"{path}, line {line}, columns HashOwner/HashApp/HashFunction: function "
                                       f"{row[2][:16]}... is not in {invocation_file(day)} (the files do not "
                                       f"belong together)")
            if i in seen:
                raise TraceFormatError(f"{path}, line {line}: function {row[2][:16]}... repeats line {seen[i]}")
            seen[i] = line
            durations[i] = [_number(path, line, DURATION_HEADER[k + 3], text) for k, text in enumerate(row[3:])]
    memory = {}
    path = folder / memory_file(day)
    if path.exists():
        known_apps = set(apps)
        seen_apps: dict[str, int] = {}
        for line, row in _rows(path, MEMORY_HEADER):
            if row[1] not in known_apps:
                raise TraceFormatError(f"{path}, line {line}, column 'HashApp': app {row[1][:16]}... is not in "
                                       f"{invocation_file(day)} (the files do not belong together)")
            if row[1] in seen_apps:
                raise TraceFormatError(f"{path}, line {line}: app {row[1][:16]}... repeats line {seen_apps[row[1]]}")
            seen_apps[row[1]] = line
            memory[row[1]] = np.array([_number(path, line, MEMORY_HEADER[k + 2], t) for k, t in enumerate(row[2:])])
    return Trace(np.array(owners), np.array(apps), np.array(functions), np.array(triggers),
                 np.array(counts, dtype=np.int64), durations, memory)


def write_trace(trace: Trace, folder: str | Path, day: int = 1) -> Path:
    """Write ``trace`` as the three files of day ``day`` in ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / invocation_file(day), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(INVOCATION_HEADER)
        for i in range(trace.num_functions):
            writer.writerow([trace.owners[i], trace.apps[i], trace.functions[i], trace.triggers[i],
                             *trace.invocations[i].tolist()])
    with open(folder / duration_file(day), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(DURATION_HEADER)
        for i in range(trace.num_functions):
            if np.all(np.isfinite(trace.durations[i])):
                d = trace.durations[i]
                writer.writerow([trace.owners[i], trace.apps[i], trace.functions[i], *(
                    [f"{d[0]:.6g}", str(int(d[1]))] + [f"{v:.6g}" for v in d[2:]])])
    with open(folder / memory_file(day), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(MEMORY_HEADER)
        owner_of = dict(zip(trace.apps, trace.owners))
        for app, values in trace.memory.items():
            writer.writerow([owner_of.get(app, ""), app, str(int(values[0])), *[f"{v:.6g}" for v in values[1:]]])
    return folder


# ------------------------------------------------------------------ synthetic generator

# Published statistics (Shahrad et al. 2020), see docs and the module docstring.
FUNCTIONS_PER_APP = ((1, 0.54), (2, 0.16), (3, 0.10), ((4, 5), 0.08), ((6, 10), 0.07), ((11, 40), 0.05))
TRIGGER_SHARE = {"http": 0.55, "queue": 0.15, "event": 0.02, "timer": 0.16, "orchestration": 0.07, "others": 0.05}
# Quantiles of log10(daily invocations per app): 45% at most hourly, 81% at most once a minute.
POPULARITY_KNOTS = ((0.0, 0.0), (0.45, np.log10(24)), (0.81, np.log10(1440)), (1.0, 8.0))
DAILY_AMPLITUDE = 1.0 / 3.0          # peak / trough = (1 + A) / (1 - A) = 2
DURATION_LN_SECONDS = (-0.38, 2.36)  # log-normal average execution time


def _hash(rng, n):
    return np.array(["".join(f"{b:02x}" for b in rng.integers(0, 256, 32)) for _ in range(n)])


def generate(num_apps: int = 100, seed: int = 0, day: int = 0) -> Trace:
    """A synthetic day of ``num_apps`` apps matching the published trace statistics.

    ``seed`` fixes the apps and their functions; ``day`` > 0 redraws only what changes from
    one day to the next: each bursty function's gamma modulation and Poisson counts (from
    a generator seeded by (seed, day)).  ``day = 0`` is the original draw, so every
    earlier result keeps its workload.
    """
    if num_apps < 1:
        raise ValueError(f"num_apps must be a positive int, got {num_apps}.")
    if not (isinstance(day, (int, np.integer)) and day >= 0):
        raise ValueError(f"day must be an int >= 0, got {day!r}.")
    rng = np.random.default_rng(seed)
    # day 0 draws its series from the apps' generator; another day from its own, while the
    # apps' generator still draws (and discards) day 0's, so every later draw is unchanged
    daily_rng = rng if day == 0 else np.random.default_rng([seed, day])
    sizes_choice = rng.choice(len(FUNCTIONS_PER_APP), size=num_apps, p=[p for _, p in FUNCTIONS_PER_APP])
    sizes = []
    for k in sizes_choice:
        spec = FUNCTIONS_PER_APP[k][0]
        sizes.append(spec if isinstance(spec, int) else int(rng.integers(spec[0], spec[1] + 1)))
    u = rng.random(num_apps)
    qs, logs = zip(*POPULARITY_KNOTS)
    daily_app = 10 ** np.interp(u, qs, logs)                              # invocations / day / app
    minutes = np.arange(MINUTES)
    shape = 1 + DAILY_AMPLITUDE * np.sin(2 * np.pi * (minutes - 6 * 60) / MINUTES)   # trough 06:00, peak 18:00
    shape /= shape.sum()
    owners_per_app = _hash(rng, num_apps)
    owners, apps, functions, triggers, counts, durations = [], [], [], [], [], []
    app_hashes = _hash(rng, num_apps)
    names, shares = list(TRIGGER_SHARE), np.array(list(TRIGGER_SHARE.values()))
    for app in range(num_apps):
        n = sizes[app]
        weights = rng.dirichlet(np.ones(n))
        for j, name in enumerate(_hash(rng, n)):
            trigger = names[rng.choice(len(names), p=shares / shares.sum())]
            daily = daily_app[app] * weights[j]
            if trigger == "timer":                                        # periodic, CV ~ 0
                period = max(1, int(round(MINUTES / max(daily, 1.0))))
                per_call = max(1, int(round(daily * period / MINUTES)))
                series = np.zeros(MINUTES, np.int64)
                series[int(rng.integers(period))::period] = per_call
            else:                                                         # bursty: gamma-modulated Poisson
                burst = rng.gamma(0.5, 2.0, size=MINUTES)                 # mean 1, CV sqrt(2)
                series = rng.poisson(daily * shape * burst)
                if day:
                    burst = daily_rng.gamma(0.5, 2.0, size=MINUTES)
                    series = daily_rng.poisson(daily * shape * burst)
            mean_seconds = float(np.exp(rng.normal(*DURATION_LN_SECONDS)))
            spread = 0.5
            pct = mean_seconds * 1e3 * np.exp(spread * np.array([-3.0, -2.33, -0.67, 0.0, 0.67, 2.33, 3.0]))
            calls = int(series.sum())
            durations.append([mean_seconds * 1e3, calls, pct[0], pct[-1], *pct])
            owners.append(owners_per_app[app]), apps.append(app_hashes[app]), functions.append(name)
            triggers.append(trigger), counts.append(series)
    memory = {}
    for app in range(num_apps):
        mb = float(np.exp(rng.normal(np.log(150.0), 0.5)))
        memory[app_hashes[app]] = np.array([MINUTES, mb, *(mb * np.exp(0.2 * np.array(
            [-2.33, -1.64, -0.67, 0.0, 0.67, 1.64, 2.33, 3.0])))])
    return Trace(np.array(owners), np.array(apps), np.array(functions), np.array(triggers),
                 np.array(counts, dtype=np.int64), np.array(durations, dtype=np.float64), memory)


def generate_functions(num_functions: int, seed: int = 0, day: int = 0) -> Trace:
    """A synthetic day (``generate``) with exactly ``num_functions`` invoked functions.

    Apps are drawn until enough functions have at least one invocation on day 0; the
    first ``num_functions`` of those are kept (idle functions are dropped, as a cluster
    hosting the day would not see them).  ``day`` > 0 gives another day of the same
    functions, in the same rows (a function may then have no invocation at all).
    """
    if num_functions < 1:
        raise ValueError(f"num_functions must be a positive int, got {num_functions}.")
    num_apps = max(1, int(num_functions / 2.4))
    while True:
        trace = generate(num_apps, seed)
        active = np.flatnonzero(trace.invocations.sum(1) > 0)
        if active.size >= num_functions:
            keep = active[:num_functions]
            if day:
                trace = generate(num_apps, seed, day)
            return Trace(trace.owners[keep], trace.apps[keep], trace.functions[keep], trace.triggers[keep],
                         trace.invocations[keep], trace.durations[keep],
                         {a: m for a, m in trace.memory.items() if a in set(trace.apps[keep])})
        num_apps = int(num_apps * 1.3) + 1

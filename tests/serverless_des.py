"""A request-level discrete-event simulator of functions on a shared cluster: the
independent reference the vectorized simulator is checked against (issue 15).

Plain Python (heapq), one event at a time, nothing shared with ``mfg``:

* arrivals: Poisson, with a piecewise-constant rate per function (``rates[i][k]``
  requests/s over ``[k * step, (k + 1) * step)``);
* service: each request needs ``work`` ~ Exp(mean ``service_mean[i]``) core-seconds and
  is single-threaded: it runs at one core when the node has one for it;
* containers: one request at a time (concurrency 1), one FIFO queue per function in front
  of them (the activator / queue-proxy), the oldest request to the first idle container;
* cold starts: a container ordered at time t serves from t + ``cold_start``; scaling down
  removes idle containers first (a busy one finishes its request, then goes);
* contention: the cluster has ``capacity`` cores; every busy container wants one core;
  when more are wanted than the cluster has, the cores go by cgroup cpu.shares: busy
  container j gets min(1, theta c_j) cores (c_j its request), theta solving
  sum_j min(1, theta c_j) = capacity (water-filling, solved exactly by sorting); idle
  containers want nothing, whatever they reserve;
* scaling: scripted, ``schedule`` = [(time, function, containers)], applied in time order.

``simulate`` returns every request's function, arrival and response time (NaN for the
requests still in the system at the end).
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import random


@dataclasses.dataclass
class Result:
    function: list[int]
    arrival: list[float]
    latency: list[float]


def simulate(rates, step, service_mean, cpu, capacity, schedule, horizon, cold_start=0.0, initial=None, seed=0
             ) -> Result:
    """Run until ``horizon`` seconds (see the module docstring for the model)."""
    rng = random.Random(seed)
    n_functions = len(rates)
    # every arrival in advance: a Poisson process per piece of constant rate
    events: list = []          # (time, order, kind, payload)
    order = 0
    arrivals = []
    for i, pieces in enumerate(rates):
        for k, rate in enumerate(pieces):
            start, end = k * step, min((k + 1) * step, horizon)
            t = start
            while rate > 0:
                t += rng.expovariate(rate)
                if t >= end:
                    break
                arrivals.append((t, i))
    arrivals.sort()
    result = Result([], [], [])
    for t, i in arrivals:
        result.function.append(i)
        result.arrival.append(t)
        result.latency.append(math.nan)
        heapq.heappush(events, (t, order, "arrival", len(result.function) - 1))
        order += 1
    for t, i, n in schedule:
        heapq.heappush(events, (t, order, "scale", (i, n)))
        order += 1

    queues = [[] for _ in range(n_functions)]           # FIFO of request ids (list as deque, head index)
    heads = [0] * n_functions
    # containers: id -> dict(function, ready_at, request, remaining work)
    containers: dict[int, dict] = {}
    wanted = [0] * n_functions
    next_id = 0
    now = 0.0
    running: dict[int, dict] = {}                       # container id -> container (busy ones)

    def theta():
        """The water level: busy container j runs at min(1, theta c_j) cores."""
        if len(running) <= capacity:
            return math.inf
        shares = [cpu[c["function"]] for c in running.values()]
        # sum_j min(1, theta c_j) = capacity: the largest shares reach one core first
        descending = sorted(shares, reverse=True)
        capped = 0
        remaining_shares = sum(descending)
        for share in descending:
            t = (capacity - capped) / remaining_shares
            if t * share <= 1.0:
                return t
            capped += 1
            remaining_shares -= share
        return math.inf

    def speed(c, level):
        return min(1.0, level * cpu[c["function"]])

    def advance(to):
        """Run the busy containers' work from ``now`` to ``to`` at the current speeds."""
        nonlocal now
        level = theta()
        for c in running.values():
            c["remaining"] -= (to - now) * speed(c, level)
        now = to

    def next_completion():
        if not running:
            return math.inf, None
        level = theta()
        best, which = math.inf, None
        for cid, c in running.items():
            t = now + max(c["remaining"], 0.0) / speed(c, level)
            if t < best:
                best, which = t, cid
        return best, which

    def dispatch(i):
        for cid, c in containers.items():
            if heads[i] >= len(queues[i]):
                return
            if c["function"] == i and c["request"] is None and c["ready_at"] <= now and not c["leaving"]:
                request = queues[i][heads[i]]
                heads[i] += 1
                c["request"] = request
                c["remaining"] = rng.expovariate(1.0 / service_mean[i])
                running[cid] = c

    def add_container(i, ready_at):
        nonlocal next_id
        containers[next_id] = {"function": i, "ready_at": ready_at, "request": None, "remaining": 0.0,
                               "leaving": False}
        if ready_at > now:
            heapq.heappush(events_ready, (ready_at, next_id))
        next_id += 1

    events_ready: list = []
    for i in range(n_functions):
        for _ in range((initial or [0] * n_functions)[i]):
            add_container(i, 0.0)
        wanted[i] = (initial or [0] * n_functions)[i]

    def rescale(i, n):
        wanted[i] = n
        mine = [cid for cid, c in containers.items() if c["function"] == i and not c["leaving"]]
        if n > len(mine):
            for _ in range(n - len(mine)):
                add_container(i, now + cold_start)
        else:
            # remove the not-yet-ready ones first, then idle, then busy (they leave after their request)
            mine.sort(key=lambda cid: (containers[cid]["ready_at"] <= now, containers[cid]["request"] is not None))
            for cid in mine[:len(mine) - n]:
                if containers[cid]["request"] is None:
                    del containers[cid]
                else:
                    containers[cid]["leaving"] = True

    while True:
        t_done, cid = next_completion()
        t_event = events[0][0] if events else math.inf
        t_ready = events_ready[0][0] if events_ready else math.inf
        t = min(t_done, t_event, t_ready)
        if t >= horizon or t == math.inf:
            break
        advance(t)
        if t == t_done:
            c = running.pop(cid)
            request = c["request"]
            result.latency[request] = now - result.arrival[request]
            c["request"] = None
            if c["leaving"]:
                del containers[cid]
            dispatch(c["function"])
        elif t == t_ready:
            _, ready = heapq.heappop(events_ready)
            if ready in containers:
                dispatch(containers[ready]["function"])
        else:
            _, _, kind, payload = heapq.heappop(events)
            if kind == "arrival":
                i = result.function[payload]
                queues[i].append(payload)
                dispatch(i)
            else:
                rescale(*payload)
                dispatch(payload[0])
    return result

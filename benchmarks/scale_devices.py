"""How large a problem fits this machine, and a projection to one and eight GPUs.

For two workloads it measures, at growing sizes, the wall time per solver step, the
memory XLA plans for one jitted chunk (arguments + outputs + temporaries, from
``compiled.memory_analysis()``) and the bytes one step reads and writes (XLA's
``cost_analysis()["bytes accessed"]``):

  structured   exact online mirror descent on 2D crowd modelling (grid-shift kernel,
               finite horizon T), S = size^2 states
  online NAC   the sampled critic on a Garnet game (S = 1000), N agents

From the per-state and per-agent memory it extrapolates the largest S and N that fit in
the memory available here, and projects a step's time on GPUs as bytes moved / memory
bandwidth (a lower bound: these steps are bandwidth-bound gathers and reductions).  On
eight GPUs each holds 1/8 of the sharded arrays; the step also exchanges the sharded
axis's boundary and reductions over NVLink, estimated here as one all-gather of the
[S]-sized mean field (structured) or one all-reduce of the [S, A] critic direction
(NAC) per step.

    python benchmarks/scale_devices.py [--quick] [--out benchmarks/results_scale_devices.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from mfg.games import crowd_modelling_2d, garnet
from solvers import MirrorDescent, NaturalActorCritic
from solvers.driver import _chunk, init_state

H200 = {"name": "NVIDIA H200", "memory_bytes": 141e9, "bandwidth": 4.8e12, "nvlink": 900e9}


def available_memory() -> int:
    with open("/proc/meminfo") as f:
        info = dict(line.split(":", 1) for line in f)
    return int(info["MemAvailable"].split()[0]) * 1024


def measure(solver, game, key=None, steps: int = 5) -> dict:
    """Compile one chunk of ``steps`` steps (no diagnostics), run it twice, report."""
    state = init_state(solver, game, key=key)
    compiled = jax.jit(_chunk, static_argnames=("length", "diagnose", "batched", "solver_axes")).lower(
        solver, game, state, jnp.int32(steps), length=steps, diagnose=False, batched=False).compile()
    memory = compiled.memory_analysis()
    planned = int(memory.argument_size_in_bytes + memory.output_size_in_bytes + memory.temp_size_in_bytes)
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    out = compiled(solver, game, state, jnp.int32(steps))
    jax.block_until_ready(out)
    start = time.perf_counter()
    jax.block_until_ready(compiled(solver, game, out[0], jnp.int32(steps)))
    seconds = (time.perf_counter() - start) / steps
    return {"seconds_per_step": seconds, "planned_bytes": planned, "bytes_per_step": float(cost["bytes accessed"]) / steps}


def structured(sizes, horizon: int) -> list[dict]:
    rows = []
    for size in sizes:
        game = crowd_modelling_2d(size=size, horizon=horizon)
        row = {"S": game.num_states, **measure(MirrorDescent(learning_rate=0.5), game)}
        rows.append(row)
        print(f"  structured S={row['S']:>9,}  {row['seconds_per_step'] * 1e3:9.2f} ms/step  "
              f"{row['planned_bytes'] / 2**20:9.1f} MiB  {row['bytes_per_step'] / 2**20:9.1f} MiB moved/step", flush=True)
    return rows


def online(agent_counts, td_steps: int) -> list[dict]:
    rows = []
    game = garnet(num_states=1000, num_actions=3, branching=3, seed=0, discount=0.9)
    for n in agent_counts:
        solver = NaturalActorCritic(temperature=0.1, learning_rate=0.5, critic="sampled", num_agents=n,
                                    td_steps=td_steps, exact_diagnostics=False)
        row = {"N": n, "td_steps": td_steps, **measure(solver, game, key=jax.random.key(0), steps=2)}
        rows.append(row)
        print(f"  online NAC N={n:>11,}  {row['seconds_per_step'] * 1e3:9.2f} ms/step  "
              f"{row['planned_bytes'] / 2**20:9.1f} MiB  {row['bytes_per_step'] / 2**20:9.1f} MiB moved/step", flush=True)
    return rows


def per_unit(rows, unit: str) -> tuple[float, float, float]:
    """Slope and intercept of planned memory and of bytes moved per step against S or N
    (least squares on the two largest sizes, where the fixed part no longer dominates)."""
    x = np.array([r[unit] for r in rows[-2:]], float)
    memory = np.polyfit(x, [r["planned_bytes"] for r in rows[-2:]], 1)
    moved = np.polyfit(x, [r["bytes_per_step"] for r in rows[-2:]], 1)
    return float(memory[0]), float(memory[1]), float(moved[0])


def projection(unit_memory, fixed, unit_moved, exchanged_per_unit, budget) -> dict:
    largest_here = int((budget - fixed) / unit_memory)
    one = int((H200["memory_bytes"] * 0.9 - fixed) / unit_memory)
    eight = 8 * one
    return {
        "largest_here": largest_here,
        "largest_one_gpu": one,
        "largest_eight_gpus": eight,
        "step_seconds_one_gpu_at_largest": one * unit_moved / H200["bandwidth"],
        "step_seconds_eight_gpus_at_largest": (eight / 8) * unit_moved / H200["bandwidth"]
        + eight * exchanged_per_unit / H200["nvlink"],
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a minute)")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results_scale_devices.json"))
    args = parser.parse_args()
    sizes = [64, 128, 256] if args.quick else [256, 512, 1024, 2048]
    agents = [10_000, 100_000, 1_000_000] if args.quick else [100_000, 1_000_000, 4_000_000, 16_000_000]
    budget = available_memory()
    print(f"devices: {jax.devices()}  memory available: {budget / 2**30:.1f} GiB  precision: "
          f"{'float64' if jax.config.jax_enable_x64 else 'float32'}")
    horizon = 10
    rows_s = structured(sizes, horizon)
    rows_n = online(agents, td_steps=10)
    ms, fs, vs = per_unit(rows_s, "S")
    mn, fn, vn = per_unit(rows_n, "N")
    dtype_bytes = 8 if jax.config.jax_enable_x64 else 4
    report = {
        "machine": {"devices": [str(d) for d in jax.devices()], "memory_available_bytes": budget,
                    "cpu_count": os.cpu_count()},
        "gpu_model": H200,
        "structured": {"game": f"crowd_modelling_2d, T={horizon}, 5 actions", "rows": rows_s,
                       "bytes_per_state": ms, "bytes_moved_per_state_per_step": vs,
                       **projection(ms, fs, vs, dtype_bytes * horizon, budget)},
        "online_nac": {"game": "garnet S=1000, A=3", "rows": rows_n, "bytes_per_agent": mn,
                       "bytes_moved_per_agent_per_step": vn,
                       # the [S, A] critic direction all-reduced once per TD step, independent of N
                       **projection(mn, fn, vn, 0.0, budget)},
    }
    for name, unit in (("structured", "S"), ("online_nac", "N")):
        r = report[name]
        per = r["bytes_per_state" if unit == "S" else "bytes_per_agent"]
        print(f"{name}: {per:.0f} B per {unit}; largest {unit} here {r['largest_here']:,}, one H200 "
              f"{r['largest_one_gpu']:,} ({r['step_seconds_one_gpu_at_largest'] * 1e3:.1f} ms/step), eight H200 "
              f"{r['largest_eight_gpus']:,} ({r['step_seconds_eight_gpus_at_largest'] * 1e3:.1f} ms/step)")
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

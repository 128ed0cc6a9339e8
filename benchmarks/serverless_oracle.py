"""The coarse-grained serverless game: online NAC against its exact equilibrium, and the
price of anarchy (issue 16, acceptance 1 and item 6).

    python benchmarks/serverless_oracle.py [--seeds 3] [--iterations 1000] [--results PATH]
    python benchmarks/serverless_oracle.py --deploy     # the game's policies on the tick simulator
    python benchmarks/serverless_oracle.py --deploy --eval-days 5 6 --price 0.04 \
        --results benchmarks/results_serverless_fresh_oracle_deploy.json   # on the two fresh days
    python benchmarks/serverless_oracle.py --online-tick [--episodes 6] [--eval-days 2 3 4]
        # the tick learner on the game's own state, scored in the game

On ``mfg.serverless.target_game.serverless_targets`` (K = 3 service-time types, L = 8
load bins, 24 target actions: S = 48, A = 24), per cluster setting:

1. **The oracle.**  The lambda-regularized equilibrium (lambda = 0.01) by the damped
   fixed point (damping 0.1, 300 iterations) and by exact NAC (eta h = 5, beta 0.2, 300
   iterations): their exploitabilities and the largest policy difference.
2. **Online NAC against it**: the sampled critic with one-hot features (which represent
   any policy) at N = 10^2, 10^3, 10^4 agents, K = 30 TD steps, alpha 0.3, eta h = 0.25,
   beta 0.2, ``--iterations`` iterations, ``--seeds`` seeds: the exploitability of the
   last iterate (mean over the last 100 iterations, per seed) and the mu-weighted total
   variation to the oracle's policy.
3. **Price of anarchy** at lambda = 0.001 (the damped fixed point, 1,500 iterations):
   the equilibrium's population objective (violations + price x core-seconds, per
   request) against the best cooperative policy found by mean-field control
   (``social_optimum`` from the uniform policy and from the equilibrium, 3,000 Adam
   steps each), and the equilibrium's objective under congestion prices
   p(rho) = price + kappa max(0, rho - 1) for each kappa of ``--kappas``.

Prints the tables of docs/nac.md and docs/serverless.md and writes them to the results
file (atomically, after every setting).

``--deploy`` (float32, as the tick comparison): the game coarse-grained from the tick
comparison's training population (``benchmarks/serverless_learned.py``: day seed 1, 1,000
functions, N_max = 200) at each setting's physical capacity per function, its
equilibrium (lambda = 0.001) and the cooperative policy found by mean-field control,
each run on the tick simulator as ``TabularTargets`` on the same held-out days, hours and
keys as that comparison (whose KPA, HPA and online-NAC rows they are read next to).

``--online-tick`` (float32): the tick simulator's own learner (``OnlineNAC``, its
defaults: gamma 0.9, lambda 0.001, the KPA decider between decisions) with the game's
state as its features (``CoarseStateFeatures``: the one-hot of (type, load bin, warm),
so that its actor is a tabular policy of the game) and the game's actions, trained on
the same training day and cluster as ``--deploy``'s game, ``--episodes`` passes.  After
every pass its policy softmax(theta) is scored exactly in the game: regularized
exploitability (lambda = 0.001), the game's population objective, and the total
variation to the game's equilibrium (weighted by the equilibrium's state distribution);
then the learned policy (greedy) and the equilibrium (``TabularTargets``, greedy) run on
the held-out days.  This checks the tick learner itself against a known answer, up to
what the game leaves out of the tick model.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax

# float64 for the oracle; ``--deploy`` runs in float32 like the tick comparison
jax.config.update("jax_enable_x64", "--deploy" not in sys.argv and "--online-tick" not in sys.argv)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments.files import atomic_write  # noqa: E402
from mfg.oracles import induced_mean_field  # noqa: E402
from mfg.serverless.target_game import (coarse_grain, population_cost, serverless_targets,  # noqa: E402
                                        social_optimum, stationary_joint, tick_policy)
from solvers import FixedPoint, NaturalActorCritic, run  # noqa: E402

ORACLE_TEMPERATURE = 0.01
POA_TEMPERATURE = 0.001
ONLINE = dict(mean_field_rate=0.2, td_steps=30, critic_rate=0.3)
ONLINE_STEP = 0.25          # eta h
AGENTS = (100, 1000, 10_000)


def _write(path: Path, results: dict) -> None:
    """Write the results atomically (a crash leaves the previous file whole)."""
    atomic_write(path, json.dumps(results, indent=1))


def _rounded(costs: dict) -> dict:
    return {k: float(v) for k, v in costs.items()}


def oracle(game) -> dict:
    """The regularized equilibrium by two exact methods."""
    h = 1.0 / (1.0 - float(game.discount))
    fixed = run(FixedPoint(temperature=ORACLE_TEMPERATURE, damping=0.1), game, 300)
    nac = run(NaturalActorCritic(learning_rate=5.0 / h, temperature=ORACLE_TEMPERATURE, mean_field_rate=0.2), game, 300)
    return {"fixed_point_exploitability": float(fixed.metrics["exploitability"][-1]),
            "exact_nac_exploitability": float(nac.metrics["exploitability"][-1]),
            "policy_difference": float(jnp.abs(fixed.state.policy - nac.state.policy).max()),
            "policy": fixed.state.policy}


def online(game, reference, seeds: int, iterations: int) -> list[dict]:
    """Online NAC at each N against the oracle's policy."""
    h = 1.0 / (1.0 - float(game.discount))
    mu = induced_mean_field(game, reference).sum(1)
    rows = []
    for agents in AGENTS:
        solver = NaturalActorCritic(learning_rate=ONLINE_STEP / h, temperature=ORACLE_TEMPERATURE, critic="sampled",
                                    num_agents=agents, exact_diagnostics=False, **ONLINE)
        start = time.perf_counter()
        result = run(solver, game, iterations, key=jax.random.split(jax.random.key(3), seeds))
        seconds = time.perf_counter() - start
        tail = np.asarray(result.metrics["exploitability"])[:, -100:].mean(1)
        tv = np.asarray((mu * jnp.abs(result.state.policy - reference[None]).sum(-1)).sum(-1) / 2)
        rows.append({"agents": agents, "exploitability": tail.tolist(), "total_variation": tv.tolist(),
                     "seconds": seconds})
        print(f"  N = {agents:>6}: exploitability (last 100) {np.round(tail, 4).tolist()}, "
              f"TV to the oracle {np.round(tv, 3).tolist()}  ({seconds:.0f} s, {seeds} seeds)", flush=True)
    return rows


def price_of_anarchy(setting: str, kappas) -> dict:
    """The equilibrium's cost, mean-field control's, and congestion prices."""
    game = serverless_targets(setting=setting)
    solver = FixedPoint(temperature=POA_TEMPERATURE, damping=0.05)
    equilibrium = run(solver, game, 1500, chunk_size=500)
    eq_cost = population_cost(game, stationary_joint(game, equilibrium.state.policy))
    found = []
    for name, init in (("uniform", None), ("equilibrium", equilibrium.state.policy)):
        policy, _ = social_optimum(game, init, steps=3000)
        found.append((name, _rounded(population_cost(game, stationary_joint(game, policy)))))
    best_name, best = min(found, key=lambda item: item[1]["objective"])
    priced = []
    for kappa in kappas:
        charged = serverless_targets(setting=setting, model={"congestion_price": float(kappa)})
        result = run(solver, charged, 1500, chunk_size=500)
        priced.append({"kappa": float(kappa), "exploitability": float(result.metrics["exploitability"][-1]),
                       **_rounded(population_cost(game, stationary_joint(charged, result.state.policy)))})
    return {"equilibrium": {**_rounded(eq_cost), "exploitability": float(equilibrium.metrics["exploitability"][-1])},
            "social_optimum": {**best, "start": best_name}, "social_optimum_starts": dict(found),
            "price_of_anarchy": float(eq_cost["objective"]) / best["objective"], "congestion_prices": priced}


def deploy(results_path: Path, settings, eval_days=(2, 3, 4, 5, 6), price: float | None = None) -> dict:
    """The coarse game's equilibrium and cooperative policies on the tick simulator (the
    game at its default price per core-second, or at ``price``)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from serverless_learned import MAX_CONTAINERS, day

    from mfg.serverless.comparison import mean_rows, population, run_policy
    from mfg.serverless.platform import Platform
    from mfg.serverless.settings import Workload

    train = population(day(1), 1000, 0)
    pool = train.workload
    rows_of = np.asarray(train.assignment)
    coarse = coarse_grain(Workload(pool.counts[rows_of], pool.service_mean[rows_of], pool.slo[rows_of]))
    out = {}
    for setting in settings:
        capacity = train.capacity(setting) / train.num_functions
        model = {"max_containers": MAX_CONTAINERS, **({} if price is None else {"price": float(price)})}
        game = serverless_targets(coarse, capacity=capacity, model=model)
        solver = FixedPoint(temperature=POA_TEMPERATURE, damping=0.05)
        eq = run(solver, game, 1500, chunk_size=500)
        cooperative = min((social_optimum(game, init, steps=3000)[0] for init in (None, eq.state.policy)),
                          key=lambda p: float(population_cost(game, stationary_joint(game, p))["objective"]))
        game_costs = {name: _rounded(population_cost(game, stationary_joint(game, p)))
                      for name, p in (("equilibrium", eq.state.policy), ("cooperative", cooperative))}
        print(f"{setting}: capacity {capacity:.3f} cores per function, game pressure "
              f"{game_costs['equilibrium']['pressure']:.2f}; in the game: {game_costs}", flush=True)
        rows = []
        for seed in eval_days:
            pop = population(day(seed), 1000, 0, start=900, minutes=360)
            platform = Platform(max_containers=MAX_CONTAINERS, capacity=pop.capacity(setting))
            for name, policy in (("MFG tabular targets", eq.state.policy), ("cooperative tabular targets", cooperative)):
                start = time.perf_counter()
                knob = "lambda 0.001" if price is None else f"lambda 0.001, price {price:g}"
                row = {"policy": name, "knob": knob, "eval_day": seed,
                       **run_policy(platform, pop, tick_policy(coarse, policy, pop.service_mean), jax.random.key(seed),
                                    MAX_CONTAINERS, 0.02 if price is None else price),
                       "wall_s": time.perf_counter() - start}
                rows.append(row)
                print(f"  day {seed} {name:24s} violations {row['slo_violations']:.4f} p99 {row['p99_latency']:6.1f} s "
                      f"cores/fn {row['allocated_cores']:.2f} objective {row['objective']:.4f}", flush=True)
        out[setting] = {"capacity_per_function": capacity, "game": game_costs, "rows": rows, "means": mean_rows(rows)}
        _write(results_path, out)
    return out


def online_tick(results_path: Path, settings, episodes: int, eval_days=(2, 3, 4), actor_rate: float | None = None
                ) -> dict:
    """The tick learner on the coarse game's state (module docstring, ``--online-tick``)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from serverless_learned import MAX_CONTAINERS, day

    from mfg.oracles import exploitability
    from mfg.serverless.comparison import deploy as deployed_for, mean_rows, population, run_policy, train_online
    from mfg.serverless.learned import CoarseStateFeatures, OnlineNAC, TargetActions
    from mfg.serverless.platform import Platform
    from mfg.serverless.settings import Workload

    train = population(day(1), 1000, 0)
    pool = train.workload
    rows_of = np.asarray(train.assignment)
    coarse = coarse_grain(Workload(pool.counts[rows_of], pool.service_mean[rows_of], pool.slo[rows_of]))
    features, actions = CoarseStateFeatures.of(coarse), TargetActions(cpu=(0.5, 1.0))
    learner_options = {} if actor_rate is None else {"actor_rate": actor_rate}
    out = {"protocol": {"episodes": episodes, "eval_days": list(eval_days), "temperature": POA_TEMPERATURE,
                        "learner_options": learner_options,
                        "learner": "OnlineNAC defaults, CoarseStateFeatures, TargetActions(cpu=(0.5, 1.0))"}}

    def scored(game, policy, reference, states):
        """The policy's exact scores in the game (TV weighted by ``states``, the reference's
        state distribution)."""
        policy = jnp.asarray(policy, jnp.float32)
        joint = stationary_joint(game, policy)
        tv = float(jnp.sum(states * 0.5 * jnp.abs(policy - reference).sum(-1)))
        return {"exploitability": float(exploitability(game, policy, POA_TEMPERATURE).regularized),
                "tv_to_equilibrium": tv, **_rounded(population_cost(game, joint))}

    for setting in settings:
        capacity = train.capacity(setting) / train.num_functions
        game = serverless_targets(coarse, capacity=capacity, model={"max_containers": MAX_CONTAINERS})
        eq = run(FixedPoint(temperature=POA_TEMPERATURE, damping=0.05), game, 1500, chunk_size=500)
        reference = jnp.asarray(eq.state.policy, jnp.float32)
        uniform = jnp.full(reference.shape, 1.0 / reference.shape[1], jnp.float32)
        states = stationary_joint(game, reference).sum(-1)
        result = {"capacity_per_function": capacity, "equilibrium": scored(game, reference, reference, states),
                  "uniform": scored(game, uniform, reference, states), "episodes": []}
        print(f"{setting}: equilibrium {result['equilibrium']}\n  uniform {result['uniform']}", flush=True)
        platform = Platform(max_containers=MAX_CONTAINERS, capacity=train.capacity(setting))
        policy = OnlineNAC.untrained(train.service_mean, train.slo, features=features, actions=actions,
                                     temperature=POA_TEMPERATURE, **learner_options)
        for episode in range(episodes):
            trained = train_online(policy, platform, train, 1, jax.random.key(episode), MAX_CONTAINERS)
            policy = trained.policy
            learned = jax.nn.softmax(jnp.asarray(policy.theta), axis=1)
            row = {"episode": episode + 1, "wall_s": trained.seconds, **scored(game, learned, reference, states),
                   "training": trained.episodes[-1], "td_error": float(trained.history["td_error"][-1])}
            result["episodes"].append(row)
            print(f"  pass {episode + 1}: exploitability {row['exploitability']:.4f}, TV to the equilibrium "
                  f"{row['tv_to_equilibrium']:.3f}, game objective {row['objective']:.4f} (equilibrium "
                  f"{result['equilibrium']['objective']:.4f}), TD error {row['td_error']:.3g} "
                  f"({trained.seconds:.0f} s)", flush=True)
        result["theta"] = np.asarray(policy.theta).tolist()
        rows = []
        for seed in eval_days:
            pop = population(day(seed), 1000, 0, start=900, minutes=360)
            evaluation = Platform(max_containers=MAX_CONTAINERS, capacity=pop.capacity(setting))
            for name, tick in (("online NAC, game state", deployed_for(policy, pop, greedy=True)),
                               ("MFG tabular targets", tick_policy(coarse, reference, pop.service_mean))):
                row = {"policy": name, "knob": f"lambda {POA_TEMPERATURE:g}", "eval_day": seed,
                       **run_policy(evaluation, pop, tick, jax.random.key(seed), MAX_CONTAINERS, 0.02)}
                rows.append(row)
                print(f"  day {seed} {name:24s} violations {row['slo_violations']:.4f} p99 {row['p99_latency']:6.1f} s "
                      f"cores/fn {row['allocated_cores']:.2f} objective {row['objective']:.4f}", flush=True)
        result["rows"], result["means"] = rows, mean_rows(rows)
        out[setting] = result
        _write(results_path, out)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", nargs="+", default=["roomy", "tight", "congested"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--kappas", type=float, nargs="+", default=[0.05, 0.1, 0.2, 0.3, 0.5, 1.0])
    parser.add_argument("--results", type=Path, default=None)
    parser.add_argument("--deploy", action="store_true", help="the game's policies on the tick simulator")
    parser.add_argument("--eval-days", type=int, nargs="+", default=None,
                        help="--deploy, --online-tick: the held-out days (workload seeds) evaluated (default "
                             "2-6 and 2-4)")
    parser.add_argument("--price", type=float, default=None,
                        help="--deploy: the game's price per core-second (default: the game's, 0.02)")
    parser.add_argument("--online-tick", action="store_true",
                        help="the tick learner on the game's state, scored in the game")
    parser.add_argument("--episodes", type=int, default=6, help="--online-tick: training passes")
    parser.add_argument("--actor-rate", type=float, default=None,
                        help="--online-tick: the learner's eta (default OnlineNAC's, 25: eta h = 250)")
    args = parser.parse_args(argv)
    if args.online_tick:
        online_tick(args.results or Path(__file__).with_name("results_serverless_online_tick.json"), args.settings,
                    args.episodes, tuple(args.eval_days or (2, 3, 4)), args.actor_rate)
        return 0
    if args.deploy:
        deploy(args.results or Path(__file__).with_name("results_serverless_oracle_deploy.json"), args.settings,
               tuple(args.eval_days or (2, 3, 4, 5, 6)), args.price)
        return 0
    args.results = args.results or Path(__file__).with_name("results_serverless_oracle.json")
    results = {"settings": {}, "protocol": {"oracle_temperature": ORACLE_TEMPERATURE, "online": ONLINE,
                                            "online_eta_h": ONLINE_STEP, "iterations": args.iterations,
                                            "seeds": args.seeds, "poa_temperature": POA_TEMPERATURE}}
    for setting in args.settings:
        game = serverless_targets(setting=setting)
        print(f"{setting}: S = {game.num_states}, A = {game.num_actions}", flush=True)
        exact = oracle(game)
        reference = exact.pop("policy")
        print(f"  oracle: fixed point {exact['fixed_point_exploitability']:.1e}, exact NAC "
              f"{exact['exact_nac_exploitability']:.1e}, policy difference {exact['policy_difference']:.1e}")
        rows = online(game, reference, args.seeds, args.iterations) if setting != "roomy" else []
        poa = price_of_anarchy(setting, args.kappas)
        eq, opt = poa["equilibrium"], poa["social_optimum"]
        print(f"  equilibrium objective {eq['objective']:.4f} ({eq['slo_violations']:.4f} violations, "
              f"{eq['allocated_cores']:.3f} cores), mean-field control {opt['objective']:.4f} "
              f"({opt['slo_violations']:.4f}, {opt['allocated_cores']:.3f} cores): price of anarchy "
              f"{poa['price_of_anarchy']:.3f}")
        for row in poa["congestion_prices"]:
            print(f"    kappa {row['kappa']:<4}: objective {row['objective']:.4f} ({row['slo_violations']:.4f}, "
                  f"{row['allocated_cores']:.3f} cores)")
        results["settings"][setting] = {"oracle": exact, "online": rows, "price_of_anarchy": poa}
        _write(args.results, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

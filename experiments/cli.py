"""The ``mfg`` command: solve a game from the catalogue and watch it converge.

    mfg list
    mfg run [--game crowd_modelling] [--solver mirror_descent] [--iterations 300]
            [--temperature 0.1] [--param size=100 --param horizon=20] [--precision float32]

``mfg run`` with no options solves OpenSpiel's crowd-modelling game (100 cells, horizon
10, lambda = 0.1) with online mirror descent on the CPU and prints exploitability and
the other diagnostics as it goes, then the fitted convergence rate.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import time

DEFAULTS = {"game": "crowd_modelling", "solver": "mirror_descent", "iterations": 300,
            "temperature": 0.1, "params": {"size": 100, "horizon": 10}}


def _parse_param(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--param expects KEY=VALUE, got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return key.strip(), value


def _solver(name: str, temperature: float, game, overrides: dict):
    from solvers import FictitiousPlay, FixedPoint, MirrorDescent, SOLVERS

    if name not in SOLVERS:
        raise SystemExit(f"unknown solver {name!r}; choose one of: {', '.join(sorted(SOLVERS))}")
    if overrides or name in ("nac", "neural_nac"):
        cls = SOLVERS[name]
        kwargs = {"temperature": temperature, **overrides}
        if name in ("nac", "neural_nac") and "learning_rate" not in overrides:
            # eta h = 0.1 (h = 1/(1-gamma) for stationary games, 1 otherwise), capped by eta lambda h <= 1.
            h = 1.0 if game.horizon is not None else 1.0 / (1.0 - float(game.discount))
            kwargs["learning_rate"] = min(0.1, 1.0 / temperature if temperature > 0 else 0.1) / h
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as err:
            raise SystemExit(f"cannot build solver {name!r} with {kwargs}: {err}")
    if name == "mirror_descent":
        # eta * lambda <= 1 is required; eta = 1 unless lambda > 1.
        return MirrorDescent(learning_rate=min(1.0, 1.0 / temperature) if temperature > 0 else 1.0,
                             temperature=temperature)
    if name == "fixed_point":
        return FixedPoint(temperature=temperature if temperature > 0 else 1.0, damping=0.5)
    return FictitiousPlay(temperature=temperature)


def _check_solver_game(name, game, temperature, overrides):
    """Surface solver/game incompatibilities (e.g. a sampled critic on a finite horizon)
    as a one-line error before anything is traced."""
    from solvers import SOLVERS

    if name in SOLVERS and hasattr(SOLVERS[name], "_check"):
        solver = _solver(name, temperature, game, overrides)
        solver._check(game)


def cmd_list(args) -> int:
    from mfg.games import GAMES
    from solvers import SOLVERS

    print("games:")
    for name, builder in sorted(GAMES.items()):
        summary = (builder.__doc__ or "").strip().splitlines()[0]
        print(f"  {name:30s} {summary}")
    print("solvers:")
    for name, cls in sorted(SOLVERS.items()):
        print(f"  {name:30s} {(sys.modules[cls.__module__].__doc__ or '').strip().splitlines()[0]}")
    return 0


def cmd_run(args) -> int:
    import jax

    if args.precision == "float64":
        jax.config.update("jax_enable_x64", True)
    from mfg import games
    from solvers import fit_rate, run

    params = dict(DEFAULTS["params"]) if args.game == DEFAULTS["game"] and not args.param else {}
    params.update(dict(args.param or []))
    try:
        game = games.make(args.game, **params)
    except (KeyError, TypeError, ValueError) as err:
        raise SystemExit(f"cannot build game {args.game!r} with {params}: {err}")
    try:
        _check_solver_game(args.solver, game, args.temperature, dict(args.solver_param or []))
    except (ValueError, NotImplementedError) as err:
        raise SystemExit(f"solver {args.solver!r} cannot run on game {game.name!r}: {err}")
    solver = _solver(args.solver, args.temperature, game, dict(args.solver_param or []))
    print(f"{type(solver).__name__} on {game.name} {params}: S={game.num_states}, "
          f"A={game.num_actions}, horizon={game.horizon}, lambda={args.temperature}, "
          f"{args.iterations} iterations on {jax.devices()[0].platform}")
    print(f"{'iter':>6s} {'exploit (reg)':>14s} {'exploit (unreg)':>16s} {'MF step':>10s} "
          f"{'policy KL':>10s} {'entropy':>8s}")

    def report(done, chunk):
        i = -1
        print(f"{done:6d} {chunk['exploitability'][i]:14.6e} {chunk['exploitability_unreg'][i]:16.6e} "
              f"{chunk['mean_field_step'][i]:10.3e} {chunk['policy_kl'][i]:10.3e} "
              f"{chunk['entropy'][i]:8.4f}", flush=True)

    start = time.perf_counter()
    result = run(solver, game, args.iterations, chunk_size=args.chunk, on_chunk=report,
                 stop_exploitability=args.stop)
    expl = result.metrics["exploitability"]
    summary = {
        "iterations": result.iterations,
        "final_exploitability": float(expl[-1]),
        "final_exploitability_unreg": float(result.metrics["exploitability_unreg"][-1]),
        "fitted_rate": fit_rate(expl, skip=max(1, result.iterations // 10)),
        "all_finite": bool(result.metrics["all_finite"].min() == 1.0),
        "seconds": round(time.perf_counter() - start, 2),
    }
    print(json.dumps(summary, indent=1))
    return 0 if summary["all_finite"] else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="mfg", description="Mean-field game equilibria in JAX.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list games and solvers").set_defaults(func=cmd_list)
    p = sub.add_parser("run", help="solve a game and print its convergence")
    p.add_argument("--game", default=DEFAULTS["game"])
    p.add_argument("--solver", default=DEFAULTS["solver"])
    p.add_argument("--iterations", type=int, default=DEFAULTS["iterations"])
    p.add_argument("--temperature", type=float, default=DEFAULTS["temperature"],
                   help="entropy regularization lambda >= 0")
    p.add_argument("--param", type=_parse_param, action="append", help="game parameter KEY=VALUE")
    p.add_argument("--solver-param", type=_parse_param, action="append",
                   help="solver hyper-parameter KEY=VALUE (e.g. critic=sampled, num_agents=10000)")
    p.add_argument("--chunk", type=int, default=50, help="iterations per jitted chunk")
    p.add_argument("--stop", type=float, default=None, help="stop once exploitability <= this")
    p.add_argument("--precision", choices=["float32", "float64"], default="float64",
                   help="float64 (default here) resolves exploitability far below float32's ~1e-6 floor")
    p.set_defaults(func=cmd_run)
    args = parser.parse_args(argv)
    if getattr(args, "temperature", 0) is not None and getattr(args, "temperature", 0) < 0:
        parser.error("--temperature must be >= 0")
    if getattr(args, "iterations", 1) is not None and getattr(args, "iterations", 1) <= 0:
        parser.error("--iterations must be a positive int")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

"""Experiment configuration: a YAML file validated by a pydantic v2 schema.

Every key is known (unknown keys are errors that name the allowed ones), every value is
checked (types, ranges, names of games, solvers and their parameters) before anything
runs.  ``--set path.to.key=value`` overrides are applied to the YAML tree first.

    name: crowd_omd                  # run folder name (default: the file's stem)
    precision: float64               # float32 | float64
    game:   {name: crowd_modelling, params: {size: 100, horizon: 10}}
    solver: {name: mirror_descent, params: {learning_rate: 1.0, temperature: 0.1},
             features: {kind: one_hot, params: {}}}   # features: NAC only
    run:    {iterations: 300, chunk_size: 50, seeds: 1, seed: 0,
             stop_exploitability: null, stop_residual: null}
    output: {dir: runs, checkpoint_every: 1, keep_checkpoints: 3, plots: true,
             tensorboard: false}
    nplayer: {sizes: [2, 10, 100], method: auto, episodes: 256}   # optional, docs/nplayer.md
"""

from __future__ import annotations

import ast
import copy
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from experiments.parameters import check_feature_params, check_game_params, check_solver_params, describe_value

__all__ = ["ExperimentConfig", "ConfigError", "load_config", "parse_config", "apply_overrides", "load_yaml",
           "GameConfig", "SolverConfig", "RunConfig", "OutputConfig", "EvaluationConfig", "NPlayerConfig"]


def is_folder_name(text: str) -> bool:
    """A plain folder name: letters, digits, '_', '.', '-', not starting with '.' (so never
    '.' or '..'), at most 200 characters.  Run names and ``mfg eval --tag`` use it."""
    return re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}", text) is not None


class ConfigError(ValueError):
    """An experiment configuration is invalid; the message names the field and what is allowed."""


class _Strict(BaseModel):
    # strict: no coercion (``true`` is not 1, "10" is not 10); every number finite.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, strict=True, allow_inf_nan=False)


def _raise_all(errors: list[str]) -> None:
    """One ValueError for the parameter messages; ``_format_errors`` prints one line each."""
    if errors:
        raise ValueError("\n".join(e if e.startswith("unknown parameter") else f"params.{e}" for e in errors))


class GameConfig(_Strict):
    name: str = Field(description="a game of the catalogue (`mfg list`)")
    params: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the game's builder")

    @model_validator(mode="after")
    def _known(self):
        from mfg.games import GAMES

        if self.name not in GAMES:
            raise ValueError(f"unknown game {self.name!r}; allowed: {', '.join(sorted(GAMES))}")
        _raise_all(check_game_params(self.name, self.params))
        return self


class FeaturesConfig(_Strict):
    kind: Literal["one_hot", "rbf", "tile_coding"] = "one_hot"
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known(self):
        _raise_all(check_feature_params(self.kind, self.params))
        return self


class SolverConfig(_Strict):
    name: str = Field(description="a solver (`mfg list`)")
    params: dict[str, Any] = Field(default_factory=dict, description="the solver's hyper-parameters")
    features: FeaturesConfig | None = Field(default=None, description="feature map of linear NAC")

    @model_validator(mode="after")
    def _known(self):
        from solvers import SOLVERS

        if self.name not in SOLVERS:
            raise ValueError(f"unknown solver {self.name!r}; allowed: {', '.join(sorted(SOLVERS))}")
        _raise_all(check_solver_params(self.name, self.params))
        if self.features is not None and self.name != "nac":
            raise ValueError(f"features apply to the linear NAC solver ('nac') only, not {self.name!r}")
        return self


class RunConfig(_Strict):
    iterations: int = Field(300, gt=0, description="solver iterations")
    chunk_size: int = Field(50, gt=0, description="iterations per jitted chunk (metrics, checkpoints and the stop rule act per chunk)")
    seeds: int = Field(1, gt=0, description="independent seeds run together under vmap")
    seed: int = Field(0, ge=0, description="base PRNG seed")
    stop_exploitability: float | None = Field(None, gt=0, description="stop once exploitability <= this")
    stop_residual: float | None = Field(None, gt=0, description="stop once the mean-field residual <= this")


class DevicesConfig(_Strict):
    """Where the run executes (``solvers.sharding``; docs/scaling.md)."""

    data: int | None = Field(None, gt=0, description="devices on the mesh's 'data' axis (default: all / seeds)")
    seeds: int = Field(1, gt=0, description="devices on the mesh's 'seeds' axis (divides run.seeds)")
    shard: list[Literal["states", "agents"]] = Field(["states", "agents"],
                                                     description="axes split over 'data': the state axis, the agents")
    donate: bool = Field(False, description="reuse the state's buffers between chunks (less memory on GPU/TPU)")
    coordinator_address: str | None = Field(None, description="host:port of process 0 for multi-host runs "
                                            "(or MFG_COORDINATOR_ADDRESS)")
    num_processes: int | None = Field(None, gt=0, description="processes of a multi-host run (or MFG_NUM_PROCESSES)")
    process_id: int | None = Field(None, ge=0, description="this process's index (or MFG_PROCESS_ID)")


class OutputConfig(_Strict):
    dir: str = Field("runs", description="parent folder of run folders")
    checkpoint_every: int = Field(1, gt=0, description="checkpoint every this many chunks")
    keep_checkpoints: int = Field(3, gt=0, description="how many recent checkpoints to keep")
    plots: bool = Field(True, description="write PNG plots after the run")
    tensorboard: bool = Field(False, description="also write TensorBoard scalars (the tensorboard extra: tensorboardX)")


class EvaluationConfig(_Strict):
    """The serverless comparison run after training (``experiments.serverless``); serverless game only."""

    num_functions: int = Field(1000, gt=0, description="functions (particles) in the simulated cluster")
    seeds: int = Field(3, gt=0, description="independent workloads / populations (confidence intervals)")
    seed: int = Field(0, ge=0, description="base seed of the workloads and the simulator")
    pool_functions: int = Field(2000, gt=0, description="functions of each synthetic day; the N simulated "
                                "functions are drawn from them")
    minutes: int = Field(1440, gt=0, le=1440, description="one-minute steps simulated (a day at most)")
    workload: str = Field("synthetic", description="'synthetic' (a fresh day per seed) or a folder holding "
                          "Azure Functions 2019 trace files")
    day: int = Field(1, ge=1, le=14, description="trace day read from the workload folder")
    deploy: Literal["sample", "greedy"] = Field("sample", description="MFG / RL policies: sample their action "
                                                "probabilities, or take the most likely action")
    independent: bool = Field(True, description="include independent RL (the solver on the game without contention)")
    q_learning_days: int = Field(2, ge=0, description="passes of online training of per-function Q-learning over "
                                 "its training day, another day of the same functions (0: off)")
    q_learning_train_day: int | None = Field(None, ge=1, le=14, description="trace folder: the day Q-learning trains "
                                             "on (default: the evaluation day's next, or day 13 for day 14); must "
                                             "differ from day")
    static_containers: list[int] = Field([1, 2, 3, 4], description="static sizes swept (containers at full CPU)")
    hpa_target_utilization: list[float] = Field([0.5, 0.6, 0.7, 0.8, 0.9], description="HPA targets swept")
    kpa_target_concurrency: list[float] = Field([0.4, 0.55, 0.7, 0.85, 1.0],
                                                description="KPA targets (in-flight requests per container) swept")
    simulator: Literal["minute", "tick"] = Field(
        "minute", description="'minute': the particle simulator (experiments.serverless); 'tick': the tick "
        "simulator with the online NAC policy trained on another day (experiments.tick_comparison)")
    setting: Literal["roomy", "tight", "congested"] = Field("tight", description="tick: the cluster setting "
                                                           "(mfg.serverless.settings)")
    start_minute: int = Field(900, ge=0, lt=1440, description="tick: first minute of the evaluated window "
                              "(900: 15:00, before the daily peak)")
    train_start_minute: int = Field(0, ge=0, lt=1440, description="tick: first minute of the training day learned "
                                    "from (0: midnight)")
    train_minutes: int = Field(1440, gt=0, le=1440, description="tick: minutes of the training day learned from")
    train_episodes: int = Field(2, gt=0, description="tick: passes of the online learner over the training day")
    prices: list[float] = Field([0.02], min_length=1, description="tick: prices of an allocated core-second "
                                "(in SLO violations) the online learner is trained at, one point each")
    learner_actions: Literal["targets", "moves"] = Field("targets", description="tick: the online learner's "
                                                         "actions (mfg.serverless.learned)")
    learner: Literal["linear", "neural"] = Field("linear", description="tick: the online learner's actor and "
                                                 "critic: linear in RBF features (mfg.serverless.learned) or "
                                                 "MLPs (mfg.serverless.learned_neural)")
    max_containers: int = Field(200, gt=0, description="tick: the most containers one function may have")
    cpu_requests: list[float] = Field([1.0], min_length=1, description="tick: cores per container: the "
                                      "baselines run at each, and so do the online learners (learner_cpu)")
    learner_cpu: Literal["knob", "action"] = Field(
        "knob", description="tick: 'knob': one learner trained per CPU request, as the baselines are swept; "
        "'action': one learner that chooses the request among cpu_requests at every decision (as an action it "
        "spent a third of its cores on 1-core containers that bought nothing where contention does not bind, and "
        "won where it does, the request being a cpu.shares priority: docs/serverless.md, change 13)")

    @model_validator(mode="after")
    def _ranges(self):
        if any(n < 1 for n in self.static_containers):
            raise ValueError(f"static_containers must be >= 1, got {self.static_containers}")
        if any(not 0 < u <= 1 for u in self.hpa_target_utilization):
            raise ValueError(f"hpa_target_utilization values must lie in (0, 1], got {self.hpa_target_utilization}")
        if any(c <= 0 for c in self.kpa_target_concurrency):
            raise ValueError(f"kpa_target_concurrency values must be > 0, got {self.kpa_target_concurrency}")
        if any(not (0 < c < float("inf")) for c in self.cpu_requests):
            raise ValueError(f"cpu_requests must be numbers of cores > 0, got {self.cpu_requests}")
        if any(not (p >= 0 and p < float("inf")) for p in self.prices):
            raise ValueError(f"prices must be numbers >= 0, got {self.prices}")
        if self.simulator == "tick":
            if self.workload != "synthetic":
                raise ValueError("the tick comparison trains and evaluates on synthetic days (workload "
                                 f"'synthetic'); got the trace folder {self.workload!r}, which the minute "
                                 "simulator reads")
            if self.start_minute + self.minutes > 1440:
                raise ValueError(f"start_minute + minutes must stay within the day (1440), got "
                                 f"{self.start_minute} + {self.minutes}")
            if self.train_start_minute + self.train_minutes > 1440:
                raise ValueError(f"train_start_minute + train_minutes must stay within the day (1440), got "
                                 f"{self.train_start_minute} + {self.train_minutes}")
        if self.q_learning_train_day is not None and self.q_learning_train_day == self.day:
            raise ValueError(f"q_learning_train_day must differ from day ({self.day}): Q-learning trains on another "
                             "day of the same functions than the one it is evaluated on")
        if self.workload != "synthetic" and not Path(self.workload).is_dir():
            raise ValueError(f"workload must be 'synthetic' or an existing folder of trace files, "
                             f"got {self.workload!r}")
        return self


class NPlayerConfig(_Strict):
    """The trained policy in the finite N-player game (``experiments.nplayer``; docs/nplayer.md)."""

    sizes: list[int] = Field(description="numbers of players N to evaluate, each >= 1", min_length=1)
    method: Literal["auto", "exact", "sampled"] = Field(
        "auto", description="exact dynamic programming, sampled players, or auto (exact where it is cheap)")
    episodes: int = Field(256, ge=2, description="sampled episodes per N (95% intervals over them)")
    seed: int = Field(0, ge=0, description="PRNG seed of the sampled evaluation")
    temperature: float | None = Field(None, ge=0, description="lambda of the exploitability (default: the "
                                      "solver's temperature, else 0)")
    hindsight: bool = Field(True, description="sampled: also the hindsight deviator's upper bound")
    marginal: bool = Field(False, description="a state-action game that reads only the state marginal: evaluate "
                           "it over state counts (mfg.nplayer.marginal_game, checked on probes)")
    horizon: int | None = Field(None, gt=0, description="sampled, stationary games: steps simulated "
                                "(default: until gamma^H <= 1e-4)")

    @field_validator("sizes")
    @classmethod
    def _sizes(cls, value):
        if any(isinstance(n, bool) or n < 1 for n in value):
            raise ValueError(f"sizes must be positive player counts, got {value}")
        return sorted(set(value))


class ExperimentConfig(_Strict):
    name: str = Field("experiment", description="run folder name: letters, digits, '_', '.', '-', "
                      "not starting with '.', at most 200 characters")
    description: str = ""
    precision: Literal["float32", "float64"] = "float32"
    game: GameConfig
    solver: SolverConfig
    run: RunConfig = Field(default_factory=RunConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    evaluation: EvaluationConfig | None = Field(None, description="serverless comparison after training")
    devices: DevicesConfig | None = Field(None, description="shard the run over devices and hosts (default: one device)")
    nplayer: NPlayerConfig | None = Field(None, description="evaluate the trained policy in the N-player game")

    @model_validator(mode="after")
    def _evaluation_needs_serverless(self):
        if self.evaluation is not None and self.game.name != "serverless":
            raise ValueError(f"evaluation (the serverless comparison) needs game 'serverless', "
                             f"got {self.game.name!r}")
        return self

    @field_validator("name")
    @classmethod
    def _folder_name(cls, value):
        if not is_folder_name(value):
            raise ValueError(f"must be a folder name of letters, digits, '_', '.' and '-' that does not start "
                             f"with '.' (at most 200 characters), got {value!r}")
        return value

    @field_validator("precision", mode="before")
    @classmethod
    def _precision(cls, value):
        if value not in ("float32", "float64"):
            raise ValueError(f"precision must be 'float32' or 'float64', got {value!r}")
        return value


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate keys (PyYAML keeps the last one silently)
    and reads ``1e-3`` as a number (YAML 1.1 needs ``1.0e-3``; YAML 1.2 and JSON do not)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:                          # an unhashable key: let PyYAML say so
                continue
            if first != key_node.start_mark.line + 1:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first given on line {first})", key_node.start_mark)
        return super().construct_mapping(node, deep)


_Loader.add_implicit_resolver("tag:yaml.org,2002:float",
                              re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
                              list("-+0123456789"))


def load_yaml(text: str):
    """Parse YAML text as experiment configs are parsed (``_Loader``)."""
    return yaml.load(text, Loader=_Loader)


def _format_errors(err: ValidationError, source: str) -> str:
    lines = [f"invalid experiment config {source}:"]
    for e in err.errors():
        where = ".".join(str(part) for part in e["loc"]) or "(top level)"
        message = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            message = "unknown key"
            parent = _model_at(e["loc"][:-1])
            if parent is not None:
                message += f"; allowed: {', '.join(parent.model_fields)}"
        elif e["type"] != "value_error" and "input" in e and not isinstance(e["input"], (dict, list)):
            message += f", got {describe_value(e['input'])}"
        for entry in message.split("\n"):
            if entry.startswith("params."):
                lines.append(f"  {where}.{entry}")
            else:
                lines.append(f"  {where}: {entry}")
    return "\n".join(lines)


def _model_at(loc) -> type[BaseModel] | None:
    model: type[BaseModel] = ExperimentConfig
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        annotation = field.annotation
        candidates = [a for a in getattr(annotation, "__args__", (annotation,)) if isinstance(a, type)]
        models = [a for a in candidates if issubclass(a, BaseModel)]
        if not models:
            return None
        model = models[0]
    return model


def _parse_value(raw: str):
    try:
        return load_yaml(raw)
    except yaml.YAMLError:
        try:
            return ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            return raw


def apply_overrides(tree: dict, overrides: list[str]) -> dict:
    """Apply ``path.to.key=value`` overrides (values parsed as YAML) to a config tree."""
    tree = copy.deepcopy(tree)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects path.to.key=value, got {item!r}")
        path, raw = item.split("=", 1)
        keys = [k for k in path.strip().split(".") if k]
        if not keys:
            raise ConfigError(f"--set has an empty key path: {item!r}")
        node = tree
        for key in keys[:-1]:
            if not isinstance(node.setdefault(key, {}), dict):
                raise ConfigError(f"--set {path}: {key!r} is not a mapping")
            node = node[key]
        node[keys[-1]] = _parse_value(raw)
    return tree


def parse_config(tree: Any, source: str = "", overrides: list[str] | None = None) -> ExperimentConfig:
    """Validate a config tree (a dict from YAML) into an ``ExperimentConfig``."""
    if not isinstance(tree, dict):
        raise ConfigError(f"experiment config {source} must be a YAML mapping, got {type(tree).__name__}")
    tree = apply_overrides(tree, overrides or [])
    try:
        return ExperimentConfig.model_validate(tree)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, source)) from None


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read and validate a YAML experiment file (``yaml.safe_load``)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"experiment config {path} does not exist" if not path.exists() else
                          f"experiment config {path} is not a file")
    try:
        tree = load_yaml(path.read_text())
    except UnicodeDecodeError as err:
        raise ConfigError(f"experiment config {path} is not a text file ({err.reason})") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"experiment config {path} is not valid YAML: {err}") from None
    if isinstance(tree, dict) and "name" not in tree:
        tree = {"name": path.stem, **tree}
    return parse_config(tree, str(path), overrides)

"""Run configuration: one YAML file, every key documented, unknown keys rejected.

A run's YAML has four sections, each a dataclass whose fields carry their documentation in
`field(metadata={"help": ...})`:

    seed: 42
    data:  {...}   # adaptive_loop.data.pipeline.DataConfig
    model: {...}   # the config of the model `model.name` picks (adaptive_loop.model.registry)
    train: {...}   # adaptive_loop.config.TrainConfig
    trace: {...}   # adaptive_loop.config.TraceConfig

`adaptive-loop config` prints every key with its default and help text as commented YAML.
`resolve_config` finds the built-in configs in `adaptive_loop/configs/` by name.
An unknown or mistyped key is a `ConfigError` that names the key, the section and the
closest valid key. YAML is read with `yaml.safe_load` only.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from adaptive_loop.config_loading import from_dict
from adaptive_loop.data.pipeline import DataConfig
from adaptive_loop.errors import ConfigError
from adaptive_loop.model import LoopCTRConfig, ModelConfig, config_from_dict, own_keys
from adaptive_loop.model.memory import DEFAULT_EVAL_MEMORY_MB


@dataclass
class HaltingConfig:
    """Joint ACT halting head trained with the model (see `adaptive_loop.training.joint_halting`); off by default."""

    enabled: bool = field(default=False, metadata={"help": "Train an ACT halting head together with the model (saved in checkpoints under 'halting')."})
    weight: float = field(default=0.1, metadata={"help": "Weight of the ACT term (expected per-depth BCE + ponder cost) in the training loss."})
    tau: float = field(default=0.005, metadata={"help": "ACT ponder cost per loop step (Graves' tau)."})
    eps: float = field(default=0.05, metadata={"help": "ACT halting threshold while training: halt once the cumulative halting probability reaches 1 - eps."})
    hidden: int = field(default=16, metadata={"help": "Hidden width of the halting head (0 = linear head)."})
    detach: bool = field(
        default=False,
        metadata={"help": "true: the ACT term trains only the head (the model trains as without it); false: it also reaches the model."},
    )

    def __post_init__(self) -> None:
        if self.weight < 0 or self.tau < 0 or self.hidden < 0:
            raise ConfigError("train.halting.weight, tau and hidden must be >= 0")
        if not 0.0 < self.eps < 1.0:
            raise ConfigError(f"train.halting.eps must lie in (0, 1), got {self.eps!r}")


ROUTING_MODES = ("off", "expert_choice", "token_choice")  # adaptive_loop.training.routing


@dataclass
class RoutingConfig:
    """Depth routing trained with the model (Mixture-of-Recursions style; see `adaptive_loop.training.routing`); off by default.

    After each loop step t < L a small router reads the detached hidden summary h_t and
    scores every row; the rows it selects run step t+1, the others exit at depth t and are
    trained by the BCE at that depth only. `capacity[t]` is the share of the whole batch that
    runs step t+1 (expert choice keeps exactly that share by top-k; token choice lets each
    row decide and pushes the mean towards it with a balancing loss).
    """

    mode: str = field(
        default="off",
        metadata={"help": "'off', 'expert_choice' (top-k of the router score among the running rows keeps capacity[t] of the "
                  "batch after step t) or 'token_choice' (a row continues when its router probability >= 0.5; a balancing "
                  "loss keeps the mean near capacity[t])."},
    )
    capacity: tuple[float, ...] = field(
        default=(),
        metadata={"help": "Share of the batch that runs loop step t+1, for t = 0..L-1 (non-increasing, in [0, 1]); "
                  "empty = halving, (1/2, 1/4, ...). The mean loop count is their sum."},
    )
    hidden: int = field(default=16, metadata={"help": "Hidden width of the router MLP (0 = linear router)."})
    process_weight: float = field(
        default=0.1,
        metadata={"help": "Weight of the process-supervision term (mean BCE over every depth, every row) added to the "
                  "exit-depth BCE: keeps every depth's Exit usable (the router's calibration and later re-budgeting move "
                  "rows between depths)."},
    )
    selection_weight: float = field(
        default=0.1,
        metadata={"help": "Expert choice: weight of the auxiliary BCE that trains sigmoid(router score) to predict the "
                  "top-k selection, so a per-sample threshold can replace the batch top-k at inference."},
    )
    balance_weight: float = field(
        default=1.0,
        metadata={"help": "Token choice: weight of the balancing loss sum_t (mean continue probability - capacity[t])^2."},
    )
    monitor: bool = field(
        default=True,
        metadata={"help": "Early stopping and the best checkpoint follow the routed validation AUC (every row at the depth "
                  "the batch top-k / token rule sends it to, in batches of train.batch_size) instead of train.monitor."},
    )

    def __post_init__(self) -> None:
        if self.mode not in ROUTING_MODES:
            raise ConfigError(f"train.routing.mode={self.mode!r} is not one of {', '.join(ROUTING_MODES)}")
        self.capacity = tuple(float(c) for c in self.capacity)
        if any(not 0.0 <= c <= 1.0 for c in self.capacity):
            raise ConfigError(f"train.routing.capacity must hold shares in [0, 1], got {list(self.capacity)}")
        if any(b > a for a, b in zip(self.capacity, self.capacity[1:])):
            raise ConfigError(f"train.routing.capacity must be non-increasing (rows that exit never come back), got {list(self.capacity)}")
        for name in ("hidden", "process_weight", "selection_weight", "balance_weight"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"train.routing.{name} must be >= 0, got {getattr(self, name)!r}")

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    def capacities(self, train_loops: int) -> tuple[float, ...]:
        """The per-step capacities for L = `train_loops` (the halving default when `capacity` is empty).

        Raises `ConfigError` unless there is one share per loop step 0..L-1.
        """
        if not self.capacity:
            return tuple(0.5 ** (t + 1) for t in range(train_loops))
        if len(self.capacity) != train_loops:
            raise ConfigError(
                f"train.routing.capacity has {len(self.capacity)} shares but the model runs {train_loops} loop steps; "
                f"give one share per step (t = 0..{train_loops - 1}) or leave it empty"
            )
        return self.capacity

    def matched_depth_weights(self, train_loops: int) -> tuple[float, ...]:
        """Per-depth loss weights w_0..w_L that give depth t the weight expert-choice routing gives it on average.

        The routed loss is the exit BCE (a share s_t of the batch exits at depth t: s_0 = 1 - c_0,
        s_t = c_{t-1} - c_t, s_L = c_{L-1}) plus `process_weight` x the mean BCE over the L + 1
        depths, so depth t carries s_t + process_weight / (L + 1). A process-supervised run with
        these `train.depth_loss_weights` is the control that separates what routing adds from
        what re-weighting the depths adds (shallow depths get more weight than the uniform mean).
        """
        c = self.capacities(train_loops)
        shares = [1.0 - c[0]] + [c[t - 1] - c[t] for t in range(1, train_loops)] + [c[-1]]
        return tuple(s + self.process_weight / (train_loops + 1) for s in shares)


OPTIMIZERS = ("adamw", "adam")  # built by adaptive_loop.training.optim.build_optimizer
LR_SCHEDULES = ("constant", "plateau")  # adaptive_loop.training.optim.PlateauSchedule


@dataclass
class TrainConfig:
    """How LoopCTR is trained (process supervision: mean BCE over depths 0..L + aux loss)."""

    epochs: int = field(default=10, metadata={"help": "Maximum number of passes over the training split."})
    batch_size: int = field(default=1024, metadata={"help": "Training batch size (rows)."})
    eval_batch_size: int = field(
        default=8192,
        metadata={"help": "Upper bound on the rows of one validation, evaluation, trace or scoring batch; the batch "
                  "actually used is the smaller of this and the rows whose activations fit eval_memory_mb."},
    )
    eval_memory_mb: float = field(
        default=DEFAULT_EVAL_MEMORY_MB,
        metadata={"help": "Memory budget (MB) for the activations of one validation, evaluation, trace or scoring "
                  "batch: the batch is derived from it and the model's size per row (tokens x width x streams x "
                  "experts, attention maps [heads, T, T]; adaptive_loop.model.memory), so peak memory stays bounded "
                  "whatever the data's size and sequence length. Raise it for larger, slightly faster batches."},
    )
    train_memory_mb: float | None = field(
        default=None,
        metadata={"help": "Memory budget (MB) for the activations autograd keeps for one training forward pass; a batch "
                  "that needs more runs as micro-batches whose gradients add up to the batch's (one optimiser step). "
                  "The bytes per row are measured on the first batch (adaptive_loop.training.micro_batches); the step's "
                  "peak is about twice the budget. BatchNorm and the MoE balance loss then use micro-batch statistics. "
                  "null: whole batches. Single process, without train.routing."},
    )
    optimizer: str = field(default="adamw", metadata={"help": "'adamw' or 'adam' (FuxiCTR/BARS train with Adam)."})
    lr: float = field(default=1e-3, metadata={"help": "Learning rate (the starting one when lr_schedule is 'plateau')."})
    weight_decay: float = field(
        default=1e-5,
        metadata={"help": "The optimiser's own weight decay on every parameter: decoupled with AdamW, added to the "
                  "gradient with Adam. For FuxiCTR's penalties use embedding_l2 / dense_l2 instead."},
    )
    embedding_l2: float = field(
        default=0.0,
        metadata={"help": "lambda_E: adds lambda_E/2 * sum ||E||^2 over the whole of every embedding table to the loss "
                  "at every step (FuxiCTR's embedding_regularizer; BARS Frappe_x1: 0.05). See adaptive_loop.training.optim."},
    )
    dense_l2: float = field(
        default=0.0,
        metadata={"help": "lambda_W: adds lambda_W/2 * sum ||W||^2 over every non-embedding parameter to the loss "
                  "(FuxiCTR's net_regularizer; BARS Frappe_x1: 0)."},
    )
    lr_schedule: str = field(
        default="constant",
        metadata={"help": "'constant', or 'plateau': multiply the LR by lr_factor after every epoch without a gain of "
                  "the monitor, floor min_lr, and keep training (FuxiCTR's reduce_lr_on_plateau)."},
    )
    lr_factor: float = field(default=0.1, metadata={"help": "Plateau schedule: factor applied to the LR at each cut (FuxiCTR: 0.1)."})
    min_lr: float = field(default=1e-6, metadata={"help": "Plateau schedule: the LR never goes below this (FuxiCTR: 1e-6)."})
    depth_loss_weights: tuple[float, ...] = field(
        default=(),
        metadata={"help": "Weights w_0..w_L of the per-depth BCE terms (loss = sum_l w_l BCE_l / sum_l w_l); "
                  "empty = the paper's uniform mean over depths 0..L."},
    )
    grad_clip: float = field(default=1.0, metadata={"help": "Clip the global gradient norm to this value; 0 disables clipping (FuxiCTR: 10)."})
    oov_dropout: dict[str, float] = field(
        default_factory=dict,
        metadata={"help": "{categorical field: p}: in training, replace the field's id by the OOV id in a share p of rows "
                  "(trains the OOV embedding for evaluation splits with unseen ids, e.g. {user: 0.8}); see adaptive_loop.training.oov_dropout."},
    )
    monitor: str = field(
        default="auc@L",
        metadata={
            "help": "Validation metric for early stopping and the best checkpoint: 'auc@L' (AUC at the trained "
            "depth L), 'auc@<k>' (AUC at depth k), 'mean_auc' (mean AUC over depths 0..L), 'logloss@L', "
            "'logloss@<k>' or 'mean_logloss'. AUC metrics are maximised, logloss minimised."
        },
    )
    patience: int = field(default=2, metadata={"help": "Stop after this many epochs without improvement of the monitor."})
    min_delta: float = field(default=1e-4, metadata={"help": "Smallest change of the monitor that counts as an improvement."})
    max_steps_per_epoch: int = field(default=0, metadata={"help": "Cap on optimiser steps per epoch (0 = the whole split); for quick runs."})
    num_threads: int = field(default=2, metadata={"help": "torch intra-op threads on CPU (2 is fastest on a 2-core machine)."})
    device: str = field(default="auto", metadata={"help": "'auto' (CUDA when available, else CPU), 'cpu', 'cuda' or 'cuda:<i>'."})
    progress: bool = field(default=True, metadata={"help": "Show tqdm progress bars."})
    halting: HaltingConfig = field(default_factory=HaltingConfig, metadata={"help": "Joint ACT halting head (off by default)."})
    routing: RoutingConfig = field(default_factory=RoutingConfig, metadata={"help": "Depth routing trained with the model (off by default)."})

    def __post_init__(self) -> None:
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "eval_batch_size": self.eval_batch_size,
                    "patience": self.patience, "num_threads": self.num_threads}
        for name, value in positive.items():
            if value < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {value}")
        if not self.lr > 0:
            raise ConfigError(f"train.lr must be > 0, got {self.lr}")
        for name, value, nullable in (("eval_memory_mb", self.eval_memory_mb, False),
                                      ("train_memory_mb", self.train_memory_mb, True)):
            if nullable and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                allowed = "null or a number of megabytes > 0" if nullable else "a number of megabytes > 0"
                raise ConfigError(f"train.{name} must be {allowed}, got {value!r}")
        for name in ("weight_decay", "grad_clip", "min_delta", "embedding_l2", "dense_l2", "min_lr"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"train.{name} must be >= 0, got {getattr(self, name)}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"train.optimizer={self.optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"train.lr_schedule={self.lr_schedule!r} is not one of {', '.join(LR_SCHEDULES)}")
        if not 0.0 < self.lr_factor < 1.0:
            raise ConfigError(f"train.lr_factor must lie in (0, 1), got {self.lr_factor!r}")
        if self.lr_schedule == "plateau" and self.patience < 2:
            raise ConfigError(
                f"train.lr_schedule='plateau' with train.patience={self.patience}: training would stop at the first epoch "
                f"without a gain, before the reduced learning rate is ever used; set train.patience >= 2"
            )
        for name, rate in self.oov_dropout.items():
            if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0:
                raise ConfigError(f"train.oov_dropout.{name} must be a probability in [0, 1], got {rate!r}")
        self.oov_dropout = {str(k): float(v) for k, v in self.oov_dropout.items()}
        self.depth_loss_weights = tuple(float(w) for w in self.depth_loss_weights)
        if any(not w >= 0 for w in self.depth_loss_weights) or (self.depth_loss_weights and sum(self.depth_loss_weights) <= 0):
            raise ConfigError(f"train.depth_loss_weights must be >= 0 with a positive sum, got {list(self.depth_loss_weights)}")
        if self.max_steps_per_epoch < 0:
            raise ConfigError(f"train.max_steps_per_epoch must be >= 0 (0 = no cap), got {self.max_steps_per_epoch}")


@dataclass
class TraceConfig:
    """What `adaptive-loop trace` records by default."""

    max_depth: int = field(default=-1, metadata={"help": "Deepest depth K in traces and per-depth tables; -1 means L + 2."})
    hidden: bool = field(default=True, metadata={"help": "Store per-depth hidden summaries (pooled global tokens) in traces."})

    def __post_init__(self) -> None:
        if self.max_depth < -1:
            raise ConfigError(f"trace.max_depth must be >= 0, or -1 for L + 2; got {self.max_depth}")


@dataclass
class RunConfig:
    """A whole training run."""

    seed: int = field(default=42, metadata={"help": "Fixes the data split, sampling, initialisation and batch order."})
    data: DataConfig = field(default_factory=DataConfig, metadata={"help": "Dataset and encoding."})
    model: ModelConfig = field(
        default_factory=LoopCTRConfig,
        metadata={"help": "Model architecture: `name` picks the model and the other keys are that model's own "
                  "(`adaptive-loop config --set model.name=deepfm` lists a model's keys).", "parse": config_from_dict},
    )
    train: TrainConfig = field(default_factory=TrainConfig, metadata={"help": "Optimisation and early stopping."})
    trace: TraceConfig = field(default_factory=TraceConfig, metadata={"help": "Depth traces."})

    def trace_depth(self) -> int:
        """The K used for per-depth tables and traces."""
        return self.trace.max_depth if self.trace.max_depth >= 0 else self.model.train_loops + 2

    def to_dict(self) -> dict[str, Any]:
        """The whole config as nested plain dicts (`dataclasses.asdict`), as saved in checkpoints."""
        return dataclasses.asdict(self)


BUILTIN_CONFIGS = Path(__file__).parent / "configs"


def resolve_config(name_or_path: str | None) -> Path | None:
    """A config path, or the name of a built-in config (`demo`, `frappe_x1`, `movielens_100k`, ...)."""
    if name_or_path is None:
        return None
    path = Path(name_or_path)
    if path.is_file():
        return path
    builtin = BUILTIN_CONFIGS / f"{name_or_path}.yaml"
    if builtin.is_file():
        return builtin
    names = ", ".join(sorted(p.stem for p in BUILTIN_CONFIGS.glob("*.yaml")))
    raise ConfigError(f"config {name_or_path!r} is neither a file nor a built-in config ({names})")


def config_source(path: str | Path) -> str:
    """How results name a config without a machine path: `builtin:<name>` for a built-in one,
    else the path relative to the working directory where it lies below it."""
    resolved = Path(path).resolve()
    if resolved.parent == BUILTIN_CONFIGS.resolve():
        return f"builtin:{resolved.stem}"
    try:
        return str(resolved.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None, saved_run: bool = False) -> RunConfig:
    """Read a run config from YAML (or defaults when `path` is None), then apply `key=value` overrides.

    Overrides use dotted keys and YAML values: `train.lr=3e-4`, `model.train_loops=2`.
    `saved_run=True` reads the `config.yaml` a run directory holds (see `config_from_dict`).
    """
    raw: dict[str, Any] = {}
    if path is not None:
        source = Path(path)
        if not source.is_file():
            raise ConfigError(f"config file {source} does not exist")
        try:
            loaded = yaml.safe_load(source.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {source} is not valid YAML: {str(exc).splitlines()[0]}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {source} must hold a mapping at the top level")
        raw = loaded or {}
    raw = apply_overrides(raw, overrides or [])
    try:
        return config_from_dict(raw, saved_run)
    except ConfigError as exc:
        where = f"{path}: " if path else ""
        raise ConfigError(f"{where}{exc}") from None


def config_from_dict(raw: dict[str, Any], saved_run: bool = False) -> RunConfig:
    """A `RunConfig` from nested plain dicts (parsed YAML, a checkpoint's `config`), every key checked.

    With `saved_run`, the `model` section keeps only the keys of its own model's config: run
    configs saved before each model had its own config dataclass hold one flat section with
    every model's keys. In a config a user writes, another model's key stays an error that
    names the closest valid key.
    """
    if saved_run and isinstance(raw.get("model"), dict):
        raw = {**raw, "model": own_keys(raw["model"])}
    return from_dict(RunConfig, raw, "")


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of `raw` with dotted `key=value` overrides applied (values parsed as YAML)."""
    import copy

    result = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        key, text = item.split("=", 1)
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        node = result
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
        node[parts[-1]] = value
    return result


def config_to_yaml(config: RunConfig) -> str:
    """Plain YAML of a config (what a run directory stores)."""
    return yaml.safe_dump(_plain(config.to_dict()), sort_keys=False)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def describe_config(config: RunConfig | None = None) -> str:
    """Commented YAML listing every key with its value and documentation."""
    config = config or RunConfig()
    lines = ["# adaptive-loop run configuration: every key, its default and what it does."]
    _describe(config, lines, indent=0)
    return "\n".join(lines) + "\n"


def _describe(obj: Any, lines: list[str], indent: int) -> None:
    pad = "  " * indent
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        help_text = f.metadata.get("help", "")
        if help_text:
            lines.append(f"{pad}# {help_text}")
        if dataclasses.is_dataclass(value):
            lines.append(f"{pad}{f.name}:")
            _describe(value, lines, indent + 1)
        else:
            dumped = yaml.safe_dump({f.name: _plain(value)}, default_flow_style=True, width=10_000).strip()
            lines.append(f"{pad}{dumped[1:-1] if dumped.startswith('{') else dumped}")

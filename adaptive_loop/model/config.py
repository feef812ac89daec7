"""`ModelConfig`: every architecture choice of LoopCTR, StackCTR and the baselines.

The LoopCTR paper leaves most sizes and several mechanisms unpublished (see
docs LOOPCTR.md). Every such point is a field here, and its help text says "[ours]" when
the value is our choice rather than the paper's. Defaults are sized for CPU: on a
10-field categorical dataset the default LoopCTR has ~0.45M dense parameters, inside the
0.59M-1.15M band the paper reports once sequence tokens are added.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from typing import Any

from adaptive_loop.config_loading import from_dict
from adaptive_loop.errors import ConfigError

MODEL_NAMES = ("loopctr", "stackctr", "deepfm", "dcnv2")
BALANCE_LOSSES = ("switch", "entropy")
ENTRY_GROUPS = ("seq_global", "prefix", "full")
SUMMARIES = ("mean_global", "mean_all")
HC_READOUTS = ("mean", "sum")
NUMERIC_MODES = ("embed", "dense")
DCN_STRUCTURES = ("stacked", "parallel")
DENSE_INITS = ("torch", "xavier_normal")
TOKEN_GROUPINGS = ("schema", "per_field")


@dataclass
class ModelConfig:
    """Architecture of one model; `name` picks the model, the other fields size it."""

    name: str = field(
        default="loopctr",
        metadata={
            "help": "Model: 'loopctr' (one shared Loop block applied i times), 'stackctr' (L unshared "
            "loop blocks, same FLOPs per depth), 'deepfm' or 'dcnv2' (baselines without a loop, depth 0 only)."
        },
    )
    embed_dim: int = field(default=16, metadata={"help": "Width e of every embedding table [ours]."})
    d_model: int = field(default=64, metadata={"help": "Token width d of the Entry/Loop/Exit blocks [ours; not published]."})
    n_heads: int = field(default=4, metadata={"help": "Attention heads; must divide d_model [ours]."})
    ffn_mult: int = field(default=2, metadata={"help": "FFN hidden width = ffn_mult * d_model, per expert [ours]."})
    train_loops: int = field(
        default=3,
        metadata={"help": "L: loop steps used in training (process supervision over depths 0..L); L = 3 is the reported main setting."},
    )
    moe: bool = field(default=True, metadata={"help": "Use top-k mixture-of-experts FFNs (off: one dense FFN of the same width)."})
    n_experts: int = field(default=4, metadata={"help": "E: experts per MoE layer (paper: E = 4 with top-2 is best)."})
    top_k: int = field(default=2, metadata={"help": "k: experts each token is routed to (paper: 2 of 4)."})
    moe_attention: bool = field(
        default=True,
        metadata={"help": "Make the attention value and output projections MoE with one shared router per token; Q and K stay dense."},
    )
    router_renormalize: bool = field(
        default=True,
        metadata={"help": "Renormalise the k selected router probabilities to sum to 1 [ours]; off: use the raw softmax probabilities."},
    )
    balance_loss: str = field(
        default="switch",
        metadata={
            "help": "Load-balancing loss: 'switch' (E * sum_e f_e P_e, averaged over MoE calls) or 'entropy' "
            "(MoEUT: log E - entropy of the mean routing distribution, averaged over loop iterations per router)."
        },
    )
    aux_weight: float = field(default=0.01, metadata={"help": "lambda_aux: weight of the load-balancing loss in the training loss [ours]."})
    hyper_connections: bool = field(
        default=True, metadata={"help": "Hyper-connected residuals (Zhu et al. 2024) around both Loop sub-layers; off: plain residuals."}
    )
    hc_streams: int = field(default=2, metadata={"help": "n: residual streams per token when hyper_connections is on (2..4) [ours]."})
    hc_dynamic: bool = field(
        default=True, metadata={"help": "Dynamic hyper-connections (input-dependent A_m, A_r, B); off: static matrices only."}
    )
    hc_scale_init: float = field(default=0.01, metadata={"help": "Initial value of the learnable scales s_a and s_b of dynamic hyper-connections."})
    hc_readout: str = field(
        default="mean",
        metadata={
            "help": "How the n streams become one hidden state before each Exit call [ours]: 'mean' (sum / n, so "
            "at init the read-out equals a plain pre-norm residual stack) or 'sum' (n times that at init)."
        },
    )
    dropout: float = field(
        default=0.0,
        metadata={"help": "Dropout on attention weights, sub-layer outputs and MLP tower layers (training only), unless "
                  "attention_dropout, sublayer_dropout or tower_dropout set their own rate [ours]."},
    )
    attention_dropout: float | None = field(
        default=None, metadata={"help": "Dropout on the attention weights (Entry, Loop, Exit cross-attention); null = model.dropout."}
    )
    sublayer_dropout: float | None = field(
        default=None,
        metadata={"help": "Dropout on the attention and FFN sub-layer outputs before the residual add; null = model.dropout."},
    )
    tower_dropout: float | None = field(
        default=None,
        metadata={"help": "Dropout after each hidden layer of the MLP towers (LoopCTR's Exit tower, the baselines' deep "
                  "MLPs); null = model.dropout. BARS tunes it per model (Frappe_x1: DeepFM 0.2, DCNv2 0.4)."},
    )
    batch_norm: bool = field(
        default=False,
        metadata={"help": "MLP towers as Linear -> BatchNorm -> ReLU -> Dropout (FuxiCTR's MLP_Block); off: no batch norm."},
    )
    dense_init: str = field(
        default="torch",
        metadata={"help": "Init of the MLP tower, cross and head linears: 'torch' (PyTorch default, Kaiming-uniform) or "
                  "'xavier_normal' (FuxiCTR: Xavier-normal weights, zero biases). Transformer projections keep init_std."},
    )
    seq_compress_queries: int = field(
        default=0,
        metadata={"help": "m: compress the behaviour sequence into m tokens with m learned queries (cross-attention); 0 = off [ours]."},
    )
    entry_groups: str = field(
        default="seq_global",
        metadata={
            "help": "Entry grouped self-attention mask [ours]: 'seq_global' (block-diagonal: sequence tokens and "
            "global tokens attend within their group), 'prefix' (as the Loop block) or 'full'. Only 'seq_global' "
            "and 'prefix' keep sequence tokens independent of the candidate item."
        },
    )
    token_groups: str = field(
        default="schema",
        metadata={"help": "Global tokens [ours]: 'schema' (the dataset's token_groups, e.g. frappe_x1's 5 grouped tokens) "
                  "or 'per_field' (one token per categorical field and pooled sequence, numerics together)."},
    )
    summary: str = field(
        default="mean_global",
        metadata={"help": "Hidden summary of a state [ours]: 'mean_global' (mean of the global tokens) or 'mean_all' (mean of all valid tokens)."},
    )
    exit_cross_attention: bool = field(
        default=True, metadata={"help": "Exit: global tokens cross-attend the sequence tokens before the tower (skipped without sequence tokens)."}
    )
    tower_hidden: tuple[int, ...] = field(
        default=(256, 128), metadata={"help": "Hidden widths of the Exit task tower (MLP over the concatenated global tokens) [ours]."}
    )
    init_std: float = field(default=0.02, metadata={"help": "Std of the normal init of attention, FFN, expert and router weights [ours]."})
    embed_init_std: float = field(
        default=0.05,
        metadata={"help": "Std of the normal init of embedding tables (and numeric field vectors) [ours]; FuxiCTR's default is 1e-4."},
    )
    numeric_mode: str = field(
        default="embed",
        metadata={"help": "Baselines: numeric fields as scaled embeddings v_f * x_f ('embed') or as a dense MLP input ('dense')."},
    )
    deepfm_hidden: tuple[int, ...] = field(default=(256, 128), metadata={"help": "DeepFM deep-part hidden widths."})
    dcn_cross_layers: int = field(default=3, metadata={"help": "DCNv2 cross layers."})
    dcn_low_rank: int = field(default=0, metadata={"help": "DCNv2 cross-layer rank: 0 = full matrix W, r > 0 = U V^T of rank r."})
    dcn_hidden: tuple[int, ...] = field(default=(256, 128), metadata={"help": "DCNv2 deep-part hidden widths."})
    dcn_structure: str = field(default="stacked", metadata={"help": "DCNv2: 'stacked' (cross then deep) or 'parallel' (both on x0, concatenated)."})

    def __post_init__(self) -> None:
        self.tower_hidden = tuple(self.tower_hidden)
        self.deepfm_hidden = tuple(self.deepfm_hidden)
        self.dcn_hidden = tuple(self.dcn_hidden)
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise `ConfigError` naming the first invalid key and value."""
        _choice("name", self.name, MODEL_NAMES)
        _choice("balance_loss", self.balance_loss, BALANCE_LOSSES)
        _choice("entry_groups", self.entry_groups, ENTRY_GROUPS)
        _choice("summary", self.summary, SUMMARIES)
        _choice("hc_readout", self.hc_readout, HC_READOUTS)
        _choice("numeric_mode", self.numeric_mode, NUMERIC_MODES)
        _choice("dcn_structure", self.dcn_structure, DCN_STRUCTURES)
        _choice("dense_init", self.dense_init, DENSE_INITS)
        _choice("token_groups", self.token_groups, TOKEN_GROUPINGS)
        for key in ("embed_dim", "d_model", "n_heads", "ffn_mult", "n_experts", "top_k", "hc_streams"):
            if getattr(self, key) < 1:
                raise ConfigError(f"model.{key} must be >= 1, got {getattr(self, key)!r}")
        for key in ("train_loops", "seq_compress_queries", "dcn_cross_layers", "dcn_low_rank"):
            if getattr(self, key) < 0:
                raise ConfigError(f"model.{key} must be >= 0, got {getattr(self, key)!r}")
        if self.d_model % self.n_heads:
            raise ConfigError(f"model.n_heads={self.n_heads} must divide model.d_model={self.d_model}")
        if self.top_k > self.n_experts:
            raise ConfigError(f"model.top_k={self.top_k} must be <= model.n_experts={self.n_experts}")
        for key in ("dropout", "attention_dropout", "sublayer_dropout", "tower_dropout"):
            value = getattr(self, key)
            if value is not None and not 0.0 <= value < 1.0:
                raise ConfigError(f"model.{key} must be in [0, 1), got {value!r}")
        if self.embed_init_std <= 0 or self.init_std <= 0:
            raise ConfigError(f"model.embed_init_std and model.init_std must be > 0, got {self.embed_init_std!r}, {self.init_std!r}")
        if self.aux_weight < 0:
            raise ConfigError(f"model.aux_weight must be >= 0, got {self.aux_weight!r}")
        for key in ("tower_hidden", "deepfm_hidden", "dcn_hidden"):
            if any(int(w) < 1 for w in getattr(self, key)):
                raise ConfigError(f"model.{key} widths must be >= 1, got {getattr(self, key)!r}")

    # ------------------------------------------------------------------ construction
    @classmethod
    def tiny(cls, **overrides: Any) -> "ModelConfig":
        """A very small preset for tests and notebooks (d = 16, e = 4); `overrides` replace fields."""
        base: dict[str, Any] = dict(
            embed_dim=4,
            d_model=16,
            n_heads=2,
            ffn_mult=2,
            tower_hidden=(32,),
            deepfm_hidden=(32,),
            dcn_hidden=(32,),
            dcn_cross_layers=2,
        )
        base.update(overrides)
        return cls.from_dict(base)

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> "ModelConfig":
        """Build from a mapping; unknown keys and wrong types raise `ConfigError` with the closest valid key."""
        return from_dict(cls, raw, "model")

    def to_dict(self) -> dict[str, Any]:
        """The config as a plain dict (`dataclasses.asdict`)."""
        return dataclasses.asdict(self)

    @property
    def ffn_hidden(self) -> int:
        return self.ffn_mult * self.d_model

    @property
    def attention_dropout_rate(self) -> float:
        """Dropout on attention weights: `attention_dropout`, or `dropout` when unset."""
        return self.dropout if self.attention_dropout is None else self.attention_dropout

    @property
    def sublayer_dropout_rate(self) -> float:
        """Dropout on sub-layer outputs: `sublayer_dropout`, or `dropout` when unset."""
        return self.dropout if self.sublayer_dropout is None else self.sublayer_dropout

    @property
    def tower_dropout_rate(self) -> float:
        """Dropout in MLP towers: `tower_dropout`, or `dropout` when unset."""
        return self.dropout if self.tower_dropout is None else self.tower_dropout

    @property
    def streams(self) -> int:
        """Residual streams per token actually used (1 without hyper-connections)."""
        return self.hc_streams if self.hyper_connections else 1


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        close = difflib.get_close_matches(str(value), allowed, n=1, cutoff=0.5)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"model.{key}={value!r} is not one of {', '.join(allowed)}{hint}")

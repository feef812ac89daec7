"""`LoopCTRConfig`: every architecture choice of LoopCTR and StackCTR (`model.name` loopctr / stackctr).

The model itself is `loopctr.py` (Entry, the Loop block applied i times, Exit; StackCTR
has L unshared loop blocks instead of one shared block, the same FLOPs per depth). Defaults
are sized for CPU: on a 10-field categorical dataset the default LoopCTR has ~0.45M dense
parameters, inside the 0.59M-1.15M band the paper reports once sequence tokens are added.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from adaptive_loop.errors import ConfigError
from adaptive_loop.model.model_config import ModelConfig, check_choice, check_widths

BALANCE_LOSSES = ("switch", "entropy")
ENTRY_GROUPS = ("seq_global", "seq_self", "prefix", "full")
SUMMARIES = ("mean_global", "mean_all")
HC_READOUTS = ("mean", "sum")
TOKEN_GROUPINGS = ("schema", "per_field")


@dataclass
class LoopCTRConfig(ModelConfig):
    """Architecture of LoopCTR (one shared Loop block) or StackCTR (L unshared blocks)."""

    name: str = field(
        default="loopctr",
        metadata={
            "help": "Model: 'loopctr' (one shared Loop block applied i times) or 'stackctr' (L unshared loop "
            "blocks, same FLOPs per depth); 'deepfm' and 'dcnv2' are baselines with keys of their own."
        },
    )
    train_loops: int = field(
        default=3,
        metadata={"help": "L: loop steps used in training (process supervision over depths 0..L); L = 3 is the reported main setting."},
    )
    dropout: float = field(
        default=0.0,
        metadata={"help": "Dropout on sub-layer outputs (attention and FFN) and MLP tower layers (training only), unless "
                  "sublayer_dropout or tower_dropout set their own rate; the attention weights have their own "
                  "attention_dropout [ours]."},
    )
    attention_dropout: float = field(
        default=0.0,
        metadata={"help": "Dropout on the attention weights (Entry, Loop, Exit cross-attention), training only; 0 keeps "
                  "the fused attention kernel, > 0 goes through its dropout_p (slower on CPU) [ours]."},
    )
    sublayer_dropout: float | None = field(
        default=None,
        metadata={"help": "Dropout on the attention and FFN sub-layer outputs before the residual add; null = model.dropout."},
    )
    tower_dropout: float | None = field(
        default=None,
        metadata={"help": "Dropout after each hidden layer of the Exit task tower; null = model.dropout (the "
                  "baselines' model.dropout is their tower dropout: BARS Frappe_x1 tunes DeepFM 0.2, DCNv2 0.4)."},
    )
    d_model: int = field(default=64, metadata={"help": "Token width d of the Entry/Loop/Exit blocks [ours; not published]."})
    n_heads: int = field(default=4, metadata={"help": "Attention heads; must divide d_model [ours]."})
    ffn_mult: int = field(default=2, metadata={"help": "FFN hidden width = ffn_mult * d_model, per expert [ours]."})
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
    seq_compress_queries: int = field(
        default=0,
        metadata={"help": "m: compress the behaviour sequence into m tokens with m learned queries (cross-attention); 0 = off [ours]."},
    )
    entry_groups: str = field(
        default="seq_global",
        metadata={
            "help": "Entry grouped self-attention mask [ours]: 'seq_global' (block-diagonal: sequence tokens and "
            "global tokens attend within their group), 'seq_self' (the same, but each sequence token attends only "
            "itself: every lookup among events is left to the Loop block), 'prefix' (as the Loop block) or 'full'. "
            "Only 'seq_global', 'seq_self' and 'prefix' keep sequence tokens independent of the candidate item."
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

    TINY: ClassVar[dict[str, Any]] = dict(embed_dim=4, d_model=16, n_heads=2, ffn_mult=2, tower_hidden=(32,))

    def __post_init__(self) -> None:
        self.tower_hidden = tuple(self.tower_hidden)
        super().__post_init__()

    def validate(self) -> None:
        """Raise `ConfigError` naming the first invalid key and value."""
        super().validate()
        check_choice("balance_loss", self.balance_loss, BALANCE_LOSSES)
        check_choice("entry_groups", self.entry_groups, ENTRY_GROUPS)
        check_choice("summary", self.summary, SUMMARIES)
        check_choice("hc_readout", self.hc_readout, HC_READOUTS)
        check_choice("token_groups", self.token_groups, TOKEN_GROUPINGS)
        for key in ("d_model", "n_heads", "ffn_mult", "n_experts", "top_k", "hc_streams"):
            if getattr(self, key) < 1:
                raise ConfigError(f"model.{key} must be >= 1, got {getattr(self, key)!r}")
        if self.seq_compress_queries < 0:
            raise ConfigError(f"model.seq_compress_queries must be >= 0, got {self.seq_compress_queries!r}")
        if self.d_model % self.n_heads:
            raise ConfigError(f"model.n_heads={self.n_heads} must divide model.d_model={self.d_model}")
        if self.top_k > self.n_experts:
            raise ConfigError(f"model.top_k={self.top_k} must be <= model.n_experts={self.n_experts}")
        for key in ("attention_dropout", "sublayer_dropout", "tower_dropout"):
            value = getattr(self, key)
            if value is not None and not 0.0 <= value < 1.0:
                raise ConfigError(f"model.{key} must be in [0, 1), got {value!r}")
        if not self.init_std > 0:
            raise ConfigError(f"model.init_std must be > 0, got {self.init_std!r}")
        if self.aux_weight < 0:
            raise ConfigError(f"model.aux_weight must be >= 0, got {self.aux_weight!r}")
        check_widths(self, "tower_hidden")

    @property
    def ffn_hidden(self) -> int:
        return self.ffn_mult * self.d_model

    @property
    def attention_dropout_rate(self) -> float:
        """Dropout on attention weights: `attention_dropout` (not inherited from `dropout`, which would cost the fused kernel)."""
        return self.attention_dropout

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

"""How many rows an inference batch may hold so that its activations stay within a memory budget.

Evaluation, tracing and scoring run a model over splits of any size; a fixed batch of N
rows holds activations that grow with N times the tokens per row, the width, the residual
streams and the experts per token, so a batch that is harmless on Frappe (5 tokens) takes
gigabytes with a 30-event history (34 tokens, 2 streams, 2 experts per token). Instead the
batch is derived from a budget in bytes: `rows_within_budget(model, budget_mb)`.

`inference_bytes_per_row` is an upper estimate of the float32 tensors one row keeps alive at
the same time during an inference forward pass (no autograd graph), counted per token:

- residual streams: the state entering a loop step, its stream-major copy, the state after
  the attention sub-layer and the one after the FFN sub-layer (4 n d with n streams);
- one sub-layer's working tensors: norms, the merged input, packed Q/K/router projections,
  values, attention output and its transposed copy, output projection (14 d + 3 E), and,
  with MoE attention, the gathered inputs and outputs of the k chosen experts for V and O
  (4 k d);
- the attention maps [heads, T, T] of the scores and the softmax, and the boolean mask (as
  a non-fused kernel would hold them: the fused CPU kernel holds less, the estimate stays an
  upper one whichever kernel runs);
- the FFN: the k experts' gathered inputs, hidden activations and outputs (k (2 d + h));
- per row: the raw sequence embeddings and projections of the Entry, the Exit tower's
  activations (twice each width, pre- and post-activation), and the logits / summaries kept
  for every depth until the batch ends.

Tests (tests/test_eval_memory.py) check on several configs that the tensors really alive at
the peak of a forward pass stay below this estimate, and that results do not depend on the
batch size. Models other than LoopCTR/StackCTR (the field baselines) use a generic estimate
from their layer widths.
"""

from __future__ import annotations

from typing import Any

from torch import nn

FLOAT_BYTES = 4
MB = 2**20
DEFAULT_EVAL_MEMORY_MB = 256.0  # train.eval_memory_mb: ~1-2k rows with a 30-event history, the 8,192 cap on Frappe


def inference_bytes_per_row(model: nn.Module, depth: int = 0, hidden: bool = False) -> float:
    """Upper estimate of the bytes one row's activations take at the peak of an inference forward pass.

    `depth` and `hidden` size the per-depth outputs kept until the batch ends (logits, and
    summaries of width `model.hidden_dim` when `hidden`).
    """
    outputs = (depth + 1) * (1 + (int(getattr(model, "hidden_dim", 0)) if hidden else 0))
    geometry = getattr(model, "geometry", None)
    if geometry is None:
        return FLOAT_BYTES * (_generic_floats_per_row(model) + outputs)
    c = model.config
    d, t, n = c.d_model, geometry.n_tokens, (c.hc_streams if c.hyper_connections else 1)
    k_ffn = c.top_k if c.moe else 1
    k_attn = c.top_k if c.moe_attention else 1
    e = c.n_experts
    # alive through the whole step: the incoming state, its stream-major copy, the merged input and its norm
    common = 2 * n * d + 2 * d
    # attention: packed Q/K/router projections and values, then either one expert projection's gathered
    # inputs and outputs or the score and softmax maps [heads, T] and the mask row of a non-fused kernel
    attention = (2 * d + e) + d + max(2 * k_attn * d + d, 2 * c.n_heads * t + t + d)
    # FFN: the state written after attention, the k experts' gathered inputs, hidden activations and
    # outputs, the combined output and the routing tensors
    ffn = n * d + k_ffn * (2 * d + c.ffn_hidden) + d + 4 * e
    per_token = common + max(attention, ffn)
    seq_raw = sum(s.max_len for s in model.spec.sequences) * (c.embed_dim + d)
    tower = 2 * (geometry.n_glb * d + sum(c.tower_hidden))
    return FLOAT_BYTES * (t * per_token + seq_raw + tower + outputs)


def _generic_floats_per_row(model: nn.Module) -> float:
    """Models without token geometry: twice the summed output widths of their linear layers, plus embeddings.

    A field baseline's activations per row are its fields' embeddings (every categorical field
    and sequence position looked up, counted at the widest table) and its layers' outputs; the
    factor 2 covers the pre- and post-activation copies and batch norm.
    """
    widths = sum(m.out_features for m in model.modules() if isinstance(m, nn.Linear))
    embed = max((m.embedding_dim for m in model.modules() if isinstance(m, nn.Embedding)), default=0)
    spec: Any = getattr(model, "spec", None)
    lookups = (len(spec.categorical) + len(spec.numeric) + sum(s.max_len for s in spec.sequences)) if spec is not None else 0
    return 2.0 * widths + 2.0 * lookups * embed


def rows_within_budget(model: nn.Module, budget_mb: float, max_rows: int | None = None, depth: int = 0,
                       hidden: bool = False) -> int:
    """Rows per inference batch whose activations fit `budget_mb` MB (at least 1, at most `max_rows`)."""
    rows = int(budget_mb * MB // inference_bytes_per_row(model, depth, hidden))
    rows = max(1, rows)
    return rows if max_rows is None else max(1, min(rows, int(max_rows)))

"""adaptive-loop: adaptive-depth inference for looped CTR models (LoopCTR)."""

__version__ = "0.1.0"

"""Learned depth controllers and the gain models they predict with.

    heads.py             `HeadController`: a small halting head after every loop step
    act.py               ACT halting (post hoc on a trace, or trained jointly with LoopCTR)
    exit_gate.py         PonderNet / Ouro-style learned exit distribution
    utility.py           `UtilityAllocator`: per-depth utilities, then allocation by a price
    allocator.py         the DCAF-style budgeted allocator over predicted gains
    lgbm_depth.py        the LightGBM depth predictor (oracle-depth classes or per-depth gains)
    streaming_budget.py  meeting a mean-cost budget over a stream of batches
    gain_models.py       gain targets and the MLP gain regressor
    lgbm_models.py       LightGBM regressors / classifier, their honest cost and files
    features.py          what an up-front controller may read (never ground truth) and its cost
    torch_fit.py         seeded torch fitting and row-deterministic numpy inference

Each controller registers itself (`controllers.registry`); nothing here lists them.
"""

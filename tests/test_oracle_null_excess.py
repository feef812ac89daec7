"""Exchangeable nulls and excess headroom on constructed traces where the answer is known."""

from __future__ import annotations

import numpy as np
import pytest
from _headroom_factory import exchangeable, hidden_stop, information_monotone, planted

from adaptive_loop.errors import ConfigError, TraceError
from adaptive_loop.trace import DepthTrace
from oracle.excess import ScoreBank, compare_with_nulls
from adaptive_loop.metrics import SortedScores
from adaptive_loop.metrics import auc as fast_auc
from oracle.headroom import headroom_table
from oracle.null import (
    candidate_headroom,
    candidate_trace,
    column_subsets,
    exchangeable_null,
    logits_at_depth,
    oracle_choice,
    parametric_null,
    quantile_bins,
    reference_depth,
    within_bin_donors,
)


def _seeds_null(trace: DepthTrace, seeds: list[DepthTrace]):
    depth = reference_depth(trace)
    return exchangeable_null("seeds", logits_at_depth(trace, seeds, depth), trace.n_depths, depth=depth)


def test_candidate_headroom_is_the_headroom_table_gap():
    trace, _ = planted(1500, 5, seed=3)
    assert candidate_headroom(trace.labels, trace.logits.astype(np.float64)) == pytest.approx(headroom_table(trace).gap)
    chosen, z = oracle_choice(trace.labels, trace.logits)
    y = trace.labels > 0.5
    assert np.array_equal(z[y], trace.logits[y].max(axis=1)) and np.array_equal(z[~y], trace.logits[~y].min(axis=1))
    assert chosen.dtype == np.int64


def test_bootstrap_bank_equals_sorted_scores_with_ties():
    rng = np.random.default_rng(0)
    y = (rng.random(1500) < 0.3).astype(float)
    bank = ScoreBank(y)
    vectors = [rng.normal(size=1500), np.round(rng.normal(size=1500), 1)]  # the second has many ties
    for k, v in enumerate(vectors):
        bank.add(k, v)
    reps = bank.replicate_aucs(200, seed=4)
    idx = np.random.default_rng(4).integers(0, 1500, size=(200, 1500), dtype=np.int32)
    for k, v in enumerate(vectors):
        np.testing.assert_allclose(reps[k], SortedScores.build(y, v).auc_of_resamples(idx), rtol=0, atol=1e-12)
    np.testing.assert_allclose(bank.full_aucs(), [fast_auc(y, v) for v in vectors])


def test_within_bin_donors_stay_in_their_bin_and_permute():
    rng = np.random.default_rng(1)
    values = rng.normal(size=1000)
    bins = quantile_bins(values, 8)
    assert bins.max() == 7 and np.bincount(bins).min() >= 100
    donor = within_bin_donors(bins, rng)
    assert np.array_equal(np.sort(donor), np.arange(1000))
    assert np.array_equal(bins[donor], bins)
    assert quantile_bins(values[:60], 20).max() == 0  # fewer than 2 x 50 rows: one bin


def test_parametric_null_keeps_centres_and_is_seeded():
    trace, _ = planted(1200, 5, seed=2)
    a = parametric_null(trace, repeats=3, seed=7)
    b = parametric_null(trace, repeats=3, seed=7)
    assert a.n_candidates == trace.n_depths and a.n_draws == 3
    for da, db in zip(a.draws, b.draws):
        np.testing.assert_array_equal(da, db)
        np.testing.assert_allclose(da.mean(axis=1), trace.logits.mean(axis=1), atol=1e-5)
    # resampling moves whole deviation vectors: the multiset of spreads is unchanged
    spread = np.sort(trace.logits.astype(np.float64).std(axis=1))
    np.testing.assert_allclose(np.sort(a.draws[0].std(axis=1)), spread, atol=1e-5)
    for noise in ("gaussian", "per-sample"):
        assert parametric_null(trace, repeats=2, noise=noise).draws[0].shape == trace.logits.shape
    with pytest.raises(ConfigError, match="noise"):
        parametric_null(trace, noise="uniform")


def test_exchangeable_noise_gives_no_excess():
    """Depths that are noisy copies of one prediction: the excess interval covers 0 for both nulls."""
    trace, seeds = exchangeable(3000, 6, seed=0)
    analysis = compare_with_nulls(trace, [parametric_null(trace, repeats=5), _seeds_null(trace, seeds)],
                                  n_bootstrap=300)
    headroom = analysis.oracle_headroom.estimate
    assert headroom > 0.05  # the oracle finds plenty of "headroom" in pure noise
    for c in analysis.comparisons:
        assert c.excess.covers(0.0), c
        assert abs(c.excess.estimate) < 0.05 * headroom, c
        assert c.n_candidates == 6 and c.depth_headroom.estimate == pytest.approx(headroom)
    assert analysis.comparisons[1].spread_ratio == pytest.approx(1.0, abs=0.05)
    assert analysis.comparisons[0].mc_se < analysis.comparisons[0].excess.std


def test_per_sample_and_pooled_gaussian_nulls_miss_where_resampling_does_not():
    """On exchangeable noise (truth: no excess) the per-sample null falls short (E[s] < sigma), and with
    per-sample noise scales the pooled Gaussian overshoots; resampling whole deviation vectors stays close."""

    def shares(trace):
        analysis = compare_with_nulls(
            trace, [parametric_null(trace, repeats=5, noise=n, seed=1) for n in ("resample", "per-sample", "gaussian")],
            n_bootstrap=0)
        return [c.excess.estimate / c.depth_headroom.estimate for c in analysis.comparisons]

    resample, per_sample, _ = shares(exchangeable(3000, 6, seed=1)[0])
    assert abs(resample) < 0.02
    assert per_sample > resample + 0.03  # null too small: excess where there is none
    resample, _, gaussian = shares(exchangeable(3000, 6, seed=1, heteroscedastic=True)[0])
    assert abs(resample) < 0.05
    assert gaussian < -0.1  # every sample gets its bin's spread: null too large


def test_planted_depth_effect_gives_excess_over_measured_noise():
    """Identifiable samples whose deeper (or shallower) depths are genuinely better; seeds differ by little noise."""
    trace, seeds = planted(3000, 6, seed=0)
    analysis = compare_with_nulls(trace, [_seeds_null(trace, seeds), parametric_null(trace, repeats=5)], n_bootstrap=300)
    seeds_c, parametric_c = analysis.comparisons
    assert seeds_c.null_headroom.estimate < 0.5 * seeds_c.depth_headroom.estimate
    assert seeds_c.excess.low > 0 and seeds_c.excess.estimate > 0.5 * analysis.oracle_headroom.estimate
    assert seeds_c.spread_ratio < 0.5
    # matched to the observed spread, the parametric null reproduces nearly all of it (see its docstring)
    assert parametric_c.null_headroom.estimate > 0.9 * parametric_c.depth_headroom.estimate


def test_depths_that_only_add_information_give_an_excess_below_zero():
    """Depth d reads d + 1 terms of the true logit: depth matters, yet no sample is better off shallower.

    The shallower depths miss terms, so they deviate from the deepest one away from the label
    rather than at random, and the oracle gains less among them than among noise of the same
    size. A negative excess therefore does not mean that depth does nothing: it means that the
    best fixed depth already holds what depth adds (the synthetic demo data behave this way).
    """
    trace = information_monotone(seed=0)
    analysis = compare_with_nulls(trace, [parametric_null(trace, repeats=5)], n_bootstrap=200)
    (c,) = analysis.comparisons
    assert reference_depth(trace) >= 3  # the best fixed depth reads every term
    assert analysis.oracle_headroom.estimate > 0.05 and c.spread_ratio == pytest.approx(1.0, abs=0.05)
    assert c.excess.high < 0 and c.excess.estimate < -0.2 * analysis.oracle_headroom.estimate


def test_rows_that_deeper_depths_hurt_do_not_lift_the_excess_above_zero_for_an_ideal_learner():
    """Hidden stops: a share of a regime's rows needs depth 0 and nothing says which.

    Depth hurts those rows (their AUC falls with depth) and they lift the excess, yet it stays
    below zero: an ideal learner weighs the deeper terms by what they are worth over the whole
    regime, so the more rows are stopped, the less depth hurts them. The synthetic data behave
    this way (`benchmarks/results/headroom_decomposition_synthetic_hidden_stop/`).
    """
    excess = []
    for share in (0.0, 0.3, 0.6):
        trace, stopped = hidden_stop(share, seed=1)
        if stopped.any():
            y = trace.labels[stopped]
            assert fast_auc(y, trace.logits[stopped, 0]) > fast_auc(y, trace.logits[stopped, 3])
        analysis = compare_with_nulls(trace, [parametric_null(trace, repeats=5)], n_bootstrap=200)
        excess.append(analysis.comparisons[0].excess)
        assert excess[-1].high < 0, share
    assert excess[0].estimate < excess[1].estimate < excess[2].estimate


def test_fewer_seeds_than_depths_compare_at_the_same_number_of_candidates():
    trace, seeds = exchangeable(2000, 6, seed=2, n_seeds=3)
    null = _seeds_null(trace, seeds)
    assert null.n_candidates == 3 and null.n_sources == 3
    analysis = compare_with_nulls(trace, [null], n_bootstrap=100)
    c = analysis.comparisons[0]
    assert c.depth_headroom.estimate < analysis.oracle_headroom.estimate  # an oracle over 3 of 6 depths gains less
    assert c.excess.covers(0.0)
    assert len(column_subsets(6, 3, 20, 0)) == 20 and len(column_subsets(4, 2, 20, 0)) == 6


def test_more_sources_than_depths_are_subsampled():
    trace, seeds = exchangeable(800, 4, seed=3, n_seeds=7)
    null = exchangeable_null("mc-dropout", logits_at_depth(trace, seeds, 0), trace.n_depths, repeats=5)
    assert null.n_candidates == 4 and null.n_sources == 7 and null.n_draws == 5


def test_logits_at_depth_refuses_other_splits_and_labels():
    trace, seeds = exchangeable(500, 4, seed=4, n_seeds=2)
    other = seeds[0].subset(np.arange(400))
    with pytest.raises(TraceError, match="seed run 7"):
        logits_at_depth(trace, [other], 0, names=["seed run 7"])
    flipped = candidate_trace(seeds[1], seeds[1].logits)
    flipped.labels = 1.0 - flipped.labels
    with pytest.raises(TraceError, match="labels differ"):
        logits_at_depth(trace, [flipped], 0)
    with pytest.raises(TraceError, match="cannot read depth 9"):
        logits_at_depth(trace, seeds, 9)

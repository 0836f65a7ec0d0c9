"""The intervals behind every claim of the report: a bootstrap over population members with known answers, and
the class-level Welch test against scipy."""
import numpy as np
import pytest
from scipy import stats

from common.metrics.bootstrap import (bootstrap_member_means, bootstrap_pies, class_disparity, interval,
                                      member_resamples, modal_labels_resampled, verdict, welch_t_test)
from common.metrics.pies import modal_labels


def test_identical_populations_have_no_pies_in_any_replicate():
    model = np.random.default_rng(0).integers(0, 10, size=300)
    population = np.stack([model] * 5)  # five copies of one model, dense and pruned alike
    masks = bootstrap_pies(population, population.copy(), 10, replicates=200)
    assert masks.shape == (200, 300) and not masks.any()  # every replicate: zero PIEs, a zero-width interval
    assert interval(masks.sum(1), 0) == (0.0, 0.0)


def test_a_population_that_always_disagrees_makes_every_example_a_pie():
    rng = np.random.default_rng(1)
    dense, pruned = rng.integers(0, 5, size=(5, 300)), rng.integers(5, 10, size=(7, 300))  # never a shared label
    masks = bootstrap_pies(dense, pruned, 10, replicates=200)
    assert masks.all() and interval(masks.sum(1), 300) == (300.0, 300.0)


def test_the_pie_count_interval_removes_the_resampling_bias():
    """Two populations made of the same nine members: on each example five of them (a different five each time)
    say 0 and four dissent. The true PIE count is 0, yet on some examples a replicate drawn with replacement holds
    more dissenters than agreeing members, so every replicate counts PIEs. The plain percentile interval then
    lies wholly above 0; re-centred on the estimate, it holds it."""
    rng = np.random.default_rng(6)
    dissent = rng.random((9, 400)).argsort(0) < 4  # four dissenters per example
    population = np.where(dissent, rng.integers(1, 10, size=(9, 400)), 0)
    counts = bootstrap_pies(population, population.copy(), 10, replicates=500).sum(1)
    assert np.percentile(counts, 2.5) > 0  # the bias the correction is for
    low, high = interval(counts, 0)
    assert low < 0 < high and verdict(low, high, 0.0) == "UNDECIDED"
    assert high - low == pytest.approx(np.percentile(counts, 97.5) - np.percentile(counts, 2.5))


def test_a_replicate_is_the_modal_label_of_the_members_it_drew():
    preds = np.random.default_rng(2).integers(0, 4, size=(6, 50))
    draws = member_resamples(6, 20, seed=3)
    resampled = modal_labels_resampled(preds, draws, 4)
    for b in range(20):
        assert np.array_equal(resampled[b], modal_labels(preds[draws[b]], 4))  # ties to the smallest label too


def test_the_dense_population_is_resampled_alike_for_every_configuration():
    assert np.array_equal(member_resamples(5, 10, seed=7), member_resamples(5, 10, seed=7, stream=0))
    assert not np.array_equal(member_resamples(5, 10, seed=7, stream=0), member_resamples(5, 10, seed=7, stream=1))


def test_a_member_mean_shift_interval_covers_a_known_shift():
    rng = np.random.default_rng(4)
    dense, pruned = rng.normal(0.0, 0.01, 30), rng.normal(-0.5, 0.01, 30)
    low, high = interval(bootstrap_member_means(dense, pruned), pruned.mean() - dense.mean())
    assert -0.52 < low < -0.5 < high < -0.48
    assert verdict(low, high, 0.0, above=False) == "TRUE"


def test_verdicts_read_true_false_or_undecided():
    assert verdict(0.1, 0.3, 0.0) == "TRUE" and verdict(-0.3, -0.1, 0.0) == "FALSE"
    assert verdict(-0.1, 0.1, 0.0) == "UNDECIDED" and verdict(0.6, 0.7, 0.5, above=False) == "FALSE"


def test_welch_equals_scipy_column_by_column():
    rng = np.random.default_rng(5)
    a, b = rng.normal(0, 1, (7, 10)), rng.normal(0.3, 2, (12, 10))
    t, p = welch_t_test(a, b)
    expected = stats.ttest_ind(a, b, equal_var=False)
    assert np.allclose(t, expected.statistic) and np.allclose(p, expected.pvalue)


def test_class_disparity_flags_the_class_pruning_hurts():
    rng = np.random.default_rng(6)
    labels = np.repeat(np.arange(10), 100)
    dense = np.where(rng.random((8, 1000)) < 0.9, labels, (labels + 1) % 10)
    hurt = np.where((labels == 3) & (rng.random((8, 1000)) < 0.6), (labels + 1) % 10, dense)  # class 3 collapses
    table = class_disparity(dense, hurt, labels, 10)
    assert table["disparate"][3] and table["pruned_shifted"][3] < table["dense_shifted"][3] - 0.3
    assert table["p"][3] < 1e-6 and np.argmin(table["t"]) == 3  # the others gain relative to the mean (Hooker)

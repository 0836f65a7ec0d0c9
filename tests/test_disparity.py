"""Hooker et al.'s class-level test: Welch's t per class against scipy, and the class that pruning hurts."""
import numpy as np
from scipy import stats

from common.metrics.disparity import class_disparity, welch_t_test


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

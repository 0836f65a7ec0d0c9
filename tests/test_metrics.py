"""Tests for the pure metric functions: PIEs, Q-Score, k-NN probes, prediction depth (CPU, a few seconds)."""
import math

import numpy as np
import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier

from common.metrics.knn import knn_predict, knn_predict_layers
from common.metrics.pies import agreement, find_pies, modal_labels
from common.metrics.prediction_depth import prediction_depth
from common.metrics.qscore import l1_norm, q_score, representation_scores, z_score


# ---------------------------------------------------------------- PIEs

def test_modal_labels_hand_cases_and_ties():
    preds = np.array([[1, 0, 3, 2],
                      [2, 0, 3, 2],
                      [2, 1, 4, 0],
                      [1, 1, 4, 0]])
    # columns: [1,2,2,1] tie 1/2 -> 1; [0,0,1,1] tie -> 0; [3,3,4,4] tie -> 3; [2,2,0,0] tie -> 0
    np.testing.assert_array_equal(modal_labels(preds), [1, 0, 3, 0])
    np.testing.assert_array_equal(modal_labels(np.array([[5, 7, 7], [5, 5, 7], [9, 5, 1]])), [5, 5, 7])
    np.testing.assert_array_equal(modal_labels(torch.tensor(preds)), [1, 0, 3, 0])  # torch input
    np.testing.assert_array_equal(modal_labels(np.array([[4, 2]])), [4, 2])  # K = 1


def test_find_pies_where_modes_differ():
    dense = np.array([[0, 1, 2, 3, 1],
                      [0, 1, 2, 3, 2],
                      [0, 1, 5, 3, 2]])   # modes 0 1 2 3 2
    pruned = np.array([[0, 2, 2, 3, 1],
                       [0, 2, 5, 4, 1],
                       [0, 1, 5, 4, 2],
                       [9, 2, 2, 4, 2]])  # modes 0 2 2 4 1 (col 2: tie 2/5 -> 2; col 4: tie 1/2 -> 1)
    np.testing.assert_array_equal(find_pies(dense, pruned), [False, True, False, True, True])
    np.testing.assert_allclose(agreement(dense, modal_labels(dense)), [1, 1, 2 / 3, 1, 2 / 3])


def test_modal_labels_random_against_per_column_bincount():
    rng = np.random.default_rng(0)
    preds = rng.integers(0, 10, size=(30, 2000))
    ref = np.array([np.bincount(preds[:, n]).argmax() for n in range(preds.shape[1])])
    np.testing.assert_array_equal(modal_labels(preds), ref)
    np.testing.assert_array_equal(modal_labels(preds, num_classes=12), ref)
    pruned = rng.integers(0, 10, size=(30, 2000))
    ref_p = np.array([np.bincount(pruned[:, n]).argmax() for n in range(pruned.shape[1])])
    np.testing.assert_array_equal(find_pies(preds, pruned), ref != ref_p)


@pytest.mark.parametrize("dense, pruned", [
    (np.zeros((3, 5), int), np.zeros((3, 6), int)),       # different N
    (np.zeros((0, 5), int), np.zeros((3, 5), int)),       # K = 0
    (np.zeros(5, int), np.zeros((3, 5), int)),            # not 2-D
    (np.zeros((3, 5)), np.zeros((3, 5), int)),            # float labels
    (-np.ones((3, 5), int), np.zeros((3, 5), int)),       # negative labels
])
def test_find_pies_rejects_bad_inputs(dense, pruned):
    with pytest.raises(ValueError):
        find_pies(dense, pruned)


# ---------------------------------------------------------------- Q-Score

def test_qscore_hand_example():
    # r = [3, 4, 0, 0]: ||r||_2 = 5, r_hat = [.6, .8, 0, 0], mean = .35,
    # std (ddof=0) = sqrt((.25^2 + .45^2 + .35^2 + .35^2) / 4) = sqrt(.51 / 4) = sqrt(.1275), max = .8
    # z = .45 / sqrt(.1275) = 1.260252..., L1 = 1.4, Q = z / 1.4 = 0.900180...
    r = torch.tensor([[3.0, 4.0, 0.0, 0.0]])
    assert z_score(r).item() == pytest.approx(0.45 / math.sqrt(0.1275), rel=1e-6)
    assert z_score(r).item() == pytest.approx(1.260252, rel=1e-6)
    assert l1_norm(r).item() == pytest.approx(1.4, rel=1e-6)
    assert q_score(r).item() == pytest.approx(0.900180, rel=1e-6)
    # one-hot row: r_hat = e_1, mean = 1/4, std = sqrt(3)/4, z = (3/4) / (sqrt(3)/4) = sqrt(3), L1 = 1
    s = representation_scores(np.array([[0.0, 2.0, 0.0, 0.0]]))
    assert isinstance(s["q_score"], np.ndarray)
    np.testing.assert_allclose([s["z_score"][0], s["l1_norm"][0], s["q_score"][0]], [math.sqrt(3), 1, math.sqrt(3)])


def test_qscore_matches_numpy_formula_and_scale_invariance():
    rng = np.random.default_rng(1)
    r = np.maximum(rng.normal(size=(50, 128)), 0)
    rh = r / np.linalg.norm(r, axis=1, keepdims=True)
    z = (rh.max(1) - rh.mean(1)) / rh.std(1)
    np.testing.assert_allclose(q_score(r), z / np.abs(rh).sum(1), rtol=1e-10)
    np.testing.assert_allclose(q_score(7.5 * r), q_score(r), rtol=1e-10)
    t = torch.tensor(r, dtype=torch.float32)
    assert q_score(t).dtype == torch.float32 and q_score(t).shape == (50,)


def test_qscore_degenerate_rows_are_zero_not_nan():
    r = np.array([[0.0, 0.0, 0.0], [2.0, 2.0, 2.0], [1.0, 0.0, 0.0]])
    s = representation_scores(r)
    for v in s.values():
        assert not np.isnan(v).any()
    np.testing.assert_array_equal(s["q_score"][:2], [0, 0])
    np.testing.assert_array_equal(s["z_score"][:2], [0, 0])
    np.testing.assert_allclose(s["l1_norm"], [0, math.sqrt(3), 1])


# ---------------------------------------------------------------- k-NN

def _sk_predict(train, labels, query, k):
    return KNeighborsClassifier(n_neighbors=k).fit(train, labels).predict(query)


@pytest.mark.parametrize("n_train, n_query, dim, k", [(500, 200, 16, 1), (2000, 300, 32, 5), (3000, 500, 128, 30),
                                                      (800, 100, 8, 30)])
def test_knn_matches_sklearn_random(n_train, n_query, dim, k):
    rng = np.random.default_rng(n_train + k)
    # post-ReLU-like features with a common offset, few well-mixed classes so votes are often close
    train = (np.maximum(rng.normal(size=(n_train, dim)), 0) + 10).astype(np.float32)
    query = (np.maximum(rng.normal(size=(n_query, dim)), 0) + 10).astype(np.float32)
    labels = rng.integers(0, 10, n_train)
    ref = _sk_predict(train, labels, query, k)
    for kw in [{}, dict(dtype=torch.float64), dict(chunk_size=64)]:
        pred = knn_predict(train, labels, query, k, **kw)
        assert isinstance(pred, np.ndarray) and pred.dtype == np.int64  # numpy in, numpy out
        np.testing.assert_array_equal(pred, ref)
    np.testing.assert_array_equal(knn_predict(torch.tensor(train), torch.tensor(labels), torch.tensor(query), k), ref)


def test_knn_vote_ties_go_to_smallest_label_like_sklearn():
    # k=2: each query has one neighbour of label 7 and one of label 3 (distinct distances) -> both pick 3
    train = np.array([[0.0], [1.0], [10.0], [11.2]])
    labels = np.array([7, 3, 3, 7])
    query = np.array([[0.4], [10.5], [0.6]])
    ref = _sk_predict(train, labels, query, 2)
    np.testing.assert_array_equal(ref, [3, 3, 3])
    np.testing.assert_array_equal(knn_predict(train, labels, query, 2), ref)
    # many random ties: k=4 with 2 classes, arbitrary non-negative label values
    rng = np.random.default_rng(3)
    train, query = rng.normal(size=(400, 5)), rng.normal(size=(300, 5))
    labels = rng.choice([4, 17], size=400)
    ref = _sk_predict(train, labels, query, 4)
    np.testing.assert_array_equal(knn_predict(train, labels, query, 4, chunk_size=7), ref)


def test_knn_predict_layers_stacks_probes():
    rng = np.random.default_rng(4)
    widths = [4, 8, 16]
    tr = [torch.tensor(rng.normal(size=(300, w)), dtype=torch.float32) for w in widths]
    qu = [torch.tensor(rng.normal(size=(50, w)), dtype=torch.float32) for w in widths]
    labels = rng.integers(0, 10, 300)
    out = knn_predict_layers(tr, labels, qu, 5, chunk_size=16)
    assert out.shape == (3, 50)
    for l in range(3):
        np.testing.assert_array_equal(out[l].numpy(), _sk_predict(tr[l].numpy(), labels, qu[l].numpy(), 5))


# ---------------------------------------------------------------- prediction depth

def test_prediction_depth_hand_cases():
    final = np.array([1, 1, 1, 1, 1])
    probes = np.array([[1, 1, 0, 0, 0],   # L = 4 probes, one column per case
                       [1, 1, 1, 0, 0],
                       [1, 1, 0, 1, 0],
                       [1, 2, 1, 1, 0]])
    # all agree -> 0; only last disagrees -> L = 4; disagree at 0 and 2 -> 3; disagree at 0, 1 -> 2; none -> 4
    np.testing.assert_array_equal(prediction_depth(probes, final), [0, 4, 3, 2, 4])
    np.testing.assert_array_equal(prediction_depth(torch.tensor(probes), torch.tensor(final)), [0, 4, 3, 2, 4])
    np.testing.assert_array_equal(prediction_depth(np.array([[2, 1]]), np.array([1, 1])), [1, 0])  # first probe only
    with pytest.raises(ValueError):
        prediction_depth(probes, final[:3])

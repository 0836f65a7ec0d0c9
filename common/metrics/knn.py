"""Batched k-NN classification in torch, a drop-in for sklearn's KNeighborsClassifier(n_neighbors=k).

Prediction depth needs 16 k-NN probes (k=30, 50,000 support points, 10,000 queries) per model and several
models per population; running them in torch keeps the features on the GPU they were extracted on instead of
round-tripping every probe through sklearn on CPU (timings: bench/bench_knn.py). `knn_predict` returns exactly
what `KNeighborsClassifier(n_neighbors=k).fit(train, labels).predict(query)` returns (Euclidean distance,
uniform weights):
  * neighbours: the k smallest squared distances ||t||^2 - 2 q.t (+ ||q||^2, constant per query, dropped),
    one [chunk_size, N_train] block at a time so memory stays bounded;
  * votes: counts per class, argmax -> the first maximum = the SMALLEST label among tied classes, as sklearn's
    predict (argmax over predict_proba / scipy mode) does.

Precision. sklearn ranks neighbours by float64 distances (float32 input is upcast chunk by chunk). The 30th
and 31st neighbour can be very close, and the expanded form in float32 loses ~7 digits of ||t||^2 when the
features share a large common offset (pooled post-ReLU features do), so a neighbour, and sometimes the vote,
flips. Measured against sklearn on 50k support x 5k-10k queries of synthetic post-ReLU features, k=30:
  * naive float32: with a common offset of 100 (D=128), 4,778/5,000 queries got a different neighbour set;
  * centring both sets on the support mean (distances are translation invariant) removes the cancellation:
    0 changed predictions, but still ~1 in 10,000 queries with a different neighbour set;
  * so by default we search in centred float32 for the k + `rerank` (16) nearest candidates and re-rank that
    shortlist in float64: 0 differing neighbour sets in every run. On CPU this costs ~1.2x plain float32,
    against ~2x for a full float64 search (dtype=torch.float64, which skips the shortlist); on a GPU the
    re-rank is negligible. rerank=0 gives plain centred float32.
With TF32 matmuls enabled on an Ampere+ GPU the float32 shortlist is much coarser; keep TF32 off (PyTorch's
default for matmul) or pass dtype=torch.float64. Exact distance ties (duplicate support points with different
labels straddling the k-th place) may be broken differently from sklearn; with real-valued features these do
not occur in practice.
"""
import numpy as np
import torch

from common.metrics.arrays import like_inputs


@torch.no_grad()
def knn_predict(train_features, train_labels, query_features, k, *, chunk_size=2048, device=None,
                dtype=torch.float32, rerank=16):
    """Labels [Nq] predicted by a k-NN majority vote over the support set.

    train_features [N, D], train_labels [N] (non-negative ints, any values), query_features [Nq, D]; numpy or
    torch. The result is a numpy int64 array when the features are numpy, a LongTensor on `device` when either is
    a torch tensor (common.metrics.arrays). device=None -> the device of train_features (cpu for numpy input).
    Autocast is switched off inside: the distances' precision is chosen here (`dtype`, then a float64 re-rank), and
    a bf16 shortlist could drop a true neighbour.
    """
    train = torch.as_tensor(train_features)
    device = torch.device(device) if device is not None else train.device
    with torch.autocast(device_type=device.type, enabled=False):
        out = _knn_predict(train, train_labels, query_features, k, chunk_size, device, dtype, rerank)
    return like_inputs(out, train_features, query_features)


def _check_shapes(train: torch.Tensor, labels: torch.Tensor, query: torch.Tensor, k: int, chunk_size: int) -> None:
    """One ValueError sentence for inputs that do not fit together."""
    if train.ndim != 2 or query.ndim != 2 or train.shape[1] != query.shape[1]:
        raise ValueError(f"knn_predict: train_features [N, D] and query_features [Nq, D] must share D, got shapes "
                         f"{tuple(train.shape)} and {tuple(query.shape)}")
    if labels.numel() != train.shape[0]:
        raise ValueError(f"knn_predict: {labels.numel()} train_labels for {train.shape[0]} train_features rows: "
                         f"pass one label per row")
    if not 1 <= k <= train.shape[0]:
        raise ValueError(f"knn_predict: k={k} must be in 1..{train.shape[0]} (the number of train_features rows)")
    if chunk_size < 1:
        raise ValueError(f"knn_predict: chunk_size must be >= 1, got {chunk_size}")


def _knn_predict(train, train_labels, query_features, k, chunk_size, device, dtype, rerank):
    """knn_predict's work, with autocast off: a LongTensor [Nq] on `device`."""
    train = train.to(device=device, dtype=torch.float64)
    query = torch.as_tensor(query_features, device=device).to(torch.float64)
    labels = torch.as_tensor(train_labels, device=device).long().reshape(-1)
    _check_shapes(train, labels, query, k, chunk_size)
    classes, y = torch.unique(labels, sorted=True, return_inverse=True)  # sorted: argmax ties -> smallest label
    mean = train.mean(dim=0, keepdim=True)  # centre in float64, then cast (see module docstring)
    train64, query64 = train - mean, query - mean
    train, query = train64.to(dtype), query64.to(dtype)
    train_sq, train_sq64 = (train * train).sum(dim=1), (train64 * train64).sum(dim=1)
    shortlist = k if dtype == torch.float64 else min(k + rerank, train.shape[0])
    out = torch.empty(query.shape[0], dtype=torch.long, device=device)
    for s in range(0, query.shape[0], chunk_size):
        q = query[s:s + chunk_size]
        dist = torch.addmm(train_sq[None, :], q, train.T, alpha=-2.0)  # [chunk, N], minus the constant ||q||^2
        idx = dist.topk(shortlist, dim=1, largest=False).indices
        if shortlist > k:  # re-rank the float32 shortlist by float64 distances
            d64 = train_sq64[idx] - 2 * torch.bmm(train64[idx], query64[s:s + chunk_size, :, None]).squeeze(2)
            idx = idx.gather(1, d64.topk(k, dim=1, largest=False).indices)
        votes = torch.zeros(q.shape[0], len(classes), device=device).scatter_add_(
            1, y[idx], torch.ones(idx.shape, device=device))
        out[s:s + chunk_size] = votes.argmax(dim=1)
    return classes[out]


def knn_predict_layers(train_feats, train_labels, query_feats, k, **kw):
    """All probes of one model: lists of [N, D_l] support / [Nq, D_l] query features -> [L, Nq] (numpy or
    torch as knn_predict)."""
    if len(train_feats) != len(query_feats):
        raise ValueError(f"{len(train_feats)} support probes but {len(query_feats)} query probes")
    preds = [knn_predict(t, train_labels, q, k, **kw) for t, q in zip(train_feats, query_feats)]
    return torch.stack(preds) if isinstance(preds[0], torch.Tensor) else np.stack(preds)


def weighted_knn_predict(train_features, train_labels, query_features, k: int = 200, temperature: float = 0.07,
                         num_classes: int | None = None, chunk_size: int = 1024) -> torch.Tensor:
    """The self-supervised learning monitor (Wu et al.'s weighted k-NN): cosine similarity to the support set, the
    k nearest vote with weight exp(similarity / temperature). train [N, D], labels [N], query [Nq, D] ->
    predicted labels [Nq]."""
    train = torch.nn.functional.normalize(torch.as_tensor(train_features).double(), dim=1)
    query = torch.nn.functional.normalize(torch.as_tensor(query_features).double(), dim=1)
    labels = torch.as_tensor(train_labels).long().to(train.device)
    classes = num_classes or int(labels.max()) + 1
    k = min(k, len(train))
    out = []
    for start in range(0, len(query), chunk_size):
        similarity, neighbours = (query[start:start + chunk_size] @ train.T).topk(k, dim=1)
        votes = torch.zeros(len(similarity), classes, dtype=torch.float64, device=train.device)
        votes.scatter_add_(1, labels[neighbours], (similarity / temperature).exp())
        out.append(votes.argmax(1))
    return torch.cat(out)

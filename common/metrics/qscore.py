"""Per-example representation scores (Kalibhat et al. 2022, as computed by Corti et al.).

For a representation r (one row), the authors first L2-normalise, r_hat = r / ||r||_2, then
    z = (max_j r_hat_j - mean(r_hat)) / std(r_hat)     (population std, ddof=0, as numpy's default)
    L1 = ||r_hat||_1                                    (in [1, sqrt(D)]; small = sparse representation)
    Q = z / L1
z is scale invariant, so Q = z * ||r||_2 / ||r||_1 and Q is invariant under r -> c*r for c > 0.

Degenerate rows: an all-zero row (a dead representation) or a constant row has no dominant feature, so we
define z = 0 and Q = 0 (and L1 = 0 for the all-zero row) instead of propagating NaN; a NaN would silently
poison the per-example averages over 30 models that the analysis takes.

Inputs are [N, D] torch tensors or numpy arrays; outputs have the same kind (float, on the same device).
"""
import torch


def _scores(features):
    """(q, z, l1) as float64 torch tensors [N], computed from the L2-normalised rows."""
    r = torch.as_tensor(features).to(torch.float64)
    if r.ndim != 2:
        raise ValueError(f"features must be [N, D] (N representations of D numbers each), got shape {tuple(r.shape)}")
    norm = r.norm(dim=1, keepdim=True)
    r_hat = r / norm.clamp_min(torch.finfo(r.dtype).tiny)  # zero rows stay zero
    std = r_hat.std(dim=1, correction=0)
    gap = r_hat.max(dim=1).values - r_hat.mean(dim=1)
    ok = std > 0
    z = torch.where(ok, gap / torch.where(ok, std, 1.0), 0.0)
    l1 = r_hat.abs().sum(dim=1)
    q = torch.where(l1 > 0, z / torch.where(l1 > 0, l1, 1.0), 0.0)
    return q, z, l1


def _like(x, features):
    """Return x in the kind of `features`: numpy float64, or a torch float tensor of the input's float dtype."""
    if isinstance(features, torch.Tensor):
        dtype = features.dtype if features.is_floating_point() else torch.get_default_dtype()
        return x.to(dtype)
    return x.cpu().numpy()


def q_score(features):
    """Q-Score z / ||r_hat||_1 per row of features [N, D] -> [N]."""
    return _like(_scores(features)[0], features)


def z_score(features):
    """z-score of the largest feature of the L2-normalised row -> [N]."""
    return _like(_scores(features)[1], features)


def l1_norm(features):
    """L1 norm of the L2-normalised row -> [N] (1 = one-hot, sqrt(D) = uniform)."""
    return _like(_scores(features)[2], features)


def representation_scores(features):
    """All three scores from one pass: dict(q_score=[N], z_score=[N], l1_norm=[N])."""
    q, z, l1 = _scores(features)
    return dict(q_score=_like(q, features), z_score=_like(z, features), l1_norm=_like(l1, features))

import math

import pytest
import torch

from common import SupConLoss


def four_views():
    """Two images, two views each, on the unit circle: view-major order a0=(1,0), a1=(-1,0), b0=(0,1), b1=(0,-1)
    so each anchor has dot 0 with its other view, -1 with one negative and 0 with the other."""
    view0 = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    view1 = torch.tensor([[0.0, 1.0], [0.0, -1.0]])
    return torch.stack([view0, view1], dim=1)  # [batch=2, views=2, dim=2]


def test_supcon_hand_computation_distinct_labels_equals_simclr():
    # T=0.5: logits of anchor 0 over the others are (-2, 0, 0); its one positive has logit 0.
    expected = math.log(2 + math.exp(-2))
    loss = SupConLoss(temperature=0.5, base_temperature=0.5)
    assert loss(four_views(), torch.tensor([0, 1])).item() == pytest.approx(expected, abs=1e-6)
    assert loss(four_views()).item() == pytest.approx(expected, abs=1e-6)


def test_supcon_hand_computation_shared_label():
    # all four views share a label: anchor 0's positives have logits (-2, 0, 0), mean log-prob = (-2 - 3L) / 3
    lse = math.log(2 + math.exp(-2))
    expected = lse + 2 / 3
    loss = SupConLoss(temperature=0.5, base_temperature=0.5)
    assert loss(four_views(), torch.tensor([3, 3])).item() == pytest.approx(expected, abs=1e-6)


def test_base_temperature_scales_the_loss():
    plain = SupConLoss(0.5, 0.5)(four_views()).item()
    scaled = SupConLoss(0.5, 0.07)(four_views()).item()
    assert scaled == pytest.approx(plain * 0.5 / 0.07, rel=1e-6)


def reference_supcon(features, labels, temperature, base_temperature):
    """Direct transcription of Khosla et al.'s L_out, one anchor at a time."""
    batch, views, _ = features.shape
    z = torch.cat(torch.unbind(features, 1)).double()
    ids = labels.repeat(views)
    per_anchor = []
    for i in range(batch * views):
        others = [a for a in range(batch * views) if a != i]
        positives = [p for p in others if ids[p] == ids[i]]
        if not positives:
            continue
        denom = torch.logsumexp(torch.stack([z[i] @ z[a] / temperature for a in others]), 0)
        mean_log_prob = torch.stack([z[i] @ z[p] / temperature - denom for p in positives]).mean()
        per_anchor.append(-(temperature / base_temperature) * mean_log_prob)
    return torch.stack(per_anchor).mean()


def test_matches_reference_on_random_batches():
    gen = torch.Generator().manual_seed(0)
    features = torch.nn.functional.normalize(torch.randn(12, 2, 8, generator=gen), dim=-1)
    labels = torch.randint(0, 4, (12,), generator=gen)
    ours = SupConLoss(0.5, 0.07)(features, labels)
    assert ours.item() == pytest.approx(reference_supcon(features, labels, 0.5, 0.07).item(), rel=1e-5)


def test_anchor_without_positives_adds_nothing_and_never_nan():
    features = torch.nn.functional.normalize(torch.randn(4, 1, 8), dim=-1)
    lonely = SupConLoss()(features, torch.tensor([0, 1, 2, 3]))
    assert lonely.item() == 0.0
    mixed = SupConLoss(0.5, 0.5)(features, torch.tensor([0, 0, 1, 2]))  # only anchors 0 and 1 have a positive
    assert torch.isfinite(mixed)
    assert mixed.item() == pytest.approx(reference_supcon(features, torch.tensor([0, 0, 1, 2]), 0.5, 0.5).item(),
                                         rel=1e-5)


def test_gradients_finite_under_bf16_autocast():
    features = torch.nn.functional.normalize(torch.randn(16, 2, 32), dim=-1).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = SupConLoss(0.1, 0.07)(features, torch.randint(0, 3, (16,)))
    assert loss.dtype == torch.float32
    loss.backward()
    assert torch.isfinite(features.grad).all()


def test_vmappable_over_a_population():
    features = torch.nn.functional.normalize(torch.randn(3, 6, 2, 8), dim=-1)
    labels = torch.randint(0, 2, (3, 6))
    loss = SupConLoss(0.5, 0.07)
    batched = torch.func.vmap(loss)(features, labels)
    looped = torch.stack([loss(f, y) for f, y in zip(features, labels)])
    assert torch.allclose(batched, looped, atol=1e-6)


def authors_supcon(features, labels, temperature, base_temperature, fixed=False):
    """Corti et al.'s utils/losses.py SupCon (contrast_mode 'all'), vectorised as theirs; `fixed`: SupContrast
    after its fix, which divides by 1 where an anchor has no positive."""
    batch, views, _ = features.shape
    z = torch.cat(torch.unbind(features, 1))
    mask = (labels[:, None] == labels[None, :]).float().repeat(views, views)
    logits_mask = 1 - torch.eye(batch * views)
    mask = mask * logits_mask
    logits = z @ z.T / temperature
    logits = logits - logits.max(1, keepdim=True).values
    log_prob = logits - torch.log((torch.exp(logits) * logits_mask).sum(1, keepdim=True))
    positives = mask.sum(1)
    positives = torch.where(positives < 1e-6, 1.0, positives) if fixed else positives
    return (-(temperature / base_temperature) * (mask * log_prob).sum(1) / positives).mean()


def test_anchors_without_positives_against_the_authors_and_supcontrast():
    """docs/fidelity.md: theirs is NaN, SupContrast's fix counts the anchor as 0, ours leaves it out."""
    features = torch.nn.functional.normalize(torch.randn(8, 1, 16, generator=torch.Generator().manual_seed(0)), dim=-1)
    labels = torch.tensor([0, 0, 1, 2, 3, 4, 5, 6])  # one view: only anchors 0 and 1 have a positive
    ours = SupConLoss(0.5, 0.07)(features, labels)
    assert torch.isnan(authors_supcon(features, labels, 0.5, 0.07))
    fixed = authors_supcon(features, labels, 0.5, 0.07, fixed=True)
    assert ours.item() == pytest.approx(fixed.item() * 8 / 2, rel=1e-5)  # their mean over 8 anchors, ours over 2
    two_views = torch.nn.functional.normalize(torch.randn(8, 2, 16, generator=torch.Generator().manual_seed(1)), dim=-1)
    assert SupConLoss(0.5, 0.07)(two_views, labels).item() == pytest.approx(
        authors_supcon(two_views, labels, 0.5, 0.07).item(), rel=1e-5)  # every anchor has a positive: equal

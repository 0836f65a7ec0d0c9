"""Caron et al.'s pretexts as objectives: each loss against its formula, NPID's memory bank and its resume, a
population of pretext members equal to the members trained alone, the labelled subsets and Exemplar's rotations."""
import io
import math

import pytest
import torch
import torch.nn.functional as F

from common.data.augment import ContrastiveAugment, ExemplarAugment, SupervisedAugment, exemplar_augment
from common.data.dataset import Dataset
from common.data.subsets import labelled_subset
from common.engine.batches import Batches
from common.engine.objectives import OBJECTIVES, make_objective
from common.engine.objectives.exemplar import triplet_loss
from common.engine.objectives.npid import EPS, nce_loss, scores, updated_rows
from common.engine.objectives.rotation import rotations
from common.engine.population import Population
from common.models import build_network

N, SIZE, BATCH, STEPS = 16, 8, 8, 3


@pytest.fixture(scope="module")
def tiny():
    """N random 8x8 uint8 images; classes 0-5 twice, 6-9 once."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (N, 3, SIZE, SIZE), generator=g, dtype=torch.uint8)
    labels = torch.arange(N) % 10
    return Dataset("tiny", images, labels, images[:4], labels[:4], (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


# ---- the losses against their formulas ------------------------------------------------------------------------

def test_rotation_labels_and_images_agree():
    x = torch.randn(2, 3, 3, 5, 5)
    rotated, labels = rotations(x)
    assert rotated.shape == (2, 12, 3, 5, 5) and labels.tolist() == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3
    assert torch.equal(rotated[:, labels == 0], x)
    for j, k in enumerate(labels.tolist()):
        assert torch.equal(torch.rot90(rotated[:, j], -k, dims=(-2, -1)), x[:, j % 3])
    with pytest.raises(ValueError, match="square"):
        rotations(torch.zeros(1, 1, 3, 4, 5))


def test_triplet_loss_is_torchs_triplet_margin_loss():
    g = torch.Generator().manual_seed(0)
    a, p, n = torch.randn(3, 6, 5, generator=g).unbind(0)
    assert torch.allclose(triplet_loss(a, p, n, 0.8), F.triplet_margin_loss(a, p, n, margin=0.8), atol=1e-7)
    # positive = anchor, negative 3 away: d(a, p) - d(a, n) + 1 < 0 for every triplet
    far = a + torch.tensor([3.0, 0, 0, 0, 0])
    assert triplet_loss(a, a.clone(), far, 1.0).item() == 0.0 == F.triplet_margin_loss(a, a, far).item()


def test_simclr_is_nt_xent(float64):
    g = torch.Generator().manual_seed(1)
    z = F.normalize(torch.randn(6, 2, 4, generator=g), dim=-1)  # [B, views, D]
    t = 0.5
    views = torch.cat([z[:, 0], z[:, 1]])  # 2N views, view 1 then view 2
    sim = views @ views.T / t
    positive = torch.arange(12).roll(6)  # the other view of the same image
    denominator = torch.logsumexp(sim.masked_fill(torch.eye(12, dtype=torch.bool), -math.inf), dim=1)
    expected = -(sim[torch.arange(12), positive] - denominator).mean()
    assert torch.allclose(make_objective("simclr", temperature=t).loss(z), expected, atol=1e-12)


def test_npid_nce_loss_and_bank_update_by_hand(float64):
    """N = 6, D = 3, K = 4, one member, two examples, T = 0.5, a hand-set bank and Z."""
    bank = F.normalize(torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1], [1, 0, 1]]), dim=1)
    f = F.normalize(torch.tensor([[1.0, 2, 0], [0, 1, -1]]), dim=1)
    idx, noise, z, t, n = torch.tensor([[3, 4]]), torch.tensor([[0, 2, 2, 5]]), 2.5, 0.5, 6
    got = nce_loss(scores(f[None], bank[None], idx, noise, t) / z, n)

    k_pn = 4 / 6
    total = 0.0
    for b, row in enumerate((3, 4)):
        x = lambda r: math.exp(float(f[b] @ bank[r]) / t) / z  # noqa: E731
        total -= math.log(x(row) / (x(row) + k_pn + EPS))
        total -= sum(math.log(k_pn / (x(r) + k_pn + EPS)) for r in (0, 2, 2, 5))
    assert got.item() == pytest.approx(total / 2, rel=1e-12)

    new = updated_rows(bank[None], idx, f[None], 0.5)[0]
    for b, row in enumerate((3, 4)):
        expected = 0.5 * bank[row] + 0.5 * f[b]
        assert torch.allclose(new[b], expected / expected.norm(), atol=1e-14)


class Fixed:
    """A stand-in population of one member whose 'projection' of image i is a fixed embedding [D] (a parameter)."""

    def __init__(self, embeddings, idx):
        self.embeddings, self.idx = embeddings.clone().requires_grad_(True), idx

    def train(self):
        return self

    def __call__(self, x, mode):
        assert mode == "projection"
        return self.embeddings[self.idx]


def test_npid_draws_its_bank_and_z_on_the_first_call_and_updates_the_rows(tiny, float64):
    """Bank uniform in [-1, 1] (D = 3) from the member's generator after the batch's augmentation, then the noise;
    Z = mean of the first batch's scores x N; the loss; the batch's rows of the bank updated."""
    idx = torch.tensor([[2, 5, 7, 11]])
    pop = Fixed(F.normalize(torch.randn(N, 3, generator=torch.Generator().manual_seed(0)), dim=-1), idx)
    batches = Batches(tiny, SupervisedAugment(padding=1), [torch.Generator().manual_seed(3)], "cpu")
    objective = make_objective("npid", temperature=0.5, negatives=5, momentum=0.5)
    assert objective.state_dict() == {}
    replay = torch.Generator().manual_seed(3)
    SupervisedAugment(padding=1).sample(4, SIZE, replay)  # what batches.images draws first
    bank = torch.rand(N, 3, generator=replay) * 2 - 1
    noise = torch.randint(0, N, (1, 5), generator=replay)

    loss, hits = objective.losses(pop, batches, idx)
    f = pop.embeddings[idx]
    raw = scores(f, bank[None], idx, noise, 0.5)
    z = raw.mean() * N
    assert hits is None and torch.allclose(objective.z, z[None], rtol=1e-12)
    assert torch.allclose(loss, nce_loss(raw / z, N), rtol=1e-12)
    loss.sum().backward()
    assert pop.embeddings.grad[idx[0]].abs().sum() > 0  # gradients reach f (the bank and Z are constants)
    expected = bank.clone()
    expected[idx[0]] = updated_rows(bank[None], idx, f.detach(), 0.5)[0]
    assert torch.allclose(objective.bank[0], expected, atol=1e-14)


# ---- a population of pretext members equals its members trained alone --------------------------------------------

AUGMENTS = {"rotnet": SupervisedAugment(padding=1), "s4l": SupervisedAugment(padding=1),
            "few_labels": SupervisedAugment(padding=1), "npid": SupervisedAugment(padding=1),
            "exemplar": ExemplarAugment(), "simclr": ContrastiveAugment()}
HPARAMS = {"npid": dict(negatives=8), "s4l": dict(label_fraction=0.5), "few_labels": dict(label_fraction=0.5)}
SEEDS = (3, 7)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def indices(seed):
    """A member's batches: one fixed order per seed, the same alone and in a population."""
    order = torch.randperm(N, generator=torch.Generator().manual_seed(100 + seed))
    return [order.roll(BATCH * s)[:BATCH] for s in range(STEPS)]


def train(method, data, seeds, objective=None, steps=STEPS, lr=0.05):
    """`steps` SGD steps by hand of the members `seeds` as one population -> (population, losses [steps, P],
    objective, batches)."""
    networks = []
    for seed in seeds:
        torch.manual_seed(seed)
        networks.append(build_network("wrn10_1", method, 10, projection_dim=8))
    pop = Population(networks)
    batches = Batches(data, AUGMENTS[method], [torch.Generator().manual_seed(s) for s in seeds], "cpu")
    objective = objective or make_objective(method, **HPARAMS.get(method, {}))
    orders = [indices(seed) for seed in seeds]
    history = []
    for step in range(steps):
        losses, _ = objective.losses(pop, batches, torch.stack([order[step] for order in orders]))
        losses.sum().backward()
        with torch.no_grad():
            for p in pop.params.values():
                if p.grad is not None:
                    p -= lr * p.grad
                    p.grad = None
        history.append(losses.detach())
    return pop, torch.stack(history), objective, batches


@pytest.mark.parametrize("method", ["rotnet", "exemplar", "simclr", "npid", "s4l", "few_labels"])
def test_population_of_pretext_members_equals_them_trained_alone(method, tiny, float64, one_thread):
    together, losses, objective, _ = train(method, tiny, SEEDS)
    assert torch.isfinite(losses).all() and not objective.reports_accuracy
    for i, seed in enumerate(SEEDS):
        alone, alone_losses, alone_objective, _ = train(method, tiny, [seed])
        assert torch.allclose(losses[:, i], alone_losses[:, 0], rtol=0, atol=1e-10), (method, seed)
        for name, p in alone.params.items():
            assert torch.allclose(together.params[name][i], p[0], rtol=0, atol=1e-10), (method, name)
        for key, value in alone_objective.state_dict().items():
            # rtol as well: NPID's normaliser z is ~1e6, where one float64 ulp is ~1e-10
            assert torch.allclose(objective.state_dict()[key][i], value[0], rtol=1e-13, atol=1e-10), key


@pytest.mark.parametrize("method", ["rotnet", "s4l", "few_labels", "exemplar"])
def test_pretext_losses_are_their_formulas_on_one_network(method, tiny, float64):
    """The objective on a population of one equals the loss written out on the network and the same batch."""
    torch.manual_seed(0)
    network = build_network("wrn10_1", method, 10, projection_dim=8).train()
    idx = indices(0)[0][None]
    objective = make_objective(method, **HPARAMS.get(method, {}))
    loss, _ = objective.losses(Population([network]), Batches(tiny, AUGMENTS[method], [gen(5)], "cpu"), idx)
    replay = Batches(tiny, AUGMENTS[method], [gen(5)], "cpu")
    labels = tiny.train_labels[idx[0]]
    labelled = labelled_subset(tiny.train_labels, 0.5, "per_class")[idx[0]]
    assert 0 < labelled.sum() < BATCH
    if method == "exemplar":
        z = network(replay.two_views(idx)[0], "projection")
        anchor, positive = z[:BATCH], z[BATCH:]
        expected = F.triplet_margin_loss(anchor, positive, positive[(torch.arange(BATCH) + 1) % BATCH], margin=1.0)
    elif method == "few_labels":
        expected = F.cross_entropy(network(replay.images(idx)[0])[labelled], labels[labelled])
    else:
        x = replay.images(idx)[0]
        rotated = torch.cat([torch.rot90(x, k, dims=(-2, -1)) for k in range(4)])
        expected = F.cross_entropy(network(rotated, "rotation"), torch.arange(4).repeat_interleave(BATCH))
        if method == "s4l":
            expected = expected + F.cross_entropy(network(rotated)[:BATCH][labelled], labels[labelled])
    assert torch.allclose(loss[0], expected, rtol=1e-12)


def test_npid_state_round_trips_and_a_resumed_objective_continues_identically(tiny, float64, one_thread):
    _, straight, objective, _ = train("npid", tiny, SEEDS, steps=2)
    pop, first, stopped, batches = train("npid", tiny, SEEDS, steps=1)
    buffer = io.BytesIO()
    torch.save(stopped.state_dict(), buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    assert saved["bank"].shape == (2, N, 8) and saved["z"].shape == (2,)
    resumed = make_objective("npid", **HPARAMS["npid"])
    resumed.load_state_dict(saved)
    assert all(torch.equal(resumed.state_dict()[k], stopped.state_dict()[k]) for k in saved)
    losses, _ = resumed.losses(pop, batches, torch.stack([indices(seed)[1] for seed in SEEDS]))
    assert torch.equal(first[0], straight[0]) and torch.equal(losses.detach(), straight[1])
    assert all(torch.equal(resumed.state_dict()[k], objective.state_dict()[k]) for k in saved)


def test_registry_names_every_pretext():
    assert {"rotnet", "exemplar", "simclr", "npid", "s4l", "few_labels"} <= set(OBJECTIVES)
    assert make_objective("exemplar").margin == 1.0 and make_objective("s4l").label_weight == 1.0
    npid = make_objective("npid")
    assert (npid.temperature, npid.negatives, npid.momentum) == (0.07, 4096, 0.5)


# ---- labelled subsets -------------------------------------------------------------------------------------------

def test_labelled_subset_per_class_and_classes():
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate((40, 7, 13, 1, 25))])[torch.randperm(86)]
    mask = labelled_subset(labels, 0.3, "per_class", seed=1)
    assert [int(mask[labels == c].sum()) for c in range(5)] == [12, 2, 4, 1, 8]  # round(0.3 n_c), at least 1
    assert torch.equal(mask, labelled_subset(labels, 0.3, "per_class", seed=1))
    assert not torch.equal(mask, labelled_subset(labels, 0.3, "per_class", seed=2))
    assert labelled_subset(labels, 1.0, "per_class").all()

    whole = labelled_subset(labels, 0.4, "classes", seed=5)
    chosen = labels[whole].unique()
    assert len(chosen) == 2 and torch.equal(whole, torch.isin(labels, chosen))  # round(0.4 * 5) whole classes
    assert torch.equal(whole, labelled_subset(labels, 0.4, "classes", seed=5))
    assert len(labels[labelled_subset(labels, 0.01, "classes")].unique()) == 1
    for fraction, sampling in [(0.0, "per_class"), (1.5, "classes"), (0.5, "random")]:
        with pytest.raises(ValueError):
            labelled_subset(labels, fraction, sampling)


# ---- Exemplar's view ---------------------------------------------------------------------------------------------

def test_exemplar_augment_adds_small_rotations_to_the_contrastive_view():
    images = torch.randint(0, 256, (6, 3, 16, 16), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    parent, plain = ContrastiveAugment(), exemplar_augment(ContrastiveAugment(), degrees=0.0)
    assert plain == ExemplarAugment(degrees=0.0)
    params = plain.sample(6, 16, torch.Generator().manual_seed(4))
    reference = parent.sample(6, 16, torch.Generator().manual_seed(4))
    assert all(torch.equal(params[k], reference[k]) for k in reference)  # the parent's draws come first
    assert torch.equal(plain.apply(images, params), parent.apply(images, reference))

    drawn = ExemplarAugment(degrees=20.0).sample(1000, 16, torch.Generator().manual_seed(0))["angle"]
    assert drawn.abs().max() <= 20 and drawn.min() < -18 and drawn.max() > 18
    quarter = dict(params, angle=torch.full((6,), 90.0))
    turned, flat = plain.apply(images, quarter), parent.apply(images, reference)
    assert torch.allclose(turned[..., 1:-1, 1:-1], torch.rot90(flat, 1, dims=(-2, -1))[..., 1:-1, 1:-1], atol=1e-5)

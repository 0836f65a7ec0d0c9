import pytest
import torch
import torch.nn as nn

from common import global_magnitude_prune, gmp_sparsity, layerwise_magnitude_prune, random_prune
from common.pruning.gmp import GMPWindow
from common.studies.corti2022.config import resolve_gmp
from common.models import build_network
from common.pruning.criteria import magnitude_masks
from common.pruning.pools import prunable_names


def small_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))


def count_zeros(module, names):
    params = dict(module.named_parameters())
    return sum(int((params[n] == 0).sum()) for n in names), sum(params[n].numel() for n in names)


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.9, 0.95, 0.99])
def test_global_prune_removes_exactly_round_s_times_total(sparsity):
    net = small_net()
    masks = global_magnitude_prune(net, sparsity)
    assert set(masks) == {"0.weight", "3.weight"}  # Conv2d and Linear weights, never BatchNorm or biases
    zeros, total = count_zeros(net, masks)
    assert zeros == round(sparsity * total)
    assert sum(int((~m).sum()) for m in masks.values()) == round(sparsity * total)


def test_global_prune_removes_the_smallest_magnitudes_across_layers():
    net = small_net()
    before = torch.cat([p.detach().abs().flatten() for n, p in net.named_parameters() if n.endswith("weight")
                        and p.dim() > 1])
    global_magnitude_prune(net, 0.5)
    threshold = before.sort().values[round(0.5 * before.numel())]
    for name, p in net.named_parameters():
        if name in ("0.weight", "3.weight"):
            kept = p.detach()[p.detach() != 0].abs()
            assert kept.min() >= threshold - 1e-12


def test_ties_are_broken_by_position_and_counts_stay_exact():
    net = nn.Linear(10, 10, bias=False)
    nn.init.constant_(net.weight, 0.5)
    masks = global_magnitude_prune(net, 0.37)
    assert int((~masks["weight"]).sum()) == 37
    assert not masks["weight"].flatten()[:37].any() and masks["weight"].flatten()[37:].all()


def test_bias_and_exclusion_options():
    net = build_network("wrn10_1", "supcon")
    masks = global_magnitude_prune(net, 0.5, include_bias=True, exclude=("projection",))
    assert "classifier.bias" in masks and not any(n.startswith("projection") for n in masks)
    assert all(not n.startswith("encoder") or n.endswith("weight") for n in masks)
    zeros = sum(int((~m).sum()) for m in masks.values())
    assert zeros == round(0.5 * sum(m.numel() for m in masks.values()))


def test_layerwise_gives_every_layer_the_same_sparsity():
    net = build_network("wrn10_1", "supervised")
    masks = layerwise_magnitude_prune(net, 0.7)
    for name, mask in masks.items():
        assert int((~mask).sum()) == round(0.7 * mask.numel()), name


def test_random_prune_is_exact_and_seeded():
    a, b = small_net(), small_net()
    ma = random_prune(a, 0.6, generator=torch.Generator().manual_seed(1))
    mb = random_prune(b, 0.6, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(ma[k], mb[k]) for k in ma)
    zeros, total = count_zeros(a, ma)
    assert zeros == round(0.6 * total)


def test_stacked_members_are_ranked_separately():
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(3, 50, generator=gen)
    w[1] *= 100  # a member with much larger weights must not steal the others' budget
    masks = magnitude_masks({"w": w}, [0.2, 0.5, 0.9], scope="global")["w"]
    assert [int((~m).sum()) for m in masks] == [10, 25, 45]


def test_already_pruned_entries_stay_pruned():
    w = torch.randn(1, 100)
    first = magnitude_masks({"w": w}, 0.3, scope="layer")
    w_grown = w.clone()
    w_grown[~first["w"]] = 10.0  # even if a pruned entry became large, it stays pruned
    second = magnitude_masks({"w": w_grown}, 0.5, scope="layer", masks=first)
    assert not (second["w"] & ~first["w"]).any()
    assert int((~second["w"]).sum()) == 50


def test_masks_hold_through_sgd_with_momentum_and_weight_decay():
    from common.engine.population import Population
    from common.pruning.masks import Masks

    net = build_network("wrn10_1", "supervised")
    masks = {k: v.unsqueeze(0) for k, v in global_magnitude_prune(net, 0.8).items()}
    pop = Population([net])
    opt = torch.optim.SGD(list(pop.params.values()), lr=0.5, momentum=0.9, weight_decay=5e-4)
    Masks(masks).hold(pop.params, opt)
    x, y = torch.randn(1, 8, 3, 16, 16), torch.randint(0, 10, (1, 8))
    for _ in range(20):
        loss = nn.functional.cross_entropy(pop(x)[0], y[0])
        opt.zero_grad()
        loss.backward()
        for name, mask in masks.items():
            pop.params[name].grad.mul_(mask)
        opt.step()
        with torch.no_grad():
            for name, mask in masks.items():
                pop.params[name].mul_(mask)
        for name, mask in masks.items():
            assert (pop.params[name][~mask] == 0).all()
    moved = sum(float((pop.params[n][m] != 0).float().mean()) for n, m in masks.items()) / len(masks)
    assert moved > 0.99  # kept weights still train


def test_gmp_schedule_endpoints_and_shape():
    assert gmp_sparsity(0, 0.9, 100, 1000) == 0.0
    assert gmp_sparsity(100, 0.9, 100, 1000) == 0.0
    assert gmp_sparsity(1000, 0.9, 100, 1000) == 0.9
    assert gmp_sparsity(5000, 0.9, 100, 1000) == 0.9
    assert gmp_sparsity(550, 0.9, 100, 1000) == pytest.approx(0.9 * (1 - 0.5 ** 3))
    assert gmp_sparsity(50, 0.9, 100, 1000, initial_sparsity=0.2) == 0.2
    values = [gmp_sparsity(t, 0.9, 100, 1000) for t in range(0, 1200, 50)]
    assert values == sorted(values)
    with pytest.raises(ValueError):
        gmp_sparsity(10, 0.5, 100, 100)


def test_gmp_events_reach_the_end_step():
    assert GMPWindow(1000, 20000, 500).events()[-1] == 20000
    assert GMPWindow(2440, 4760, 62).events()[-1] == 4760  # the authors' step % 62 == 0 stopped at 4712
    assert resolve_gmp("supervised", "early", 80155) == GMPWindow(1000, 20000, 500)
    assert resolve_gmp("supcon", "late", 24500) == GMPWindow(2440, 4760, 62)


def test_prunable_names_cover_convs_and_linears_only():
    net = build_network("wrn16_2", "supervised")
    names = prunable_names(net)
    assert len([n for n in names if n.startswith("encoder")]) == 16  # 13 3x3 + 3 1x1 shortcuts
    assert "classifier.weight" in names and not any("bn" in n for n in names)

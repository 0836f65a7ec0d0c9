"""The engine's parts on their own: the Masks type, the registries, identity with knobs, rewind snapshots and
BatchNorm reset."""
import math
from dataclasses import replace

import pytest
import torch

from common.data.augment import SupervisedAugment
from common.data.digits import load_digits
from common.engine.inference import predict, reset_bn
from common.engine.objectives import OBJECTIVES, make_objective
from common.engine.optimizers import OPTIMIZERS
from common.engine.phase import Job, Phase
from common.engine.population import Population
from common.engine.losses import SupConLoss
from common.engine.state import TrainState
from common.engine.loop import Trainer
from common.models import build_network
from common.pruning.criteria import CRITERIA, prune_once
from common.pruning.masks import Masks
from common.pruning.pools import POOLS
from common.spec import ModelSpec, spec_from_filename
from common.studies.corti2022.commands import PRUNINGS, population_command
from common.studies.corti2022.config import RunConfig


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    return replace(data, train_images=data.train_images[:64], train_labels=data.train_labels[:64],
                   test_images=data.test_images[:32], test_labels=data.test_labels[:32])


# ---- masks, criteria, pools -------------------------------------------------------------------------------

def test_masks_measure_hold_and_round_trip():
    masks = Masks({"a": torch.tensor([[True, False, False, True], [True, True, True, True]]),
                   "b": torch.tensor([[False, True], [True, True]])})
    assert masks.sparsity() == [0.5, 0.0]
    assert masks.member_pruned(0) == 3
    assert masks.layer_sparsity(0) == {"a": 0.5, "b": 0.5}
    assert masks.member(1) == {}  # a dense member is stored like one trained alone
    assert set(masks.member(0)) == {"a", "b"}
    params = {"a": torch.ones(2, 4, requires_grad=True), "b": torch.ones(2, 2, requires_grad=True)}
    optimizer = torch.optim.SGD(params.values(), lr=0.1, momentum=0.9)
    for p in params.values():
        p.grad = torch.ones_like(p)
    optimizer.step()
    masks.hold(params, optimizer)
    assert params["a"][0].tolist() == pytest.approx([0.9, 0.0, 0.0, 0.9]) and params["b"][0, 0] == 0
    assert optimizer.state[params["a"]]["momentum_buffer"][0].tolist() == [1.0, 0.0, 0.0, 1.0]
    again = Masks.from_state_dict(masks.state_dict())
    assert all(torch.equal(again[n], masks[n]) for n in masks)


@pytest.mark.parametrize("criterion", list(CRITERIA))
def test_every_criterion_prunes_exact_counts_per_member(criterion):
    network = build_network("wrn10_1", "supervised")
    pop = Population([network, build_network("wrn10_1", "supervised")])
    pool = POOLS["encoder_convs_and_classifier"](network)
    masks = prune_once(pop.params, pool, [0.3, 0.9], criterion, [0, 1])
    size = sum(pop.params[n][0].numel() for n in pool)
    if criterion == "layerwise":  # every tensor exactly, so the total is the sum of per-tensor roundings
        for name in pool:
            assert [int((~masks[name][i]).sum()) for i in range(2)] == [round(s * masks[name][i].numel())
                                                                       for i, s in enumerate((0.3, 0.9))]
    else:
        assert [masks.member_pruned(i) for i in range(2)] == [round(0.3 * size), round(0.9 * size)]


def test_pools_never_hold_batchnorm_or_the_projection_head():
    network = build_network("wrn10_1", "supcon")
    for name, pool in POOLS.items():
        names = pool(network)
        assert names and not any("bn" in n or n.startswith("projection.") for n in names), name


def test_registries_build_what_they_name():
    assert set(OBJECTIVES) >= {"supervised", "supcon", "linear"} and "sgd" in OPTIMIZERS
    supcon = make_objective("supcon", temperature=0.1, base_temperature=0.1)
    assert supcon.loss.temperature == 0.1 and not supcon.reports_accuracy


def test_supcon_objective_is_the_supcon_loss_of_each_member(digits):
    """Two members, two views: the objective's per-member losses are SupConLoss on each member's projections."""
    from common.data.augment import ContrastiveAugment
    from common.engine.batches import Batches

    networks = [build_network("wrn10_1", "supcon") for _ in range(2)]
    pop = Population(networks)
    batches = Batches(digits, ContrastiveAugment(), [torch.Generator().manual_seed(s) for s in (0, 1)], "cpu")
    idx = torch.stack([torch.arange(8), torch.arange(8, 16)])
    losses, hits = make_objective("supcon").losses(pop, batches, idx)
    replay = Batches(digits, ContrastiveAugment(), [torch.Generator().manual_seed(s) for s in (0, 1)], "cpu")
    views = replay.two_views(idx)
    for i, network in enumerate(networks):
        network.train()
        z = network(views[i], "projection")
        expected = SupConLoss(0.5, 0.07)(torch.stack([z[:8], z[8:]], 1), digits.train_labels[idx[i]])
        assert torch.allclose(losses[i], expected, rtol=1e-4), i
    assert hits is None


# ---- identity ---------------------------------------------------------------------------------------------

def test_corti_identity_is_stored_as_before_and_knobs_get_readable_names():
    plain = ModelSpec("supervised", "wrn16_2", "cifar10", "global", 0.9, 3)
    assert plain.name == "supervised_wrn16_2_cifar10_global_s0.9_seed3"
    assert plain.to_meta() == dict(method="supervised", arch="wrn16_2", dataset="cifar10", pruning="global",
                                   sparsity=0.9, seed=3)
    ticket = replace(plain, study="tickets", knobs=(("level", 3), ("rewind", "1ep"), ("objective", "simclr")))
    assert ticket.name == "tickets_supervised_wrn16_2_cifar10_global_s0.9_level-3_rewind-1ep_objective-simclr_seed3"
    assert ModelSpec.from_meta(ticket.to_meta()) == ticket
    parsed = spec_from_filename(ticket.name + "_encoder.safetensors")
    assert parsed == replace(ticket, knobs=(("level", "3"), ("rewind", "1ep"), ("objective", "simclr")))
    assert spec_from_filename(plain.name + ".safetensors") == plain
    with pytest.raises(ValueError, match="knob"):
        replace(plain, knobs=(("rewind_step", 5),))


@pytest.mark.parametrize("pruning", [p for p in PRUNINGS if p != "gmp_custom"])
def test_every_pruning_name_has_a_command_that_asks_for_it(pruning):
    command = population_command("supcon", pruning, 0.7, "digits", "wrn10_1", [0], "demo")
    script = "clr_pruning_finetune.py" if PRUNINGS[pruning].made_by == "pruning_finetune" else "clr_training.py"
    assert command.startswith(f"python {script} --preset demo") and "--pruning_percentages 0.7 " in command
    assert all(f"--{name} {value}" in command for name, value in PRUNINGS[pruning].asks)


# ---- hooks and inference ---------------------------------------------------------------------------------

def _job(snapshot_steps=()):
    network = build_network("wrn10_1", "supervised")
    names = tuple(n for n, _ in network.named_parameters())
    phase = Phase("train", make_objective("supervised"), 2, 16, 0.05, momentum=0.9, weight_decay=0.0, trainable=names,
                  augment=SupervisedAugment(padding=1), snapshot_steps=snapshot_steps)

    def networks():
        torch.manual_seed(0)
        return [build_network("wrn10_1", "supervised")]

    return Job([ModelSpec("supervised", "wrn10_1", "digits", "dense", 0.0, 0)], [phase], networks, {}, [{}])


def test_snapshot_hook_keeps_the_weights_of_a_rewind_point(tmp_path, digits):
    """Step 0 is the initialisation; step 4 (one epoch of 64 images at batch 16) equals a run stopped there."""
    run = RunConfig(progress=False, checkpoint_every=100)
    state = Trainer(_job(snapshot_steps=(0, 4)), digits, torch.device("cpu"), run, tmp_path / "s.pt").fit()
    initial = TrainState.fresh(_job(), torch.device("cpu")).population.params
    assert all(torch.equal(state.snapshots["train@0"]["tensors"][n], initial[n]) for n in initial)
    short = _job()
    short.phases[0] = replace(short.phases[0], epochs=1)
    after_one_epoch = Trainer(short, digits, torch.device("cpu"), run, tmp_path / "t.pt").fit().population.params
    assert all(torch.equal(state.snapshots["train@4"]["tensors"][n], after_one_epoch[n].detach()) for n in initial)
    assert (state.snapshots["train@4"]["epoch"], state.snapshots["train@4"]["batch"]) == (1, 0)


def test_reset_bn_equals_torch_update_bn_for_each_member(digits):
    """Every member's BatchNorm statistics equal torch.optim.swa_utils.update_bn on that network alone (uneven
    batches included); with equal batches the first BatchNorm's mean is the exact mean over the images."""
    torch.manual_seed(0)
    networks = [build_network("wrn10_1", "supervised") for _ in range(2)]
    pop = Population(networks)
    images = digits.train_images[:40]
    reset_bn(pop, images, digits.normalize, batch=16)  # 16 + 16 + 8
    for i, network in enumerate(networks):
        loader = [digits.normalize(images[s:s + 16]) for s in range(0, 40, 16)]
        torch.optim.swa_utils.update_bn(loader, network)
        for name, buffer in network.state_dict().items():
            if name.endswith(("running_mean", "running_var")):
                assert torch.allclose(pop.buffers[name][i], buffer, atol=1e-6), (i, name)
    reset_bn(pop, images, digits.normalize, batch=20)
    with torch.no_grad():
        first = networks[0].encoder.groups[0][0]
        exact = first.bn1.__class__  # the first BatchNorm normalises conv1's output
        conv_out = networks[0].encoder.conv1(digits.normalize(images))
    assert torch.allclose(pop.buffers["encoder.groups.0.0.bn1.running_mean"][0], conv_out.mean(dim=(0, 2, 3)),
                          atol=1e-5)
    assert exact is torch.nn.BatchNorm2d and first.bn1.momentum == 0.1  # the template's momentum is restored
    assert not math.isnan(float(predict(pop, digits.test_images, digits.normalize).sum()))


# ---- packing populations and finding resume states ------------------------------------------------------------

def _specs(seeds):
    return [ModelSpec("supervised", "wrn10_1", "digits", "dense", 0.0, s) for s in seeds]


RECIPE = {"epochs": 1}


def _state(folder, name, fingerprint, seeds):
    """A resume state; fingerprint 'fp' is that of these members under RECIPE, as a Job would save it."""
    from common.recipe import fingerprint as of

    folder.mkdir(parents=True, exist_ok=True)
    saved = of({"members": [RECIPE] * len(seeds)}) if fingerprint == "fp" else fingerprint
    torch.save(dict(fingerprint=saved, specs=[s.name for s in _specs(seeds)]), folder / f"{name}.pt")


def test_plan_resumes_states_of_any_packing_and_says_why_others_are_left_alone(tmp_path):
    from common.stage import plan_chunks

    asked = _specs(range(8))
    todo = asked[1:]  # seed 0 is finished
    _state(tmp_path, "a", "fp", [0, 1, 2])  # partly finished: resumed as it was packed
    _state(tmp_path, "b", "fp", [2, 3])  # overlaps a
    _state(tmp_path, "c", "other", [4])  # another recipe
    _state(tmp_path, "d", "fp", [5, 9])  # seed 9 not asked
    _state(tmp_path, "e", "fp", [20, 21])  # another run's: silently left alone
    (tmp_path / "f.pt").write_bytes(b"not a state")
    planned, lines = plan_chunks(asked, todo, 3, tmp_path, lambda spec: RECIPE)
    assert [[s.seed for s in p.specs] for p in planned] == [[0, 1, 2], [3, 4, 5], [6, 7]]
    assert planned[0].state_path == tmp_path / "a.pt" and planned[1].state_path is None
    why = {line.split()[2].rsplit("/", 1)[-1]: line for line in lines}
    assert set(why) == {"b.pt", "c.pt", "d.pt", "f.pt"}
    assert "overlaps" in why["b.pt"] and "another recipe" in why["c.pt"] and "seed9" in why["d.pt"]
    assert "cannot be read" in why["f.pt"]


def test_members_one_after_another_give_what_the_vmapped_population_gives():
    from common.engine.population import Population

    torch.manual_seed(0)
    networks = [build_network("wrn10_1", "supcon") for _ in range(3)]
    vmapped, sequential = Population(networks, execution="vmap").eval(), Population(networks, execution="sequential")
    sequential.eval()
    images = torch.randn(3, 16, 3, 8, 8)
    for mode in ("logits", "features", "projection"):
        assert torch.allclose(vmapped(images, mode), sequential(images, mode), atol=1e-5), mode
    shared = sequential(images[0], "hidden", shared_input=True)
    assert torch.allclose(shared[0], vmapped(images[0], "hidden", shared_input=True)[0], atol=1e-5)
    sequential.channels_last = True  # the same numbers from oneDNN's preferred layout
    assert torch.allclose(vmapped(images, "features"), sequential(images, "features"), atol=1e-5)


def test_the_cpu_runs_members_one_after_another_only_on_large_per_member_work():
    from common.engine.population import CPU_SEQUENTIAL_FROM, Population

    networks = [build_network("wrn10_1", "supervised") for _ in range(2)]
    pop = Population(networks)
    assert not pop.sequential_for(torch.zeros(2, 64, 3, 8, 8), shared_input=False)  # digits, batch 64: vmapped
    assert pop.sequential_for(torch.zeros(128, 3, 28, 28), shared_input=True)  # Fashion-MNIST, batch 128
    assert pop.sequential_for(torch.zeros(2, CPU_SEQUENTIAL_FROM // 64, 3, 8, 8), shared_input=False)
    fashion_batch = torch.zeros(128, 3, 28, 28)
    assert not Population(networks, execution="vmap").sequential_for(fashion_batch, shared_input=True)
    assert Population(networks, execution="sequential").sequential_for(torch.zeros(2, 1, 3, 8, 8), False)


def test_scripts_keep_freed_memory_where_the_c_library_is_glibc():
    import platform

    from common.runtime import keep_freed_memory

    assert keep_freed_memory() == (platform.libc_ver()[0] == "glibc")

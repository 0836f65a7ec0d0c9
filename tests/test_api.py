"""The notebook API (docs/api.md): loading checkpoints of every study, masks held through training, array kinds,
input checks, and the page's example run on the tiny zoo."""
import re
import shutil

import numpy as np
import pytest
import torch
import torch.nn as nn

import common
from common import checkpoint as ckpt
from common.models import build_network
from common.paths import REPO_ROOT, Paths
from common.pruning.criteria import prune_once
from common.spec import ModelSpec
from common.studies.corti2022.pruning_finetune import pruned_pool
from common.zoo import load_population, save_member, save_rewind_point

pytestmark = pytest.mark.usefixtures("one_thread")


def pruned_zeros(network: nn.Module, masks: dict) -> int:
    """How many of the entries the masks prune are still exactly zero."""
    params = dict(network.named_parameters())
    return sum(int((params[name][~mask] == 0).sum()) for name, mask in masks.items())


def train_steps(network: nn.Module, optimizer, steps: int, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x, y = torch.randn(16, 3, 8, 8, generator=gen), torch.randint(0, 10, (16,), generator=gen)
        loss = nn.functional.cross_entropy(network(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


OPTIMIZERS = {
    "sgd_nesterov_wd": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4),
    "adam_l2": lambda p: torch.optim.Adam(p, lr=1e-3, weight_decay=5e-4),
    "adamw": lambda p: torch.optim.AdamW(p, lr=1e-3, weight_decay=0.05),
}


# ---- masks held through training ----------------------------------------------------------------------

@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_held_masks_keep_every_zero_through_100_steps(optimizer):
    torch.manual_seed(0)
    network = build_network("wrn10_1", "supervised")
    masks = common.global_magnitude_prune(network, 0.9)
    pruned = sum(int((~m).sum()) for m in masks.values())
    before = {n: p.detach().clone() for n, p in network.named_parameters()}
    common.hold_masks(network, masks)
    train_steps(network, OPTIMIZERS[optimizer](network.parameters()), 100)
    assert pruned_zeros(network, masks) == pruned
    params = dict(network.named_parameters())
    moved = np.mean([float((params[n][m] != before[n][m]).float().mean()) for n, m in masks.items()])
    assert moved > 0.9  # the kept weights still train


def test_without_holding_the_zeros_regrow():
    """The problem hold_masks solves (issue 31: after one SGD step only 203 of ~2,786 zeros remained)."""
    torch.manual_seed(0)
    network = build_network("wrn10_1", "supervised")
    masks = common.global_magnitude_prune(network, 0.9)
    pruned = sum(int((~m).sum()) for m in masks.values())
    train_steps(network, OPTIMIZERS["sgd_nesterov_wd"](network.parameters()), 1)
    assert pruned_zeros(network, masks) < pruned / 2


def test_an_optimizer_with_momentum_from_before_pruning_is_held_when_passed():
    torch.manual_seed(0)
    network = build_network("wrn10_1", "supervised")
    optimizer = torch.optim.SGD(network.parameters(), lr=0.1, momentum=0.9)
    train_steps(network, optimizer, 3)  # momentum buffers now non-zero everywhere
    masks = common.global_magnitude_prune(network, 0.8)
    pruned = sum(int((~m).sum()) for m in masks.values())
    gradient_only = common.hold_masks(network, masks)
    train_steps(network, optimizer, 1, seed=1)
    assert pruned_zeros(network, masks) < pruned  # the old momentum moves them: the documented limit
    gradient_only.release()
    held = common.hold_masks(network, masks, optimizer)
    train_steps(network, optimizer, 50, seed=2)
    assert pruned_zeros(network, masks) == pruned
    held.release()
    train_steps(network, optimizer, 1, seed=3)  # released: pruned entries get gradients again
    assert pruned_zeros(network, masks) < pruned


def test_hold_masks_refuses_masks_that_do_not_fit():
    network = build_network("wrn10_1", "supervised")
    with pytest.raises(ValueError, match="does not have: bogus.weight"):
        common.hold_masks(network, {"bogus.weight": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(ValueError, match="must be a bool tensor of shape"):
        common.hold_masks(network, {"classifier.weight": torch.ones(3, 3, dtype=torch.bool)})


@pytest.mark.parametrize("prune_bias", [True, False])
def test_one_shot_prune_is_the_command_lines_pool(prune_bias):
    torch.manual_seed(0)
    network = build_network("wrn10_1", "supcon")
    params = {n: p.detach().unsqueeze(0) for n, p in network.named_parameters()}
    script = prune_once(params, pruned_pool(network, prune_bias), [0.7], "global", [0])  # what pruning_finetune.py does
    masks = common.one_shot_prune(network, 0.7, prune_bias=prune_bias)
    assert masks.keys() == script.keys() and ("classifier.bias" in masks) == prune_bias
    assert all(torch.equal(masks[n], script[n][0]) for n in masks)
    assert not any(n.startswith("projection") for n in masks)
    assert any(n.startswith("projection") for n in common.global_magnitude_prune(build_network("wrn10_1", "supcon"),
                                                                                  0.7))  # the generic rule


# ---- input checks -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, match", [
    ((10, 1.5, 0, 100), r"final_sparsity must be in \[0, 1\)"),
    ((10, -0.1, 0, 100), r"final_sparsity must be in \[0, 1\)"),
    ((10, 0.5, 0, 100, 0.7), "must not exceed final_sparsity"),
    ((10, 0.5, 100, 100), "must be < end_step"),
])
def test_gmp_sparsity_refuses_what_the_prune_functions_refuse(args, match):
    with pytest.raises(ValueError, match=match):
        common.gmp_sparsity(*args)
    with pytest.raises(ValueError, match=r"sparsity must be in \[0, 1\)"):
        common.global_magnitude_prune(build_network("wrn10_1", "supervised"), 1.5)


def unit(*shape):
    return nn.functional.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(0)), dim=-1)


def test_supcon_refuses_labels_of_another_length():
    with pytest.raises(ValueError, match=r"5 labels for a batch of 8 images .* one label per image"):
        common.SupConLoss()(unit(8, 2, 16), torch.arange(5))


def test_supcon_refuses_unnormalised_features_unless_asked_to_normalise():
    features = 30 * unit(8, 2, 16)
    labels = torch.tensor([0, 1, 2, 3] * 2)
    with pytest.raises(ValueError, match="must be L2-normalised .* normalize=True"):
        common.SupConLoss(0.5, 0.07)(features, labels)
    normalised = common.SupConLoss(0.5, 0.07, normalize=True)(features, labels)
    assert normalised.item() == pytest.approx(common.SupConLoss(0.5, 0.07)(unit(8, 2, 16), labels).item(), rel=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # bf16-rounded unit vectors pass
        common.SupConLoss()(unit(8, 2, 16).bfloat16(), labels)
    batched = torch.func.vmap(common.SupConLoss(0.5, 0.07, normalize=True))(torch.stack([features, features]),
                                                                          torch.stack([labels, labels]))
    assert torch.allclose(batched, normalised.expand(2))


def test_metrics_refuse_inputs_that_do_not_fit_in_one_sentence():
    rng = np.random.default_rng(0)
    train, query = rng.normal(size=(20, 4)), rng.normal(size=(5, 4))
    with pytest.raises(ValueError, match="8 train_labels for 20 train_features rows"):
        common.knn_predict(train, np.zeros(8, int), query, 3)
    with pytest.raises(ValueError, match="must share D"):
        common.knn_predict(train, np.zeros(20, int), query[:, :3], 3)
    with pytest.raises(ValueError, match=r"k=30 must be in 1..20"):
        common.knn_predict(train, np.zeros(20, int), query, 30)
    with pytest.raises(ValueError, match="cover different examples"):
        common.find_pies(np.zeros((3, 10), int), np.zeros((3, 9), int))
    with pytest.raises(ValueError, match=r"probe_preds \[L, N\] .* final_preds \[N\]"):
        common.prediction_depth(np.zeros((4, 10), int), np.zeros(9, int))
    with pytest.raises(ValueError, match="features must be"):
        common.q_score(np.zeros(10))


# ---- array kinds ------------------------------------------------------------------------------------------

def metric_calls(kind):
    """Each public metric called on inputs of one kind (numpy or torch)."""
    rng = np.random.default_rng(0)
    arrays = dict(train=rng.normal(size=(40, 6)), labels=rng.integers(0, 3, 40), query=rng.normal(size=(9, 6)),
                  preds=rng.integers(0, 3, (4, 9)), other=rng.integers(0, 3, (4, 9)), final=rng.integers(0, 3, 9))
    a = {k: torch.as_tensor(v) for k, v in arrays.items()} if kind == "torch" else arrays
    return {"knn_predict": common.knn_predict(a["train"], a["labels"], a["query"], 5),
            "q_score": common.q_score(a["query"]),
            "find_pies": common.find_pies(a["preds"], a["other"]),
            "modal_labels": common.modal_labels(a["preds"]),
            "prediction_depth": common.prediction_depth(a["preds"], a["final"])}


def test_numpy_in_numpy_out_torch_in_torch_out():
    as_numpy, as_torch = metric_calls("numpy"), metric_calls("torch")
    for name in as_numpy:
        assert isinstance(as_numpy[name], np.ndarray), name
        assert isinstance(as_torch[name], torch.Tensor), name
        np.testing.assert_array_equal(as_torch[name].numpy(), as_numpy[name], err_msg=name)
    assert as_numpy["knn_predict"].dtype == np.int64


# ---- loading checkpoints ------------------------------------------------------------------------------------

def spec(method, pruning="dense", sparsity=0.0, seed=0):
    return ModelSpec(method, "wrn10_1", "digits", pruning, sparsity, seed)


@pytest.mark.parametrize("model, part", [(spec("supervised"), "model"), (spec("supervised", "gmp_early", 0.5), "model"),
                                         (spec("supcon", "gmp_late", 0.5), "encoder"),
                                         (spec("supcon", "gmp_late", 0.5), "classifier")])
def test_load_checkpoint_gives_the_network_the_analyses_use(tiny_zoo, model, part):
    paths = Paths(tiny_zoo)
    loaded = common.load_checkpoint(paths.checkpoint(model, part))
    assert loaded.spec == model and loaded.meta["spec"]["pruning"] == model.pruning
    assert not loaded.network.training
    images = torch.randn(12, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    population = load_population(paths, [model])[0].eval()
    with torch.no_grad():
        assert torch.allclose(loaded.network(images), population(images[None])[0], atol=1e-5)
    if model.pruning == "dense":
        assert loaded.masks == {} and loaded.held is None
        return
    pruned = sum(int((~m).sum()) for m in loaded.masks.values())
    assert pruned > 0 and pruned_zeros(loaded.network, loaded.masks) == pruned
    train_steps(loaded.network.train(), torch.optim.SGD(loaded.network.parameters(), lr=0.1, momentum=0.9), 5)
    assert pruned_zeros(loaded.network, loaded.masks) == pruned  # held by default


@pytest.mark.parametrize("model", [
    ModelSpec("rotnet", "wrn10_1", "digits", "imp", 0.36, 1, study="tickets", knobs=(("level", 2),)),
    ModelSpec("npid", "wrn10_1", "digits", "dense", 0.0, 0, study="tickets"),
    ModelSpec("supervised", "wrn10_1", "digits", "layerwise", 0.5, 2, study="three_regime",
              knobs=(("epochs", 30), ("dense", 0))),
])
def test_load_checkpoint_reads_every_studys_models(tmp_path, model):
    """A tickets pretext (rotation head, two files), an NPID encoder (linear projection) and a three-regime
    retrained model, written as the studies write them."""
    torch.manual_seed(0)
    network = build_network(model.arch, model.method, projection_dim=64)
    masks = common.global_magnitude_prune(network, model.sparsity) if model.sparsity else {}
    paths = Paths(tmp_path)
    save_member(paths, model, network.state_dict(), masks, dict(spec=model.to_meta(), config={"projection_dim": 64}))
    loaded = common.load_checkpoint(paths.checkpoints(model)[0])
    assert loaded.spec == model
    assert all(torch.equal(v, network.state_dict()[k]) for k, v in loaded.network.state_dict().items())
    assert loaded.masks.keys() == masks.keys()
    point = dict(tensors=network.state_dict(), generators=torch.zeros(4, dtype=torch.uint8), order=torch.arange(6),
                 phase="dense", epoch=1, batch=0)
    save_rewind_point(paths.rewind_point(model, "dense@6"), point, model)
    with pytest.raises(ckpt.CheckpointError, match="is a rewind point .* not a finished model"):
        common.load_checkpoint(paths.rewind_point(model, "dense@6"))


def test_load_checkpoint_names_what_is_wrong(tiny_zoo, tmp_path):
    zoo = tmp_path / "zoo"
    shutil.copytree(tiny_zoo / "models", zoo / "models")
    paths = Paths(zoo)
    model = spec("supcon")
    paths.checkpoint(model, "encoder").unlink()
    with pytest.raises(ckpt.CheckpointError, match="_encoder.safetensors is missing: retrain it"):
        common.load_checkpoint(paths.checkpoint(model, "classifier"))
    broken = paths.checkpoint(spec("supervised"))
    broken.write_bytes(broken.read_bytes()[:200])
    with pytest.raises(ckpt.CheckpointError, match="unreadable or corrupt"):
        common.load_checkpoint(broken)
    with pytest.raises(ckpt.CheckpointError, match="does not exist"):
        common.load_checkpoint(zoo / "nothing.safetensors")


# ---- the page ------------------------------------------------------------------------------------------------

def test_the_api_page_example_runs(tiny_zoo, monkeypatch, capsys):
    """docs/api.md's code, run from the tiny zoo's folder as from the repository after `./setup.sh demo`."""
    page = (REPO_ROOT / "docs" / "api.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, re.S)
    assert blocks
    monkeypatch.chdir(tiny_zoo)
    exec(compile("\n".join(blocks), "docs/api.md", "exec"), {"__name__": "docs_api"})
    out = capsys.readouterr().out
    for line in ("test accuracy", "PIEs of 360 test digits", "mean Q-Score", "mean prediction depth", "SupCon loss"):
        assert line in out, out

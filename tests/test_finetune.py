"""One-shot pruning + finetuning on digits: exact sparsity that never regrows, accuracy metadata, both methods and
both SupCon finetune modes, reruns that skip, and bad input that exits 2 with one line and writes nothing."""
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from common import checkpoint as ckpt
from common.studies.corti2022 import pruning_finetune as run_finetune, training as run_training
from common.cli import run_main
from common.paths import REPO_ROOT
from common.studies.corti2022.paths import CortiPaths
from common.spec import ModelSpec

# One epoch everywhere keeps the module in seconds; accuracy is not the point here.
FAST = ["--preset", "demo", "--no-progress", "--epochs", "1", "--batch_size", "256"]
HEAD = ["--head_epochs", "1", "--batch_size_head", "256"]  # SupCon's representation mode only


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def root(tmp_path_factory, one_thread):
    """Two dense digits models per method, trained once for the module."""
    out = tmp_path_factory.mktemp("finetune")
    common = ["--preset", "demo", "--index_start", "0", "--index_end", "1", "--pruning_percentages", "0.0",
              "--epochs", "1", "--batch_size", "256", "--lr_milestones", "--output_root", str(out), "--no-progress"]
    run_training.main("supervised", common)
    run_training.main("supcon", common + ["--head_epochs", "1", "--head_milestones", "--batch_size_head", "256"])
    return out


def finetune(method, root, *flags):
    head = HEAD if method == "supcon" else []
    return run_finetune.main(method, FAST + head + ["--models_number", "2", "--output_root", str(root), *flags])


def load_parts(paths, spec):
    state, masks, meta = {}, {}, None
    for part in spec.parts:
        s, m, meta = ckpt.load_model(paths.checkpoint(spec, part))
        state.update(s)
        masks.update(m)
    return state, masks, meta


def assert_exact_and_held(paths, spec, pool_names):
    state, masks, meta = load_parts(paths, spec)
    assert set(masks) == set(pool_names)
    pool = sum(m.numel() for m in masks.values())
    pruned = sum(int((~m).sum()) for m in masks.values())
    assert pruned == round(spec.sparsity * pool)
    for name, mask in masks.items():  # pruned entries stayed exactly zero through finetuning
        assert int(state[name][~mask].count_nonzero()) == 0, name
    assert meta["pool_sparsity"] == pytest.approx(pruned / pool) and meta["pruned_entries"] == pruned
    for key in ("accuracy_before_pruning", "accuracy_after_pruning", "test_accuracy"):
        assert 0.0 <= meta[key] <= 1.0, key
    return meta


def pool_names(method, prune_bias=True):
    from common.models import build_network
    net = build_network("wrn10_1", method, 10, 128)
    return run_finetune.pruned_pool(net, prune_bias)


def test_supervised_global_exact_sparsity_summary_and_rerun(root):
    paths = CortiPaths(root)
    results = finetune("supervised", root, "--pruning_percentages", "0.5,0.9", "--population_size", "2")
    assert len(results) == 4 and not any(r["failed"] for r in results)
    dense_meta = ckpt.read_meta(paths.checkpoint(ModelSpec("supervised", "wrn10_1", "digits", "dense", 0.0, 0)))
    for s in (0.5, 0.9):
        for seed in (0, 1):
            meta = assert_exact_and_held(paths, ModelSpec("supervised", "wrn10_1", "digits", "global", s, seed),
                                         pool_names("supervised"))
            if seed == 0:  # the dense accuracy is the dense model's own final test accuracy
                assert meta["accuracy_before_pruning"] == pytest.approx(dense_meta["test_accuracy"], abs=1e-6)
    summary = pd.read_csv(paths.finetune_summary("digits", "supervised", "wrn10_1", "global"))
    assert list(summary["sparsity"]) == [0.5, 0.9] and list(summary["models"]) == [2, 2]
    assert (summary["measured_sparsity_min"] == summary["sparsity"]).all()
    assert summary["accuracy_after_finetune_mean"].notna().all()

    before = {p: p.stat().st_mtime_ns for p in paths.models.rglob("*.safetensors")}
    assert finetune("supervised", root, "--pruning_percentages", "0.5,0.9") == []
    assert {p: p.stat().st_mtime_ns for p in paths.models.rglob("*.safetensors")} == before


def test_supcon_end_to_end_and_representation(root):
    paths = CortiPaths(root)
    finetune("supcon", root, "--pruning_percentages", "0.9")
    finetune("supcon", root, "--pruning_percentages", "0.5", "--finetune_mode", "representation",
             "--pruning_method", "random", "--no-prune_bias")
    for seed in (0, 1):
        meta = assert_exact_and_held(paths, ModelSpec("supcon", "wrn10_1", "digits", "global", 0.9, seed),
                                     pool_names("supcon"))
        assert meta["config"]["finetune_mode"] == "end_to_end" and set(meta["epochs"]) == {"finetune"}
        meta = assert_exact_and_held(paths, ModelSpec("supcon", "wrn10_1", "digits", "random", 0.5, seed,
                                                      knobs=(("finetune", "representation"),)),
                                     pool_names("supcon", prune_bias=False))
        assert set(meta["epochs"]) == {"finetune_encoder", "finetune_head"}
        encoder, _, _ = ckpt.load_model(paths.checkpoint(ModelSpec("supcon", "wrn10_1", "digits", "random", 0.5,
                                                                   seed, knobs=(("finetune", "representation"),)),
                                                         "encoder"))
        assert any(k.startswith("projection.") for k in encoder)  # the SupCon phase needed the kept head
    assert (paths.finetune_summary("digits", "supcon", "wrn10_1", "random")).is_file()


def test_layerwise_prunes_every_tensor_to_the_target(root):
    paths = CortiPaths(root)
    finetune("supervised", root, "--pruning_percentages", "0.7", "--pruning_method", "layerwise",
             "--models_number", "1")
    spec = ModelSpec("supervised", "wrn10_1", "digits", "layerwise", 0.7, 0)
    _, masks, meta = load_parts(paths, spec)
    for name, mask in masks.items():
        assert int((~mask).sum()) == round(0.7 * mask.numel()), name
    assert meta["test_accuracy"] is not None


def snapshot(root):
    return sorted((str(p.relative_to(root)), p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("flags, words", [
    (["--pruning_percentages", "0.5,1.0"], "(0, 1)"),
    (["--pruning_percentages", "0.0"], "(0, 1)"),
    (["--models_number", "3"], "`python sup_training.py --preset demo --epochs 1 --batch_size 256 --lr_milestones "
                               "--pruning_percentages 0 --index_start 2 --index_end 2 --output_root "),
    (["--pruning_method", "magnitude"], "pruning_method"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(root, capsys, flags, words):
    before = snapshot(root)
    with pytest.raises(SystemExit) as exit_info:
        run_main(lambda argv: run_finetune.main("supervised", argv),
                 FAST + ["--models_number", "2", "--output_root", str(root), *flags])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and "\n" not in err and words in err
    assert snapshot(root) == before


def test_checkpoint_of_another_arch_is_named(root, tmp_path):
    """A dense file whose name promises wrn16_2 but holds a wrn10_1 model: exit 2 naming it (as a script)."""
    src = CortiPaths(root).checkpoint(ModelSpec("supervised", "wrn10_1", "digits", "dense", 0.0, 0))
    fake = CortiPaths(tmp_path).checkpoint(ModelSpec("supervised", "wrn16_2", "digits", "dense", 0.0, 0))
    fake.parent.mkdir(parents=True)
    shutil.copy(src, fake)
    before = snapshot(tmp_path)
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "sup_pruning_finetune.py"), "--preset", "demo",
                           "--arch", "wrn16_2", "--models_number", "1", "--output_root", str(tmp_path)],
                          capture_output=True, text=True, cwd=REPO_ROOT)
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(err) == 1 and fake.name in err[0] and "wrn10_1" in err[0], proc.stderr
    assert snapshot(tmp_path) == before

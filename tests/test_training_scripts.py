"""sup_training.py / clr_training.py end to end on digits, and their handling of bad input."""
import os
import pickle

import pandas as pd
import pytest
import torch

from common.cli import run_main
from common.paths import Paths
from common.spec import ModelSpec
from common.studies.corti2022.training import main
from common.zoo import load_member

FAST = {
    "supervised": ["--epochs", "2", "--lr_milestones", "1"],
    "supcon": ["--epochs", "2", "--head_epochs", "2", "--head_milestones", "1"],
}


def train_args(root, method, *extra):
    return ["--preset", "demo", "--index_start", "0", "--index_end", "1", "--pruning_percentages", "0.0,0.5",
            "--output_root", str(root), "--no-progress", *FAST[method], *extra]


@pytest.fixture(scope="module", params=["supervised", "supcon"])
def trained(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    results = main(request.param, train_args(root, request.param))
    return request.param, root, results


def test_writes_checkpoints_with_exact_sparsity_and_metadata(trained):
    method, root, results = trained
    assert len(results) == 4 and not any(r["failed"] for r in results)
    paths = Paths(root)
    for seed in (0, 1):
        for sparsity, pruning in ((0.0, "dense"), (0.5, "gmp_late" if method == "supcon" else "gmp_early")):
            spec = ModelSpec(method, "wrn10_1", "digits", pruning, sparsity, seed)
            state, masks, meta = load_member(paths, spec)
            assert meta["test_accuracy"] is not None and 0.0 <= meta["test_accuracy"] <= 1.0
            assert meta["config"]["arch"] == "wrn10_1" and meta["versions"]["torch"] == torch.__version__
            if sparsity == 0:
                assert masks == {} and meta["sparsity"] == 0.0
                continue
            assert meta["sparsity"] == pytest.approx(0.5, abs=1e-3)
            for name, mask in masks.items():  # layer-wise GMP: every pruned tensor exactly at the target
                assert int((~mask).sum()) == round(0.5 * mask.numel()), name
                assert (state[name][~mask] == 0).all(), name
            assert paths.metrics_csv(spec).is_file() and paths.curves_png(spec).is_file()
            history = pd.read_csv(paths.metrics_csv(spec))
            assert history["sparsity"].iloc[-1] == pytest.approx(meta["sparsity"])


def test_supcon_saves_encoder_and_classifier_and_prunes_both(trained):
    method, root, _ = trained
    if method != "supcon":
        pytest.skip("SupCon only")
    spec = ModelSpec("supcon", "wrn10_1", "digits", "gmp_late", 0.5, 0)
    paths = Paths(root)
    assert all(p.is_file() for p in paths.checkpoints(spec))
    _, masks, _ = load_member(paths, spec)
    assert {"classifier.weight", "classifier.bias"} <= set(masks)
    assert not any(n.startswith("projection") for n in masks)


def test_rerun_skips_finished_models(trained):
    method, root, _ = trained
    files = sorted((Paths(root).models).rglob("*.safetensors"))
    stamps = [os.stat(f).st_mtime_ns for f in files]
    assert main(method, train_args(root, method)) == []
    assert [os.stat(f).st_mtime_ns for f in files] == stamps


def test_finished_model_of_another_recipe_is_never_overwritten(trained, capsys):
    method, root, _ = trained
    files = {f: f.read_bytes() for f in Paths(root).models.rglob("*.safetensors")}
    with pytest.raises(SystemExit) as exit_info:
        run_main(lambda argv: main(method, argv), train_args(root, method, "--learning_rate", "0.123"))
    assert exit_info.value.code == 2
    assert "another recipe" in capsys.readouterr().err
    assert all(f.read_bytes() == content for f, content in files.items())


BAD_FLAGS = [
    (["--pruning_percentages", "1.0"], "pruning_percentages"),
    (["--pruning_percentages", "-0.1"], "pruning_percentages"),
    (["--pruning_percentages", "0.5", "--begin_step", "50", "--end_step", "40"], "begin step"),
    (["--pruning_percentages", "0.5", "--end_step", "100000"], "past this run's last step"),
    (["--dataset", "mnist"], "dataset"),
    (["--arch", "vgg"], "arch"),
    (["--index_start", "3", "--index_end", "1"], "index_start"),
    (["--epochs", "two"], "epochs"),
    (["--dataset", "cifar10", "--data_dir", "BROKEN"], "data_batch"),
]


@pytest.mark.parametrize("method", ["supervised", "supcon"])
@pytest.mark.parametrize("flags,needle", BAD_FLAGS)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, method, flags, needle):
    broken = tmp_path / "broken" / "cifar-10-batches-py"
    broken.mkdir(parents=True)
    pickle.dump({"data": [], "labels": []}, open(broken / "data_batch_1", "wb"))
    flags = [str(tmp_path / "broken") if f == "BROKEN" else f for f in flags]
    argv = ["--preset", "demo", "--output_root", str(tmp_path / "out"), "--no-progress", *flags]
    with pytest.raises(SystemExit) as exit_info:
        run_main(lambda a: main(method, a), argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2
    assert len(err) == 1 and needle in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "out").exists()

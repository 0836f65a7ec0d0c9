"""The PIE stage end to end on tiny digits populations (both learning methods, two GMP schedules), plus the
pure overlap functions. The populations are the session's tiny zoo (tests/conftest.py) plus one trained here."""
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from common.studies.corti2022 import training as run_training
from common.cli import run_main
from common.data.digits import load_digits
from common.metrics.overlaps import overlap_counts, pairwise_overlaps, per_class_overlap
from common.studies.corti2022.paths import CortiPaths
from common.metrics.pies import find_pies
from common.studies.corti2022.pies import main as pie_main
from common.engine.inference import predict
from common.zoo import finished_specs, group_populations, load_population

from conftest import ZOO_FLAGS


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def root(tiny_zoo, tmp_path_factory):
    """A copy of the session's tiny zoo (seeds 0-1: supervised dense + gmp_early 0.5, SupCon dense + gmp_late 0.5)
    plus a supervised gmp_late 0.5 population: two pruning methods to overlap, and one shared with SupCon."""
    root = tmp_path_factory.mktemp("pies") / "zoo"
    shutil.copytree(tiny_zoo, root)
    run_training.main("supervised", ZOO_FLAGS["supervised"] + ["--pruning_percentages", "0.5", "--gmp_schedule",
                                                              "late", "--output_root", str(root)])
    return root


def pies_args(root, *extra):
    return ["--preset", "demo", "--output_root", str(root), "--no-progress", "--max_pie_images", "8", *extra]


@pytest.fixture(scope="module")
def supervised_run(root):
    return pie_main("supervised", pies_args(root, "--plot_q_score", "--plot_umap", "--models_number", "3"))


def test_supervised_stage_writes_tables_and_figures(root, supervised_run):
    paths = CortiPaths(root)
    summary = pd.read_csv(paths.pie_summary("digits", "supervised"))
    assert summary[["pruning", "sparsity"]].values.tolist() == [["gmp_early", 0.5], ["gmp_late", 0.5]]
    assert (summary["dense_models"] == 2).all() and (summary["pruned_models"] == 2).all()  # 3 asked, 2 on disk
    for column in ("dense_accuracy_mean", "pruned_accuracy_std", "pies", "pie_rate", "dense_modal_accuracy_on_pies",
                   "dense_member_accuracy_on_rest", "dense_q_score_mean", "pruned_l1_norm_pies"):
        assert column in summary
    examples = pd.read_csv(paths.pie_examples("digits", "supervised", "gmp_early", 0.5))
    assert len(examples) == 360 and examples["pie"].dtype == bool
    assert examples["index"].tolist() == list(range(360))
    assert examples["dense_agreement"].isin([0.5, 1.0]).all()
    assert examples["dense_l1_norm"].between(1, 8 + 1e-6).all()  # L2-normalised 64-d representations
    assert summary.loc[0, "pies"] == examples["pie"].sum()
    overlaps = pd.read_csv(paths.pie_overlaps("digits", "supervised"))
    assert overlaps[["a", "b"]].values.tolist() == [["gmp_early", "gmp_late"]]
    assert overlaps.loc[0, "size_a"] == summary.loc[0, "pies"]
    for kind in ("pies_per_class", "pie_images", "q_score", "z_score", "l1_norm", "umap"):
        assert paths.pie_figure("digits", "supervised", kind, "gmp_late", 0.5).stat().st_size > 1000, kind
    assert paths.pie_figure("digits", "supervised", "pies_vs_sparsity").is_file()
    assert paths.pie_figure("digits", "supervised", "overlaps", "gmp_early_vs_gmp_late", 0.5).is_file()
    with np.load(paths.pie_figure("digits", "supervised", "umap", "gmp_late", 0.5, "npz")) as umap:
        assert umap["dense_embedding"].shape == umap["pruned_embedding"].shape == (360, 2)


def test_pie_flags_equal_find_pies_on_fresh_predictions(root, supervised_run):
    paths = CortiPaths(root)
    data = load_digits()
    populations = group_populations(finished_specs(paths, "digits", "supervised"))

    def preds(key):
        pop, _ = load_population(paths, populations[key])
        with torch.no_grad():
            return predict(pop, data.test_images, data.normalize).argmax(-1)

    expected = find_pies(preds(("dense", 0.0)), preds(("gmp_late", 0.5)))
    examples = pd.read_csv(paths.pie_examples("digits", "supervised", "gmp_late", 0.5))
    np.testing.assert_array_equal(examples["pie"].to_numpy(), expected)


def test_supcon_stage_and_method_comparison(root, supervised_run):
    summary = pie_main("supcon", pies_args(root, "--plot_q_score", "--models_number", "3"))
    assert summary[["pruning", "sparsity", "pruned_models"]].values.tolist() == [["gmp_late", 0.5, 2]]
    paths = CortiPaths(root)
    assert paths.pie_figure("digits", "supcon", "q_score", "gmp_late", 0.5).is_file()
    comparison = pd.read_csv(paths.pie_comparison("digits"))
    assert comparison[["pruning", "sparsity", "a", "b"]].values.tolist() == [["gmp_late", 0.5, "supervised", "SupCon"]]
    sup = pd.read_csv(paths.pie_examples("digits", "supervised", "gmp_late", 0.5))["pie"].to_numpy()
    supcon = pd.read_csv(paths.pie_examples("digits", "supcon", "gmp_late", 0.5))["pie"].to_numpy()
    assert comparison.loc[0, "common"] == (sup & supcon).sum() and comparison.loc[0, "size_b"] == supcon.sum()
    assert paths.pie_comparison("digits", "gmp_late", 0.5).is_file()


def test_missing_population_is_skipped_with_a_warning(root, supervised_run, capsys):
    capsys.readouterr()
    summary = pie_main("supervised", pies_args(root, "--pruning_methods", "gmp_early", "--pruning_percentages",
                                               "0.5,0.9"))
    warnings = [line for line in capsys.readouterr().err.splitlines() if "WARNING" in line]
    assert any("gmp_early population at sparsity 0.9" in line and
               "sup_training.py --preset demo --epochs 1 --batch_size 256 --lr_milestones --gmp_schedule early "
               "--pruning_percentages 0.9 --index_start 0 --index_end 1 --output_root " in line
               for line in warnings), warnings
    # the run covered one configuration; the other rows of summary.csv are kept
    assert summary[["pruning", "sparsity"]].values.tolist() == [["gmp_early", 0.5], ["gmp_late", 0.5]]


@pytest.mark.parametrize("argv,message", [
    (["--pruning_percentages", "0.3"], "no pruned supervised"),
    (["--models_number", "0"], "--models_number 0"),
    (["--pruning_methods", "magic,global"], "--pruning_methods magic: choose from"),  # the form the flag takes
    # issue 31: the command suggested for a missing sparsity trains that sparsity (it said 0.9)
    (["--pruning_percentages", "0.33"], "--pruning_percentages 0.33 --index_start 0"),
])
def test_bad_requests_exit_2_with_one_line(root, argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        run_main(lambda a: pie_main("supervised", a), pies_args(root, *argv))
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_no_population_at_all_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        run_main(lambda a: pie_main("supcon", a), pies_args(tmp_path))
    assert exit_.value.code == 2
    assert "no dense SupCon wrn10_1 population" in capsys.readouterr().err
    assert not (tmp_path / "pies").exists()


# ---- pure overlap functions -------------------------------------------------------------------------

def test_overlap_counts_by_hand():
    a = np.array([1, 1, 0, 0, 1, 0], bool)
    b = np.array([1, 0, 1, 0, 1, 0], bool)
    assert overlap_counts(a, b) == dict(size_a=3, size_b=3, common=2, unique_a=1, unique_b=1, jaccard=0.5)
    assert np.isnan(overlap_counts(np.zeros(3, bool), np.zeros(3, bool))["jaccard"])
    per_class = per_class_overlap(a, b, np.array([0, 1, 1, 2, 2, 0]), 3)
    np.testing.assert_array_equal(per_class["common"], [1, 0, 1])
    np.testing.assert_array_equal(per_class["unique_a"], [0, 1, 0])
    np.testing.assert_array_equal(per_class["unique_b"], [0, 1, 0])
    rows = pairwise_overlaps({"x": a, "y": b, "z": a})
    assert [(r["a"], r["b"], r["common"]) for r in rows] == [("x", "y", 2), ("x", "z", 3), ("y", "z", 2)]
    with pytest.raises(ValueError):
        overlap_counts(a, b[:3])

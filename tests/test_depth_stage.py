"""The prediction-depth stage end to end on tiny digits populations (trained once per module, in-process)."""
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier

from common.studies.corti2022 import training as run_training
from common.data.augment import SupervisedAugment
from common.errors import UsageError
from common.studies.corti2022.config import preset_config
from common.data.digits import load_digits
from common.models import build_network
from common.studies.corti2022.paths import CortiPaths
from common.spec import ModelSpec
from common.metrics.prediction_depth import prediction_depth
from common.studies.corti2022.depth import augmented_probes, main
from common.engine.inference import predict
from common.zoo import finished_specs, group_populations, load_population, save_member

WRN10_1_PROBES = 10
DEMO = ["--preset", "demo", "--no-progress"]


@pytest.fixture(scope="module")
def sup_paths(tmp_path_factory):
    """Two dense and two GMP-pruned (0.5) supervised models, one epoch each: the stage needs models, not good ones."""
    root = tmp_path_factory.mktemp("sup")
    run_training.main("supervised", DEMO + ["--index_start", "0", "--index_end", "1", "--pruning_percentages",
                                            "0.0,0.5", "--epochs", "1", "--lr_milestones", "1", "--output_root",
                                            str(root)])
    return CortiPaths(root)


@pytest.fixture(scope="module")
def sup_run(sup_paths):
    summary = main("supervised", DEMO + ["--output_root", str(sup_paths.root)])
    return sup_paths, summary


def test_outputs_exist_and_depths_are_in_range(sup_run):
    paths, summary = sup_run
    out = paths.depth_dir("digits", "supervised")
    examples = pd.read_csv(out / "depth_gmp_early_s0.5_final_prediction_k30.csv")
    for name in ("scatter_gmp_early_s0.5_final_prediction_k30.png", "histogram_gmp_early_s0.5_final_prediction_k30.png",
                 "depth_vs_sparsity_final_prediction_k30.png", "prediction_depth_summary.csv"):
        assert (out / name).stat().st_size > 0, name
    assert len(examples) == 360 and examples["index"].tolist() == list(range(360))
    per_model = [c for c in examples.columns if c.startswith("depth_") and "_seed" in c]
    assert sorted(per_model) == ["depth_dense_seed0", "depth_dense_seed1", "depth_pruned_seed0", "depth_pruned_seed1"]
    depths = examples[per_model].to_numpy()
    assert np.issubdtype(depths.dtype, np.integer) and depths.min() >= 0 and depths.max() <= WRN10_1_PROBES
    dense_seeds = examples[["depth_dense_seed0", "depth_dense_seed1"]]
    np.testing.assert_allclose(examples["depth_dense_mean"], dense_seeds.mean(axis=1))
    row = pd.read_csv(out / "prediction_depth_summary.csv").iloc[0]
    assert (row["pruning"], row["sparsity"], row["num_probes"], row["reference"]) == ("gmp_early", 0.5, 10,
                                                                                      "final_prediction")
    assert row["pies"] == examples["pie"].sum() and row["depth_models_dense"] == 2 and row["pie_models_pruned"] == 2


def test_depth_matches_sklearn_probes_on_the_same_features(sup_run):
    paths, _ = sup_run
    data = load_digits()
    dense = group_populations(finished_specs(paths, "digits", "supervised"))[("dense", 0.0)]
    pop, _ = load_population(paths, dense)
    train_probes = predict(pop, data.train_images, data.normalize, "hidden")[1]
    test_probes = predict(pop, data.test_images, data.normalize, "hidden")[1]
    final = predict(pop, data.test_images, data.normalize, "logits")[0].argmax(-1).numpy()
    assert len(train_probes) == WRN10_1_PROBES
    probe_preds = np.stack([KNeighborsClassifier(n_neighbors=30).fit(t[0].numpy(), data.train_labels.numpy())
                            .predict(q[0].numpy()) for t, q in zip(train_probes, test_probes)])
    examples = pd.read_csv(paths.depth_dir("digits", "supervised") / "depth_gmp_early_s0.5_final_prediction_k30.csv")
    np.testing.assert_array_equal(examples["depth_dense_seed0"], prediction_depth(probe_preds, final))
    # the authors' variant, from the cached probes: depth against the true label, a second summary row
    main("supervised", DEMO + ["--output_root", str(paths.root), "--depth_reference", "true_label"])
    truth = pd.read_csv(paths.depth_dir("digits", "supervised") / "depth_gmp_early_s0.5_true_label_k30.csv")
    np.testing.assert_array_equal(truth["depth_dense_seed0"], prediction_depth(probe_preds, data.test_labels.numpy()))
    summary = pd.read_csv(paths.depth_summary("digits", "supervised"))
    assert sorted(summary["reference"]) == ["final_prediction", "true_label"]


def test_pie_flags_are_cross_checked_with_the_pie_stage(sup_run, caplog):
    paths, _ = sup_run
    ours = pd.read_csv(paths.depth_dir("digits", "supervised") / "depth_gmp_early_s0.5_final_prediction_k30.csv")
    theirs = paths.pie_examples("digits", "supervised", "gmp_early", 0.5)
    theirs.parent.mkdir(parents=True, exist_ok=True)
    flipped = ours["pie"].to_numpy().copy()
    flipped[:3] = ~flipped[:3]
    pd.DataFrame(dict(index=ours["index"], pie=flipped)).to_csv(theirs, index=False)
    main("supervised", DEMO + ["--output_root", str(paths.root)])  # probes cached: only the logits pass
    assert "3 examples have another PIE flag" in caplog.text
    theirs.unlink()


def test_missing_populations_are_usage_errors(sup_run, tmp_path):
    paths, _ = sup_run
    with pytest.raises(UsageError, match="no pruned supervised .*population.*sup_training.py"):
        main("supervised", DEMO + ["--output_root", str(paths.root), "--pruning_percentages", "0.7"])
    with pytest.raises(UsageError, match="no dense"):
        main("supervised", DEMO + ["--output_root", str(tmp_path)])
    with pytest.raises(UsageError, match="--knn_k"):
        main("supervised", DEMO + ["--output_root", str(paths.root), "--knn_k", "0"])


def test_augmented_probes_without_augmentation_equal_the_plain_pass(sup_run):
    paths, _ = sup_run
    data = load_digits()
    dense = group_populations(finished_specs(paths, "digits", "supervised"))[("dense", 0.0)]
    pop, _ = load_population(paths, dense)
    images = data.train_images[:100]
    identity = SupervisedAugment(padding=0, vertical_flip=0.0, horizontal_flip=0.0)
    params = identity.sample(len(images), data.image_size, torch.Generator().manual_seed(0))
    mine = augmented_probes(pop, images, data.normalize, [(identity, params)] * pop.size, batch=64)
    plain = predict(pop, images, data.normalize, "hidden")[1]
    for a, b in zip(mine, plain):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def untrained_supcon(root):
    """Seeded, untrained SupCon checkpoints, seeds 0-1, stored as dense and again as 'gmp_late 0.5' (the same
    weights): the stage only needs files it can load, and writing them costs nothing next to a SupCon epoch (the
    supervised fixture covers trained models). Identical populations make no PIEs and identical depths."""
    paths = CortiPaths(root)
    cfg = preset_config("supcon", "demo")
    for pruning, sparsity in (("dense", 0.0), ("gmp_late", 0.5)):
        for seed in (0, 1):
            spec = ModelSpec("supcon", cfg.arch, "digits", pruning, sparsity, seed)
            torch.manual_seed(seed)
            network = build_network(cfg.arch, "supcon", 10, cfg.projection_dim)
            save_member(paths, spec, network.state_dict(), {},
                        dict(spec=spec.to_meta(), config=cfg.to_dict(), recipe=cfg.recipe(sparsity)))
    return paths


def test_supcon_with_augmented_support(tmp_path):
    paths = untrained_supcon(tmp_path)
    main("supcon", DEMO + ["--output_root", str(tmp_path), "--augmented_support", "--prediction_depth_models", "1"])
    out = paths.depth_dir("digits", "supcon")
    examples = pd.read_csv(out / "depth_gmp_late_s0.5_final_prediction_k30_augmented.csv")
    assert examples["depth_dense_seed0"].between(0, WRN10_1_PROBES).all()
    np.testing.assert_array_equal(examples["depth_dense_seed0"], examples["depth_pruned_seed0"])  # same seed, support
    assert not examples["pie"].any()
    row = pd.read_csv(out / "prediction_depth_summary.csv").iloc[0]
    assert (row["method"], row["support"], row["depth_models_dense"], row["pie_models_dense"]) == \
        ("SupCon", "augmented", 1, 2)
    assert row["pies"] == 0 and np.isnan(row["depth_pruned_pies_mean"])
    assert (out / "scatter_gmp_late_s0.5_final_prediction_k30_augmented.png").is_file()

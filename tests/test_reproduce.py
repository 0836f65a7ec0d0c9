"""reproduce.py end to end on a tiny preset: every stage runs for both methods and the report has every section."""
import re

import pytest

from conftest import write_tiny_cifar

from common.checkpoint import read_meta
from common.studies.corti2022 import config, finetune as run_finetune
from common.studies.corti2022.paths import CortiPaths
from common.spec import ModelSpec
from common.studies.corti2022.reproduce import main


@pytest.fixture
def tiny_demo(monkeypatch):
    """The demo preset with one or two epochs per phase, so the whole study runs in the suite's time budget."""
    presets = dict(config.PRESETS)
    presets[("demo", "supervised")] = {**presets[("demo", "supervised")], "epochs": 2, "lr_milestones": (1,)}
    presets[("demo", "supcon")] = {**presets[("demo", "supcon")], "epochs": 2, "head_epochs": 2,
                                   "head_milestones": (1,)}
    monkeypatch.setattr(config, "PRESETS", presets)
    monkeypatch.setitem(run_finetune.PRESETS, "demo", {**run_finetune.PRESETS["demo"], "epochs": 1})


def test_whole_study_writes_a_complete_report(tmp_path, tiny_demo):
    report = main(["--preset", "demo", "--models_number", "2", "--pruning_percentages", "0.9",
                   "--output_root", str(tmp_path), "--no-progress"])
    assert report == CortiPaths(tmp_path).pies / "digits" / "report.md"
    text = report.read_text()
    sections = re.split(r"\n## ", text)[1:]
    titles = [s.splitlines()[0] for s in sections]
    for wanted in ("Claims", "Test accuracy", "PIEs", "PIE overlaps", "Q-Score", "Prediction depth", "UMAP",
                   "Figures", "Stage timings"):
        assert any(t.startswith(wanted) for t in titles), wanted
    for section in sections:
        assert "_none on disk_" not in section, section.splitlines()[0]
    claims = sections[0]
    lines = [line for line in claims.splitlines() if line.startswith("- ")]
    assert len(lines) == 8  # every claim, each with the seeds behind it and a verdict
    assert all(line.endswith("**TOO FEW SEEDS**") and "needs 3 per side" in line for line in lines)  # 2 models
    assert (CortiPaths(tmp_path).pie_class_disparity("digits", "supcon", "global", 0.9)).is_file()
    for png in re.findall(r"\]\(([^)]+\.png)\)", text):
        assert (report.parent / png).is_file(), png
    # every configuration of both methods made it into the accuracy table: dense + 3 pruning methods each
    accuracy = text.split("## Test accuracy")[1].split("## ")[0]
    assert accuracy.count("| supervised |") == 4 and accuracy.count("| SupCon |") == 4

    # a rerun skips every training stage
    again = main(["--preset", "demo", "--models_number", "2", "--pruning_percentages", "0.9",
                  "--output_root", str(tmp_path), "--no-progress", "--stages", "train_gmp_early", "finetune"])
    assert again is None


def test_the_paper_preset_smoke_run_checks_every_stage_apart_from_real_runs(tmp_path):
    """The paper's recipes (WRN-16-2, SupCon at batch 1,024, 30 finetuning epochs ...) cut to two steps per phase
    on a 40-image subset of a CIFAR-format folder: every stage runs and the report is written under smoke/."""
    write_tiny_cifar(tmp_path / "data" / "cifar-10-batches-py", per_batch=20, balanced=True)
    report = main(["--preset", "paper", "--smoke", "--smoke_images", "40", "--smoke_steps", "2",
                   "--models_number", "2", "--pruning_percentages", "0.5", "--prediction_depth_models", "1",
                   "--data_dir", str(tmp_path / "data"), "--output_root", str(tmp_path), "--no-progress"])
    smoke = CortiPaths(tmp_path).smoke()
    assert report == smoke.pies / "cifar10" / "report.md" and report.is_file()
    assert not CortiPaths(tmp_path).models.exists()  # a smoke run never meets a real run's models
    supcon = ModelSpec("supcon", "wrn16_2", "cifar10", "gmp_late", 0.5, 0)
    config = read_meta(smoke.checkpoints(supcon)[0])["config"]
    cut = dict(batch_size=40, epochs=2, head_epochs=2, train_subset=40)  # capped by the subset, 2 steps per phase
    assert {field: config[field] for field in cut} == cut
    assert config["learning_rate"] == 0.05 and config["temperature"] == 0.5  # the rest is the paper's

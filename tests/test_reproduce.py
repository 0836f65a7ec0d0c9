"""reproduce.py end to end on a tiny preset: every stage runs for both methods and the report has every section."""
import re

import pytest

from common.studies.corti2022 import config, finetune as run_finetune
from common.paths import Paths
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
    assert report == Paths(tmp_path).pies / "digits" / "report.md"
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
    assert len(lines) == 8  # every claim, each with its interval over members and a three-way verdict
    assert all("95 %" in line and line.endswith(("**TRUE**", "**FALSE**", "**UNDECIDED**")) for line in lines)
    assert (Paths(tmp_path).pie_class_disparity("digits", "supcon", "global", 0.9)).is_file()
    for png in re.findall(r"\]\(([^)]+\.png)\)", text):
        assert (report.parent / png).is_file(), png
    # every configuration of both methods made it into the accuracy table: dense + 3 pruning methods each
    accuracy = text.split("## Test accuracy")[1].split("## ")[0]
    assert accuracy.count("| supervised |") == 4 and accuracy.count("| SupCon |") == 4

    # a rerun skips every training stage
    again = main(["--preset", "demo", "--models_number", "2", "--pruning_percentages", "0.9",
                  "--output_root", str(tmp_path), "--no-progress", "--stages", "train_gmp_early", "finetune"])
    assert again is None

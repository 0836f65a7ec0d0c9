"""A model's identity is its recipe (issue 13): fingerprints over exactly what shapes a model, provenance checked
end to end, hints that run as printed, help that shows each script's real defaults, what decides bit-identity
recorded, and the smaller findings (corrupt-file warnings in the log, wrong-arch files named, both finetuning
modes side by side, every model listed, data beside the repository, no carriage returns in captured logs).
Everything runs in-process on copies of the tiny digits zoo (tests/conftest.py)."""
import re
import shlex
import shutil

import pandas as pd
import pytest
import torch

from common import checkpoint as ckpt
from common.errors import UsageError
from common.config import JobConfig
from common.engine.precision import amp_enabled
from common.log import progress
from common.paths import REPO_ROOT
from common.studies.corti2022.paths import CortiPaths
from common.spec import ModelSpec
from common.studies.corti2022 import depth as run_depth, pies as run_pies, pruning_finetune as run_finetune, reproduce, \
    training as run_training
from common.zoo import finished_specs

import reproduce as reproduce_py
from conftest import ZOO_FLAGS

pytestmark = pytest.mark.usefixtures("one_thread")

MAINS = {
    "sup_training.py": lambda argv: run_training.main("supervised", argv),
    "clr_training.py": lambda argv: run_training.main("supcon", argv),
    "sup_pruning_finetune.py": lambda argv: run_finetune.main("supervised", argv),
    "clr_pruning_finetune.py": lambda argv: run_finetune.main("supcon", argv),
}
FINETUNE = ["--preset", "demo", "--epochs", "1", "--no-progress"]
PIES = ["--preset", "demo", "--models_number", "2", "--max_pie_images", "2", "--no-compare", "--no-progress"]


def zoo(tiny_zoo, tmp_path) -> CortiPaths:
    shutil.copytree(tiny_zoo, tmp_path / "zoo")
    return CortiPaths(tmp_path / "zoo")


def train(method: str, paths: CortiPaths, *flags: str):
    return run_training.main(method, [*ZOO_FLAGS[method], "--output_root", str(paths.root), *flags])


def run_hint(message: str):
    """Run the command a message tells the user to run, exactly as printed (in-process)."""
    command = re.findall(r"`(python [^`]+)`", message)[-1]
    argv = shlex.split(command)
    return MAINS[argv[1]](argv[2:])


def dense(method: str, seed: int) -> ModelSpec:
    return ModelSpec(method, "wrn10_1", "digits", "dense", 0.0, seed)


# ---- finding 1: the fingerprint covers exactly what shapes a model -------------------------------------------

@pytest.mark.parametrize("method,schedule", [("supervised", "late"), ("supcon", "early")])
def test_a_gmp_schedule_does_not_change_a_dense_models_identity(tiny_zoo, tmp_path, method, schedule):
    paths = zoo(tiny_zoo, tmp_path)
    assert train(method, paths, "--pruning_percentages", "0.0", "--gmp_schedule", schedule) == []


def test_supervised_scripts_do_not_take_supcon_flags():
    for parse in (run_training.parse, run_finetune.parse):
        with pytest.raises(UsageError, match="unrecognized arguments: --temperature"):
            parse("supervised", ["--temperature", "0.1"])
    with pytest.raises(UsageError, match="unrecognized arguments: --finetune_mode"):
        run_finetune.parse("supervised", ["--finetune_mode", "representation"])


def test_a_conflict_names_each_differing_field_with_both_values(tiny_zoo, tmp_path):
    paths = zoo(tiny_zoo, tmp_path)
    with pytest.raises(UsageError) as err:
        train("supervised", paths, "--epochs", "2", "--learning_rate", "0.05")
    assert "on disk -> asked: epochs 1 -> 2; learning_rate 0.1 -> 0.05" in str(err.value)


def test_the_recipe_of_a_model_is_what_shapes_it():
    from common.recipe import differences, fingerprint
    from common.studies.corti2022.config import preset_config
    from common.studies.corti2022.finetune import preset_finetune

    sup, clr = preset_config("supervised"), preset_config("supcon")
    assert "temperature" not in sup.recipe(0.0) and "gmp_schedule" not in sup.recipe(0.0)
    assert sup.recipe(0.5)["gmp_schedule"] == "early" and "frequency_head" not in sup.recipe(0.5)
    assert clr.recipe(0.0)["temperature"] == 0.5 and "gmp_schedule" not in clr.recipe(0.0)
    assert "temperature" not in preset_finetune("supcon").recipe()  # the authors' end-to-end finetuning
    assert preset_finetune("supcon", finetune_mode="representation").recipe()["temperature"] == 0.5
    assert fingerprint({"a": (1, 2)}) == fingerprint({"a": [1, 2]})  # a recipe read back equals the one built
    assert differences({"epochs": 1, "lr": 0.1}, {"epochs": 2, "lr": 0.1}) == ["epochs 1 -> 2"]


# ---- finding 2: provenance checked; hints are complete and run --------------------------------------------

def test_models_pruned_from_a_retrained_dense_model_are_refused_everywhere(tiny_zoo, tmp_path):
    from common.inventory import models_table

    paths = zoo(tiny_zoo, tmp_path)
    finetune = [*FINETUNE, "--models_number", "2", "--pruning_percentages", "0.5", "--output_root", str(paths.root)]
    assert len(run_finetune.main("supervised", finetune)) == 2
    for seed in (0, 1):  # the dense population retrained with another recipe
        paths.checkpoint(dense("supervised", seed)).unlink()
    train("supervised", paths, "--pruning_percentages", "0.0", "--epochs", "2")
    with pytest.raises(UsageError, match="was made from supervised_wrn10_1_digits_dense_s0_seed0 before that was "
                                         "retrained"):
        run_finetune.main("supervised", finetune)
    with pytest.raises(UsageError) as err:
        run_pies.main("supervised", [*PIES, "--pruning_methods", "global", "--output_root", str(paths.root)])
    assert "were pruned from dense models that have been retrained" in str(err.value)
    assert models_table(paths).set_index("name").loc[
        "supervised_wrn10_1_digits_global_s0.5_seed0", "provenance"] == "parent retrained"


def test_a_population_never_mixes_recipes(tiny_zoo, tmp_path):
    paths = zoo(tiny_zoo, tmp_path)
    with pytest.raises(UsageError) as err:  # refused before anything is trained
        train("supervised", paths, "--index_start", "2", "--index_end", "2", "--pruning_percentages", "0.0",
              "--epochs", "2")
    assert "seeds 2 would join seeds 0,1 on disk, made with another recipe (on disk -> asked: epochs 1 -> 2)" \
        in str(err.value)
    assert not paths.checkpoint(dense("supervised", 2)).exists()
    # a population mixed by hand (files copied in from another root) is refused by the analyses, and the
    # printed fix, run as printed, repairs it
    other = CortiPaths(tmp_path / "other")
    train("supervised", other, "--index_start", "2", "--index_end", "2", "--pruning_percentages", "0.0",
          "--epochs", "2")
    shutil.copy(other.checkpoint(dense("supervised", 2)), paths.checkpoint(dense("supervised", 2)))
    pies = [*PIES, "--models_number", "3", "--output_root", str(paths.root)]
    with pytest.raises(UsageError) as err:
        run_pies.main("supervised", pies)
    message = str(err.value)
    assert "the dense supervised population" in message and "mixes 2 recipes: seeds 2 differ from seeds 0,1 " \
                                                             "(epochs 2 -> 1)" in message
    paths.checkpoint(dense("supervised", 2)).unlink()  # "delete the files of seeds 2 and remake them with …"
    run_hint(message)
    assert len(run_pies.main("supervised", pies)) == 1


def test_the_missing_dense_models_hint_runs_as_printed(tiny_zoo, tmp_path):
    paths = zoo(tiny_zoo, tmp_path)
    finetune = [*FINETUNE, "--models_number", "3", "--pruning_percentages", "0.5", "--output_root", str(paths.root)]
    with pytest.raises(UsageError) as err:
        run_finetune.main("supervised", finetune)
    assert f"--index_start 2 --index_end 2 --output_root {paths.root}`" in str(err.value)
    assert len(run_hint(str(err.value))) == 1  # seed 2, with the zoo's recipe: no mixing
    assert len(run_finetune.main("supervised", finetune)) == 3


def test_the_no_pruned_population_hint_trains_one_like_the_dense(tiny_zoo, tmp_path):
    paths = zoo(tiny_zoo, tmp_path)
    for spec in finished_specs(paths, "digits", "supervised"):
        if spec.pruning != "dense":
            paths.checkpoint(spec).unlink()
    with pytest.raises(UsageError) as err:
        run_depth.main("supervised", ["--preset", "demo", "--output_root", str(paths.root), "--no-progress"])
    assert "--epochs 1 --batch_size 256 --lr_milestones --gmp_schedule early --pruning_percentages 0.9" \
        in str(err.value)
    assert len(run_hint(str(err.value))) == 2


def test_the_offline_hint_of_reproduce_is_a_flag_reproduce_takes(tmp_path, monkeypatch):
    import torchvision.datasets

    from common.errors import DataError

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(DataError, match=r"--preset demo\)$"):
        reproduce.main(["--preset", "paper", "--stages", "train_gmp_early", "--models_number", "2",
                        "--output_root", str(tmp_path), "--data_dir", str(tmp_path / "data"), "--no-progress"])
    assert reproduce.parse(["--preset", "demo"]).preset == "demo"


# ---- finding 5: help shows the defaults that apply to that script -----------------------------------------

def help_text(main, capsys) -> str:
    with pytest.raises(SystemExit):
        main(["--help"])
    return " ".join(capsys.readouterr().out.split())


def test_help_shows_each_scripts_defaults_under_each_preset(capsys):
    clr = help_text(lambda argv: run_training.parse("supcon", argv), capsys)
    sup = help_text(lambda argv: run_training.parse("supervised", argv), capsys)
    assert "default: 500 (paper preset), 15 (demo preset)" in clr
    assert "default: 205 (paper preset), 12 (demo preset)" in sup
    assert re.search(r"--gmp_schedule \{early,late\}.*?\(default: late\)", clr)
    assert re.search(r"--gmp_schedule \{early,late\}.*?\(default: early\)", sup)
    assert "--temperature" in clr and "--temperature" not in sup and "--head_epochs" not in sup
    finetune = help_text(lambda argv: run_finetune.parse("supervised", argv), capsys)
    assert "--finetune_mode" not in finetune and "default: 0.001 (paper preset), 0.03 (demo preset)" in finetune
    pies = help_text(lambda argv: run_pies.parse("supervised", argv), capsys)
    assert "default: cifar10 (paper preset), digits (demo preset)" in pies


# ---- finding 6: what decides bit-identity is recorded ------------------------------------------------------

def test_checkpoints_record_threads_device_layout_and_versions(tiny_zoo):
    meta = ckpt.read_meta(CortiPaths(tiny_zoo).checkpoint(dense("supervised", 1)))
    assert meta["runtime"]["threads"] == 1 and meta["runtime"]["device"] == "cpu"
    assert (meta["runtime"]["population_index"], meta["runtime"]["population_size"]) == (1, 4)
    assert meta["versions"]["torch"] == torch.__version__
    # the switches that change float rounding, as this device resolved them
    cpu = torch.device("cpu")
    assert meta["runtime"]["bf16_autocast"] == amp_enabled(None, cpu) and meta["runtime"]["channels_last"] is True
    assert meta["runtime"]["compile"] is False and meta["runtime"]["population_execution"] == "auto"


# ---- finding 7: the smaller ones ---------------------------------------------------------------------------

def test_a_corrupt_file_found_before_the_log_opens_is_in_the_log(tiny_zoo, tmp_path):
    paths = zoo(tiny_zoo, tmp_path)
    broken = paths.checkpoint(ModelSpec("supervised", "wrn10_1", "digits", "gmp_early", 0.5, 1))
    broken.write_bytes(broken.read_bytes()[:100])
    run_pies.main("supervised", [*PIES, "--allow_missing_members", "--output_root", str(paths.root)])
    [log_file] = paths.log_dir("digits", "supervised").glob("pie_kmodels_detection_*.log")
    assert f"skipping {broken}: unreadable or corrupt" in log_file.read_text()


def test_a_file_holding_another_model_than_its_name_is_named(tiny_zoo, tmp_path, caplog):
    paths = zoo(tiny_zoo, tmp_path)
    path = paths.checkpoint(dense("supervised", 1))
    state, masks, meta = ckpt.load_model(path)
    meta["spec"]["arch"] = "wrn16_2"
    ckpt.save_model(path, state, meta, masks)
    assert dense("supervised", 1) not in finished_specs(paths, "digits", "supervised")
    assert any(f"skipping {path}: its metadata says it is supervised_wrn16_2_digits_dense_s0_seed1" in r.getMessage()
               for r in caplog.records)


def test_both_finetuning_modes_sit_side_by_side_and_every_model_is_listed(tiny_zoo, tmp_path, capsys):
    paths = zoo(tiny_zoo, tmp_path)
    flags = [*FINETUNE, "--models_number", "1", "--pruning_percentages", "0.5", "--head_epochs", "1",
             "--output_root", str(paths.root)]
    run_finetune.main("supcon", flags)
    run_finetune.main("supcon", flags + ["--finetune_mode", "representation"])
    names = {p.name for p in paths.model_dir("digits", "supcon").glob("*global*_classifier.safetensors")}
    assert names == {"SupCon_wrn10_1_digits_global_s0.5_seed0_classifier.safetensors",
                     "SupCon_wrn10_1_digits_global_s0.5_finetune-representation_seed0_classifier.safetensors"}
    listed = pd.read_csv(paths.models_csv("digits", "supcon"))
    assert set(listed["pruning"]) == {"dense", "gmp_late", "global"} and (listed["provenance"] == "ok").all()
    capsys.readouterr()
    reproduce_py.main(["--list", "--output_root", str(paths.root)])
    out = capsys.readouterr().out
    assert "finetune-representation" in out and "10 models; 0 not ok" in out
    assert len(pd.read_csv(paths.models_csv())) == 10


def test_data_lives_beside_the_repository_unless_a_folder_is_given(tmp_path, monkeypatch):
    from common.data.datasets import data_folder

    monkeypatch.chdir(tmp_path)
    assert JobConfig().data_dir == "" and data_folder("") == REPO_ROOT / "data"
    assert data_folder("mine").resolve() == tmp_path / "mine"  # a path typed is relative to where it is typed


def test_a_captured_progress_bar_writes_whole_lines(capsys, monkeypatch):
    monkeypatch.setattr("common.log.LINE_INTERVAL", 0.0, raising=False)
    with progress(3, "work") as bar:
        for _ in range(3):
            bar.update(1)
    err = capsys.readouterr().err
    assert "\r" not in err and "work" in err and err.endswith("\n")


def test_the_readme_figures_are_written_by_the_script_from_the_demo_outputs(tiny_zoo, tmp_path):
    from common.studies.corti2022 import readme
    from common.studies.corti2022.report import measured_claims

    text = (REPO_ROOT / "README.md").read_text()
    for preset in readme.PRESETS:  # the blocks the script owns
        assert all(text.count(marker) == 1 for marker in readme.markers(preset)), preset
    begin, end = readme.markers("demo")
    paths = zoo(tiny_zoo, tmp_path)
    run_pies.main("supervised", [*PIES, "--plot_q_score", "--output_root", str(paths.root)])
    run_pies.main("supcon", [*PIES, "--output_root", str(paths.root)])
    copy = tmp_path / "README.md"
    copy.write_text(f"# title\n\n{begin}\nold figures 47 / 113 / 110\n{end}\n\nrest\n")
    readme.main(["--output_root", str(paths.root), "--readme", str(copy)])
    written = copy.read_text()
    assert "old figures" not in written and written.startswith("# title\n\n") and written.endswith("\n\nrest\n")
    assert "1 threads on cpu" in written and f"torch {torch.__version__}" in written
    claims = measured_claims(paths, "digits")
    assert any("pruning lowers the mean Q-Score" in claim for claim in claims)
    assert all(claim in written for claim in claims)  # the claims with the numbers measured
    assert (tmp_path / "figures" / "pies_vs_sparsity_supervised.png").is_file()
    readme.main(["--output_root", str(paths.root), "--readme", str(copy)])
    assert copy.read_text() == written  # idempotent

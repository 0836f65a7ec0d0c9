"""Bad input never costs data; analyses survive a broken model; a diverging member fails alone.

* Every top-level script (sup_/clr_ training, pruning_finetune, pie_kmodels_detection, prediction_depth, and
  reproduce.py) against a matrix of bad flags: exit status 2, one stderr line, no traceback, nothing written.
* Output folders that cannot be written, or a disk without room: the same, caught before any work (preflight).
* A truncated checkpoint in a trained zoo: the PIE and depth stages skip that model, say so, and finish.
* A member whose loss turns NaN: the others finish and are saved; its last good state is kept aside, marked failed.
Everything runs in-process on tiny digits populations (tests/conftest.py: tiny_zoo)."""
import logging
import math
import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from common import preflight
from common.engine import objectives
from common.studies.corti2022 import depth as run_depth, pies as run_pies, pruning_finetune as run_finetune, reproduce, \
    training as run_training
from common.checkpoint import load_model, read_meta
from common.errors import CheckpointError
from common.cli import run_main
from common.errors import UsageError
from common.paths import Paths
from common.spec import ModelSpec
from common.studies.corti2022.commands import retrain_command
from common.zoo import finished_specs, load_member, load_population, load_readable_population

from conftest import ZOO_FLAGS

SCRIPTS = {  # script -> (its main taking argv, kind)
    "sup_training": (lambda argv: run_training.main("supervised", argv), "training"),
    "clr_training": (lambda argv: run_training.main("supcon", argv), "training"),
    "sup_pruning_finetune": (lambda argv: run_finetune.main("supervised", argv), "finetune"),
    "clr_pruning_finetune": (lambda argv: run_finetune.main("supcon", argv), "finetune"),
    "sup_pie_kmodels_detection": (lambda argv: run_pies.main("supervised", argv), "pies"),
    "clr_pie_kmodels_detection": (lambda argv: run_pies.main("supcon", argv), "pies"),
    "sup_prediction_depth": (lambda argv: run_depth.main("supervised", argv), "depth"),
    "clr_prediction_depth": (lambda argv: run_depth.main("supcon", argv), "depth"),
    "reproduce": (reproduce.main, "reproduce"),
}
WRONG_TYPE = {"training": "--epochs", "finetune": "--epochs", "pies": "--models_number", "depth": "--knn_k",
              "reproduce": "--models_number"}
# case -> ({kind: flags} (None: every other kind), words of which the error line must contain one)
RECIPE_KINDS = lambda flags: {"training": flags, "finetune": flags}  # noqa: E731 - the two that train
BAD_FLAGS = {
    "unknown_flag": ({None: ["--no_such_flag", "1"]}, ("unrecognized arguments",)),
    "unknown_choice": ({None: ["--preset", "huge"]}, ("invalid choice",)),
    "wrong_type": ({kind: [flag, "two"] for kind, flag in WRONG_TYPE.items()}, ("invalid",)),
    "sparsity_out_of_range": ({None: ["--pruning_percentages", "1.5"]}, ("pruning_percentages",)),
    "count_out_of_range": ({"training": ["--index_start", "3", "--index_end", "1"],
                            None: ["--models_number", "0"]}, ("index_start", "models_number")),
    "unknown_dataset": ({kind: ["--dataset", "mnist"] for kind in ("training", "finetune", "pies", "depth")},
                        ("invalid choice",)),
    "unknown_pruning_method": ({"finetune": ["--pruning_method", "magic"], "pies": ["--pruning_methods", "magic"],
                                "depth": ["--pruning_methods", "magic"]}, ("magic",)),
    "too_few_dense_models": ({"finetune": ["--models_number", "5"]}, ("missing",)),
    "unknown_arch_no_dense": ({kind: ["--arch", "resnet18"] for kind in ("finetune", "pies", "depth")}, ("dense",)),
    # values a recipe cannot mean: refused before anything runs (issue 13, finding 4; finding 3's temperature 0)
    "negative_learning_rate": (RECIPE_KINDS(["--learning_rate", "-1"]), ("--learning_rate -1",)),
    "negative_weight_decay": (RECIPE_KINDS(["--weight_decay", "-1"]), ("--weight_decay -1",)),
    "momentum_out_of_range": (RECIPE_KINDS(["--momentum", "-0.5"]), ("--momentum -0.5",)),
    "zero_checkpoint_every": (RECIPE_KINDS(["--checkpoint_every", "0"]), ("--checkpoint_every 0",)),
    "zero_eval_every": (RECIPE_KINDS(["--eval_every", "0"]), ("--eval_every 0",)),
    "zero_temperature": (RECIPE_KINDS(["--temperature", "0"]), ("--temperature 0",)),
    "negative_milestone": ({"training": ["--lr_milestones", "-5"]}, ("--lr_milestones -5",)),
    "repeated_sparsity": ({kind: ["--pruning_percentages", "0.5,0.5"] for kind in ("training", "finetune",
                                                                                   "reproduce")},
                          ("--pruning_percentages 0.5,0.5",)),
    "absent_gpu": ({None: ["--cuda_device", "99"]}, ("--cuda_device 99",)),
}


pytestmark = pytest.mark.usefixtures("one_thread")


def flags_for(case: str, kind: str) -> list[str] | None:
    table = BAD_FLAGS[case][0]
    return table.get(kind, table.get(None))


def base_args(root: Path) -> list[str]:
    return ["--preset", "demo", "--output_root", str(root), "--no-progress"]


def snapshot(root: Path, files_only: bool = False) -> dict | None:
    """Every file (and folder) under root with size and mtime. A folder's mtime changes when anything is created
    or removed in it, even a temporary file; `files_only` leaves folders out, for runs whose preflight probes
    writable folders before it stops."""
    if not root.exists():
        return None
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in [root, *root.rglob("*")]
            if not (files_only and p.is_dir())}


def run_bad(script: str, argv: list[str], capsys) -> str:
    """Run a script expecting a one-line error with exit status 2; -> that line."""
    main, _ = SCRIPTS[script]
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_main(main, argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


# ---- bad flags against every script ----------------------------------------------------------------------

MATRIX = [(script, case) for script, (_, kind) in SCRIPTS.items() for case in BAD_FLAGS
          if flags_for(case, kind) is not None]


@pytest.mark.parametrize("script,case", MATRIX, ids=[f"{s}-{c}" for s, c in MATRIX])
def test_bad_flags_are_one_line_exit_2_and_write_nothing(tiny_zoo, capsys, script, case):
    """Against a real zoo, so that 'nothing written' means something: models, logs and pies stay as they were."""
    before = snapshot(tiny_zoo)
    line = run_bad(script, base_args(tiny_zoo) + flags_for(case, SCRIPTS[script][1]), capsys)
    assert any(word in line for word in BAD_FLAGS[case][1]), line
    assert snapshot(tiny_zoo) == before


@pytest.mark.parametrize("script", [s for s, (_, kind) in SCRIPTS.items() if kind in ("finetune", "pies", "depth")])
def test_missing_dense_models_are_one_line_naming_the_command(tmp_path, capsys, script):
    line = run_bad(script, base_args(tmp_path / "empty"), capsys)
    assert "dense" in line and "training.py" in line, line
    assert not (tmp_path / "empty").exists()


def read_only_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):  # root ignores permissions
        folder.chmod(0o755)
        pytest.skip("running as root: a read-only folder is still writable")
    return folder


@pytest.mark.parametrize("blocker", ["parent_is_a_file", "read_only_parent"])
@pytest.mark.parametrize("script", list(SCRIPTS))
def test_unwritable_output_root_is_one_line_exit_2(tmp_path, capsys, script, blocker):
    if blocker == "parent_is_a_file":  # fails even for root
        parent = tmp_path / "a_file"
        parent.write_text("not a folder")
    else:
        parent = read_only_dir(tmp_path)
    before = snapshot(tmp_path)
    try:
        line = run_bad(script, base_args(parent / "out"), capsys)
    finally:
        parent.chmod(0o755) if parent.is_dir() else None
    kind = SCRIPTS[script][1]
    # training writes first and says which folder; the others stop earlier, as they find no models there
    assert ("cannot write to" in line) if kind in ("training", "reproduce") else ("dense" in line), line
    assert snapshot(tmp_path) == before


@pytest.fixture
def zoo_copy(tiny_zoo, tmp_path):
    root = tmp_path / "zoo"
    shutil.copytree(tiny_zoo, root)
    return root


BLOCKED_RUNS = {  # script -> extra flags of a run that would otherwise go ahead on the zoo
    "sup_training": ["--pruning_percentages", "0.3", "--index_end", "0"],
    "clr_pruning_finetune": ["--models_number", "1", "--pruning_percentages", "0.5"],
    "sup_prediction_depth": [],
    "clr_pie_kmodels_detection": [],
}
BLOCKED = [(script, folder) for script in BLOCKED_RUNS for folder in ("logs", "pies")
           if folder == "logs" or SCRIPTS[script][1] in ("pies", "depth")]  # training writes nothing under pies/


@pytest.mark.parametrize("script,blocked", BLOCKED, ids=[f"{s}-{b}" for s, b in BLOCKED])
def test_unwritable_output_folder_is_caught_before_any_work(zoo_copy, capsys, script, blocked):
    """A regular file where logs/ or pies/ should be: one line naming the folder, nothing else written."""
    shutil.rmtree(zoo_copy / blocked, ignore_errors=True)
    (zoo_copy / blocked).write_text("in the way")
    before = snapshot(zoo_copy, files_only=True)
    line = run_bad(script, base_args(zoo_copy) + BLOCKED_RUNS[script], capsys)
    assert "cannot write to" in line and str(zoo_copy / blocked) in line and "--output_root" in line, line
    assert snapshot(zoo_copy, files_only=True) == before


@pytest.mark.parametrize("script", list(BLOCKED_RUNS))
def test_full_disk_is_caught_before_any_work(zoo_copy, capsys, monkeypatch, script):
    usage = shutil.disk_usage(zoo_copy)
    monkeypatch.setattr(preflight.shutil, "disk_usage", lambda path: usage._replace(free=1000))
    before = snapshot(zoo_copy, files_only=True)
    line = run_bad(script, base_args(zoo_copy) + BLOCKED_RUNS[script], capsys)
    assert "free" in line and "needs about" in line, line
    assert snapshot(zoo_copy, files_only=True) == before


def test_preflight_messages(tmp_path, monkeypatch):
    preflight.check_writable(tmp_path / "new" / "folder")
    assert (tmp_path / "new" / "folder").is_dir() and not list((tmp_path / "new" / "folder").iterdir())
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match=r"cannot write to .*file.*NotADirectoryError.*--output_root"):
        preflight.check_writable(tmp_path / "file" / "sub")
    preflight.check_free_space(tmp_path / "not" / "yet", 1)  # measured on the nearest existing parent
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(preflight.shutil, "disk_usage", lambda path: usage._replace(free=5 << 20))
    with pytest.raises(UsageError, match=r"5\.0 MiB free .* needs about 1\.0 GiB"):
        preflight.check_free_space(tmp_path, 1 << 30)
    network = torch.nn.Linear(10, 10)  # 110 float32 parameters
    assert preflight.training_bytes(network, 3) == 4 * 110 * 4 * 3


# ---- a broken checkpoint in the zoo ---------------------------------------------------------------------------

SUP_DENSE_1 = ModelSpec("supervised", "wrn10_1", "digits", "dense", 0.0, 1)
CLR_LATE_0 = ModelSpec("supcon", "wrn10_1", "digits", "gmp_late", 0.5, 0)


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])


@pytest.fixture(scope="module")
def broken_zoo(tiny_zoo, tmp_path_factory):
    """The zoo with two truncated files: a supervised dense model, and a SupCon model's encoder (its classifier,
    the file that marks it finished, is intact)."""
    root = tmp_path_factory.mktemp("broken") / "zoo"
    shutil.copytree(tiny_zoo, root)
    paths = Paths(root)
    truncate(paths.checkpoint(SUP_DENSE_1))
    truncate(paths.checkpoint(CLR_LATE_0, "encoder"))
    return root


def assert_skip_warned(caplog, path: Path) -> None:
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and str(path) in r.getMessage()]
    assert lines, f"no warning names {path}"
    assert all("delete it" in line and "retrain it with `python " in line for line in lines), lines


def test_finished_specs_skips_truncated_files_and_names_them(broken_zoo, caplog):
    paths = Paths(broken_zoo)
    sup = finished_specs(paths, "digits", "supervised", retrain=retrain_command)
    clr = finished_specs(paths, "digits", "supcon", retrain=retrain_command)
    assert SUP_DENSE_1 not in sup and len(sup) == 3
    assert CLR_LATE_0 not in clr and len(clr) == 3
    assert_skip_warned(caplog, paths.checkpoint(SUP_DENSE_1))
    assert_skip_warned(caplog, paths.checkpoint(CLR_LATE_0, "encoder"))
    # the retrain hint is complete: the zoo's recipe flags, the seed and the output root (issue 13, finding 2)
    hint = (f"`python sup_training.py --preset demo --epochs 1 --batch_size 256 --lr_milestones --pruning_percentages "
            f"0 --index_start 1 --index_end 1 --output_root {broken_zoo}`")
    assert any(hint in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("script", ["sup_pie_kmodels_detection", "clr_pie_kmodels_detection", "sup_prediction_depth",
                                    "clr_prediction_depth"])
def test_an_analysis_refuses_a_population_with_an_unreadable_member(broken_zoo, capsys, script):
    """Issue 31: a corrupt member is a failure, not a smaller population: one line naming the file and the command
    that retrains it, exit 2, nothing written."""
    paths = Paths(broken_zoo)
    broken = paths.checkpoint(SUP_DENSE_1) if script.startswith("sup") else paths.checkpoint(CLR_LATE_0, "encoder")
    before = snapshot(broken_zoo)
    line = run_bad(script, base_args(broken_zoo) + ["--no-compare"] * ("pie" in script), capsys)
    assert str(broken) in line and "retrain them with `python " in line and "--allow_missing_members" in line, line
    command = re.findall(r"`(python [^`]+)`", line)[0]
    assert "--index_start 1 --index_end 1" in command if script.startswith("sup") else "--index_start 0" in command
    assert snapshot(broken_zoo) == before


@pytest.mark.parametrize("method", ["supervised", "supcon"])
def test_pie_stage_skips_the_broken_model_and_says_so(broken_zoo, caplog, method):
    paths = Paths(broken_zoo)
    summary = run_pies.main(method, base_args(broken_zoo) + ["--max_pie_images", "4", "--no-compare",
                                                             "--allow_missing_members"])
    row = summary.set_index(["pruning", "sparsity"]).iloc[0]
    if method == "supervised":
        assert (row["dense_models"], row["pruned_models"]) == (1, 2)
        assert_skip_warned(caplog, paths.checkpoint(SUP_DENSE_1))
    else:
        assert (row["dense_models"], row["pruned_models"]) == (2, 1)
        assert_skip_warned(caplog, paths.checkpoint(CLR_LATE_0, "encoder"))


@pytest.mark.parametrize("method", ["supervised", "supcon"])
def test_depth_stage_skips_the_broken_model_and_says_so(broken_zoo, caplog, method):
    paths = Paths(broken_zoo)
    summary = run_depth.main(method, base_args(broken_zoo) + ["--prediction_depth_models", "2",
                                                              "--allow_missing_members"])
    row = summary.iloc[0]
    if method == "supervised":
        assert (row["depth_models_dense"], row["depth_models_pruned"]) == (1, 2)
        assert_skip_warned(caplog, paths.checkpoint(SUP_DENSE_1))
    else:
        assert (row["depth_models_dense"], row["depth_models_pruned"]) == (2, 1)
        assert_skip_warned(caplog, paths.checkpoint(CLR_LATE_0, "encoder"))


def test_file_broken_after_listing_is_an_error_or_a_skip(zoo_copy, caplog):
    """Truncated between finished_specs and loading: by default a one-line CheckpointError naming the file;
    with skip_unreadable the member is left out with a warning and the loaded specs say which remain."""
    paths = Paths(zoo_copy)
    dense = [s for s in finished_specs(paths, "digits", "supcon") if s.pruning == "dense"]
    broken = paths.checkpoint(dense[0], "encoder")
    truncate(broken)
    with pytest.raises(CheckpointError) as error:
        load_population(paths, dense)
    assert str(broken) in str(error.value) and "\n" not in str(error.value)
    pop, metas, loaded = load_readable_population(paths, dense, retrain=retrain_command)
    assert loaded == dense[1:] and pop.size == 1 and [m["spec"]["seed"] for m in metas] == [1]
    assert any(dense[0].name in r.getMessage() and "clr_training.py" in r.getMessage() for r in caplog.records)
    assert load_population(paths, dense, skip_unreadable=True)[0].size == 1
    truncate(paths.checkpoint(dense[1], "classifier"))
    with pytest.raises(CheckpointError, match="no readable model"):
        load_readable_population(paths, dense)


# ---- a member whose loss turns NaN ------------------------------------------------------------------------------

NAN_MEMBER, NAN_FROM_STEP = 1, 3  # member 1 of [dense s0, dense s1, gmp s0, gmp s1]: dense seed 1


@pytest.fixture(scope="module")
def nan_run(tmp_path_factory):
    """The zoo's supervised population trained again, member 1's loss NaN from its 4th step on."""
    root = tmp_path_factory.mktemp("nan")
    real = objectives.CrossEntropy.losses
    steps = []

    def nan_from_step(self, pop, batches, idx):
        losses, hits = real(self, pop, batches, idx)
        steps.append(1)
        if len(steps) > NAN_FROM_STEP:
            poisoned = torch.zeros_like(losses, dtype=torch.bool)
            poisoned[NAN_MEMBER] = True
            losses = torch.where(poisoned, torch.full_like(losses, math.nan), losses)
        return losses, hits

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(objectives.CrossEntropy, "losses", nan_from_step)
        results = run_training.main("supervised", ZOO_FLAGS["supervised"] + ["--output_root", str(root)])
    assert len(steps) > NAN_FROM_STEP + 1
    return root, results


def test_nan_member_fails_alone(nan_run, tiny_zoo):
    root, results = nan_run
    paths = Paths(root)
    specs = [ModelSpec.from_meta(r["spec"]) for r in results]
    failed = specs[NAN_MEMBER]
    assert failed == ModelSpec("supervised", "wrn10_1", "digits", "dense", 0.0, 1)
    assert [r["failed"] for r in results] == [i == NAN_MEMBER for i in range(4)]
    # not a finished model: never listed, never loaded by an analysis
    assert not paths.checkpoint(failed).exists()
    assert failed not in finished_specs(paths, "digits", "supervised")
    assert set(finished_specs(paths, "digits", "supervised")) == set(specs) - {failed}
    # its last good state is kept aside, finite, marked failed
    meta = read_meta(paths.failed_checkpoint(failed))
    assert meta["failed"] is True and meta["spec"] == failed.to_meta()
    state, _, _ = load_model(paths.failed_checkpoint(failed))
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
    history = pd.read_csv(paths.metrics_csv(failed))
    assert history["failed"].iloc[-1]
    assert len(pd.read_csv(paths.log_dir("digits", "supervised") / "models.csv")) == 3
    # the other members are exactly the models trained without the NaN (members never mix)
    zoo = Paths(tiny_zoo)
    for spec in specs:
        if spec != failed:
            got, want = load_member(paths, spec)[0], load_member(zoo, spec)[0]
            assert all(torch.equal(got[k], want[k]) for k in want), spec.name


def test_nan_member_is_retrained_by_the_same_command(nan_run):
    """The rerun finds the three finished models and trains only the failed one (its failed file stays aside)."""
    root, _ = nan_run
    results = run_training.main("supervised", ZOO_FLAGS["supervised"] + ["--output_root", str(root)])
    assert [(ModelSpec.from_meta(r["spec"]).seed, r["failed"]) for r in results] == [(1, False)]
    assert len(finished_specs(Paths(root), "digits", "supervised")) == 4


def test_failed_members_make_a_nonzero_exit_saying_how_many(tmp_path, capsys, monkeypatch):
    """Issue 13, finding 3: a run whose members diverged finishes the others but does not exit 0."""
    real = objectives.CrossEntropy.losses

    def nan_everywhere(self, pop, batches, idx):
        losses, hits = real(self, pop, batches, idx)
        return losses * math.nan, hits  # keeps the graph, as a diverging loss would

    monkeypatch.setattr(objectives.CrossEntropy, "losses", nan_everywhere)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_main(SCRIPTS["sup_training"][0], ZOO_FLAGS["supervised"] + ["--output_root", str(tmp_path)])
    assert exit_info.value.code == 3
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "4 of 4 models failed" in line and "Traceback" not in line, line


@pytest.mark.parametrize("script", ["sup_pie_kmodels_detection", "sup_prediction_depth"])
def test_ctrl_c_in_an_analysis_is_one_line_exit_130(zoo_copy, capsys, monkeypatch, script):
    """Issue 13, finding 4: Ctrl-C during an analysis prints one line (no KeyboardInterrupt traceback)."""
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_pies if "pie" in script else run_depth, "predict", interrupted)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_main(SCRIPTS[script][0], base_args(zoo_copy) + ["--no-compare"] * ("pie" in script) + ["--no-cache"] *
                 ("depth" in script))
    err = capsys.readouterr().err
    assert exit_info.value.code == 130 and "Traceback" not in err
    assert [line for line in err.splitlines() if "interrupted" in line] == [err.strip().splitlines()[-1]]


def test_checkpoints_are_readable_by_colleagues(tmp_path):
    """Issue 13, finding 7: model files follow the umask like any other file (were -rw------- whatever it was)."""
    previous = os.umask(0o022)
    try:
        from common.checkpoint import save_model
        save_model(tmp_path / "m.safetensors", {"w": torch.zeros(3)}, {"spec": {}})
    finally:
        os.umask(previous)
    assert (tmp_path / "m.safetensors").stat().st_mode & 0o777 == 0o644


def test_report_only_says_where_the_report_is(zoo_copy, capsys):
    """Issue 13, finding 7: `reproduce.py --stages report` printed nothing, not even the report's path."""
    capsys.readouterr()
    run_main(reproduce.main, base_args(zoo_copy) + ["--stages", "report"])
    err = capsys.readouterr().err
    assert str(zoo_copy / "pies" / "digits" / "report.md") in err, err


def test_no_progress_means_no_bars_in_the_depth_stage(zoo_copy, capsys):
    """Issue 13, finding 7: the depth stage's k-NN bars ignored --no-progress."""
    capsys.readouterr()
    run_main(SCRIPTS["sup_prediction_depth"][0], base_args(zoo_copy) + ["--prediction_depth_models", "1"])
    err = capsys.readouterr().err
    assert "it/s" not in err and "%|" not in err, err


@pytest.mark.parametrize("script", ["sup_training", "clr_pruning_finetune", "sup_pie_kmodels_detection",
                                    "clr_prediction_depth", "reproduce"])
def test_help_never_states_a_default_twice(script, capsys):
    """Issue 13, finding 5 (its last item): '(default: the repository folder) (default: )'."""
    with pytest.raises(SystemExit) as exit_info:
        run_main(SCRIPTS[script][0], ["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert not re.search(r"\(default: [^)]*\) \(default:", text) and "(default: )" not in text, text

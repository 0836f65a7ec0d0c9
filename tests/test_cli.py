"""The command line a researcher meets first (issue 31's findings on the flags): Ctrl-C while the libraries load is
one line and exit 130; every preset a script offers is one it has; help describes every choice; a temperature
outside the grid is one line naming the grid's; errors print lists in the comma form the flags take."""
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import reproduce
from common.studies.corti2022 import pies, training
from common.studies.three_regime import run as regime
from common.studies.tickets import run as tickets
from conftest import one_line_usage_error

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("script", ["reproduce.py", "sup_training.py", "studies/tickets.py"])
def test_ctrl_c_while_starting_is_one_line_and_exit_130(tmp_path, script):
    proc = subprocess.Popen([sys.executable, str(REPO / script), "--preset", "demo", "--output_root", str(tmp_path)],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.4)  # the guard is set; torch, pandas and the toolkit are still loading (seconds)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1 and "interrupted (Ctrl-C)" in err, err
    assert not (tmp_path / "models").exists()


def help_of(argv, capsys) -> str:
    with pytest.raises(SystemExit):
        reproduce.main([*argv, "--help"])
    return " ".join(capsys.readouterr().out.split())


def test_a_study_offers_only_its_presets_and_says_what_each_optimizer_is(capsys):
    tickets = help_of(["--study", "tickets"], capsys)
    assert "--preset {paper,demo}" in tickets and "{paper,demo,study}" not in tickets
    assert "sam (Foret et al.'s sharpness-aware SGD" in tickets
    assert "--preset {demo,paper,study}" in help_of([], capsys)


def test_a_temperature_outside_the_grid_is_one_line_naming_the_grid(tmp_path, capsys):
    line = one_line_usage_error(capsys, reproduce.main, ["--study", "three_regime", "--only_temperatures", "99",
                                                         "--output_root", str(tmp_path)])
    assert "--only_temperatures 99: not a temperature of this grid (--knob epochs: 2,4,6)" in line
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


@pytest.mark.parametrize("argv, says", [
    (["--study", "tickets", "--objectives", "supervised,bogus"], "--objectives supervised,bogus: choose among"),
    (["--study", "tickets", "--preset", "study"], "--preset study: invalid choice (choose from paper, demo)"),
    (["--pruning_percentages", "0.5,1.5"], "--pruning_percentages 1.5: sparsities must lie in (0, 1)"),
    (["--stages", "pies,bogus"], "--stages bogus: choose from"),
])
def test_errors_name_values_in_the_form_the_flags_take(tmp_path, capsys, argv, says):
    line = one_line_usage_error(capsys, reproduce.main, [*argv, "--output_root", str(tmp_path)])
    assert says in line and "['" not in line, line


@pytest.mark.parametrize("parse", [lambda argv: training.parse("supcon", argv), lambda argv: pies.parse("supervised", argv),
                                   tickets.parse, regime.parse], ids=["clr_training", "sup_pies", "tickets", "regime"])
def test_every_entry_points_help_shows_the_launchers_flags(parse, capsys):
    with pytest.raises(SystemExit):
        parse(["--help"])
    out = capsys.readouterr().out
    assert all(flag in out for flag in ("--launcher", "--dry_run", "--slurm_time", "--preset"))

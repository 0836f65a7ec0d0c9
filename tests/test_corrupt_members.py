"""Issue 31: a corrupt model file stops the stages that would build on it or overwrite it, in one line that names the
file and the complete command that makes it again (the analyses' refusal is tested in test_fault_matrix.py)."""
import re
import shutil

import pytest

from common.paths import Paths
from common.spec import ModelSpec
from common.studies.corti2022 import pruning_finetune as run_finetune, training as run_training
from conftest import ZOO_FLAGS, one_line_usage_error

pytestmark = pytest.mark.usefixtures("one_thread")
DENSE_1 = ModelSpec("supervised", "wrn10_1", "digits", "dense", 0.0, 1)


@pytest.fixture()
def zoo_with_a_truncated_dense_model(tiny_zoo, tmp_path):
    shutil.copytree(tiny_zoo / "models", tmp_path / "models")
    broken = Paths(tmp_path).checkpoint(DENSE_1)
    broken.write_bytes(broken.read_bytes()[:200])
    return tmp_path, broken


def command_in(line: str) -> str:
    commands = re.findall(r"`(python [^`]+)`", line)
    assert commands, line
    return commands[0]


def test_training_over_a_truncated_model_names_it_and_the_command(zoo_with_a_truncated_dense_model, capsys):
    root, broken = zoo_with_a_truncated_dense_model
    before = broken.read_bytes()
    line = one_line_usage_error(capsys, lambda argv: run_training.main("supervised", argv),
                                ZOO_FLAGS["supervised"] + ["--output_root", str(root)])
    assert str(broken) in line and "corrupt" in line, line
    command = command_in(line)
    assert command.startswith("python sup_training.py --preset demo --epochs 1 --batch_size 256 --lr_milestones")
    assert "--index_start 1 --index_end 1" in command
    assert broken.read_bytes() == before  # never overwritten


def test_finetuning_from_a_truncated_dense_model_names_it_and_the_command(zoo_with_a_truncated_dense_model,
                                                                          capsys):
    root, broken = zoo_with_a_truncated_dense_model
    line = one_line_usage_error(capsys, lambda argv: run_finetune.main("supervised", argv),
                                ["--preset", "demo", "--models_number", "2", "--epochs", "1", "--pruning_percentages",
                                 "0.5", "--no-progress", "--output_root", str(root)])
    assert str(broken) in line and "corrupt" in line, line
    command = command_in(line)  # in the population's recipe, read from a readable member (the file's is lost)
    assert command.startswith("python sup_training.py --preset demo --epochs 1 --batch_size 256 --lr_milestones")
    assert "--index_start 1 --index_end 1" in command

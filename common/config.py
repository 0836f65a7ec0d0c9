"""Typed configuration shared by every study: `help_field` (a dataclass field whose help text lives beside it and
becomes the flag's --help) and `JobConfig` (how and where a job runs, never part of a model's identity)."""
from __future__ import annotations

from dataclasses import dataclass, field


def help_field(default, help: str, **kw):
    """A dataclass field whose help text lives beside it and becomes the flag's --help."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True)
class JobConfig:
    """How and where a training or finetuning job runs: never part of a model's identity."""

    population_size: int = help_field(0, "models trained together in one process; 0 = fill the device "
                                          "(32 on a GPU, 8 on the CPU), 1 = one at a time")
    cuda_device: int = help_field(0, "GPU index; without CUDA the script says so and runs on the CPU")
    data_dir: str = help_field("./data", "folder holding (or receiving) cifar-10-batches-py")
    output_root: str = help_field("", "root of models/, logs/ and pies/ (default: the repository folder)")
    preset: str = help_field("paper", "recipe preset: paper (the authors' recipe) or demo (digits, CPU minutes)",
                             choices=("paper", "demo"))
    checkpoint_every: int = help_field(10, "save resumable state every N epochs (and on SIGTERM/SIGINT)")
    eval_every: int = help_field(1, "evaluate on the test set every N epochs (and always at the end)")
    amp: bool = help_field(True, "bf16 autocast on CUDA (ignored on the CPU)")
    compile: bool = help_field(False, "torch.compile the population forward (CUDA only)")
    progress: bool = help_field(True, "tqdm progress bars")

    def default_population_size(self, device) -> int:
        return self.population_size or (32 if device.type == "cuda" else 8)

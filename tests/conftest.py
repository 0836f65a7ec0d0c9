"""Shared fixtures. `tiny_zoo` is a small digits model zoo trained once per test session; tests that write
(analyses, corruption) must work on a copy (`shutil.copytree(tiny_zoo, tmp_path / "zoo")`)."""
import logging
import pickle

import numpy as np
import pytest
import torch

from common.runtime import keep_freed_memory

keep_freed_memory()  # as every script does: the suite's many small inference passes skip the kernel's page faults

# One epoch with large batches: the models stay near chance, which is enough for anything that needs models that
# load, predict and disagree. The flags are public so a test can retrain a population exactly like the zoo's.
ZOO_SEEDS = ["--index_start", "0", "--index_end", "1"]
ZOO_FLAGS = {
    "supervised": ["--preset", "demo", *ZOO_SEEDS, "--epochs", "1", "--batch_size", "256", "--lr_milestones",
                   "--pruning_percentages", "0.0,0.5", "--no-progress"],
    "supcon": ["--preset", "demo", *ZOO_SEEDS, "--epochs", "1", "--batch_size", "128", "--head_epochs", "1",
               "--head_milestones", "--batch_size_head", "256", "--pruning_percentages", "0.0,0.5", "--no-progress"],
}


def one_line_usage_error(capsys, main, argv) -> str:
    """Run a script's main as its command line does; assert exit status 2 and one line on stderr; -> that line."""
    from common.cli import run_main

    with pytest.raises(SystemExit) as stop:
        run_main(main, argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and len(err.strip().splitlines()) == 1, err
    return err


def write_tiny_cifar(folder, per_batch=6, balanced=False):
    """A CIFAR-10 folder in the real on-disk format: pickled dicts with 'data' [n, 3072] uint8 (channel-major) and
    'labels' (random, or with `balanced` every class equally often, as a class-balanced subset needs)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = [i % 10 for i in range(per_batch)] if balanced else rng.integers(0, 10, size=per_batch).tolist()
        with open(folder / name, "wb") as fh:
            pickle.dump({"data": data, "labels": labels, "batch_label": name}, fh)
        batches[name] = (data, labels)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": [str(i) for i in range(10)]}, fh)
    return batches


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory):
    """Root holding seeds 0-1 of: supervised dense + gmp_early 0.5, SupCon dense + gmp_late 0.5 (wrn10_1, digits).
    Read-only by convention."""
    from common.studies.corti2022 import training as run_training

    root = tmp_path_factory.mktemp("tiny_zoo")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models gain nothing from intra-op threads on a busy 2-core machine
    try:
        for method, flags in ZOO_FLAGS.items():
            run_training.main(method, flags + ["--output_root", str(root)])
    finally:
        torch.set_num_threads(threads)
    return root


@pytest.fixture(autouse=True)
def _prune_logs_reach_caplog(caplog):
    """The toolkit's logger does not propagate to the root (libraries that configure the root logger would print
    every line twice), so hand caplog's handler to it directly."""
    logger = logging.getLogger("prune")
    logger.addHandler(caplog.handler)
    yield
    logger.removeHandler(caplog.handler)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy 2-core machine their spin-waits cost several
    times the CPU time; restored for the other test modules."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def float64():
    """Tensors created in the test default to float64 (equivalence tests compare to ~1e-10)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)

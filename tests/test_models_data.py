import pickle
from urllib.error import URLError

import numpy as np
import pytest
import torch

from common.data import DataError, load_dataset
from common.data.datasets import load_cifar10, load_digits
from common.models import build_network


def n_params(module, kind=None):
    return sum(p.numel() for n, p in module.named_parameters() if kind is None or kind(n, p))


def test_wrn16_2_matches_the_authors_parameter_counts():
    net = build_network("wrn16_2", "supervised")
    convs = [m for m in net.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 16
    assert sum(m.weight.numel() for m in convs) == 688_560
    assert n_params(net.classifier) == 1_290
    assert n_params(net, lambda n, p: ".bn" in n or n.startswith("encoder.bn")) == 1_824
    assert n_params(net) == 691_674


@pytest.mark.parametrize("arch,dim,widths", [
    ("wrn16_2", 128, [16] + [32] * 5 + [64] * 5 + [128] * 5),  # the authors' 16 probe points
    ("wrn10_1", 64, [16] + [16] * 3 + [32] * 3 + [64] * 3),
    ("resnet18", 512, [64] + [64] * 5 + [128] * 5 + [256] * 5 + [512] * 5),
])
def test_feature_and_hidden_shapes(arch, dim, widths):
    net = build_network(arch, "supcon").eval()
    x = torch.randn(2, 3, 32, 32)
    feature, hidden = net(x, "hidden")
    assert feature.shape == (2, dim)
    assert [h.shape[1] for h in hidden] == widths and all(h.shape[0] == 2 for h in hidden)
    assert net(x, "logits").shape == (2, 10)
    z = net(x, "projection")
    assert z.shape == (2, 128) and torch.allclose(z.norm(dim=1), torch.ones(2), atol=1e-5)
    assert torch.equal(net(x, "features"), feature)


def test_resnet18_is_the_cifar_variant():
    net = build_network("resnet18", "supervised")
    assert net.encoder.conv1.kernel_size == (3, 3) and net.encoder.conv1.stride == (1, 1)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in net.modules())
    assert 11.0e6 < n_params(net) < 11.3e6


def test_digits_split_is_fixed_stratified_and_three_channel():
    a, b = load_digits(), load_digits()
    assert torch.equal(a.test_labels, b.test_labels) and torch.equal(a.test_images, b.test_images)
    assert a.train_images.shape == (1437, 3, 8, 8) and a.test_images.shape == (360, 3, 8, 8)
    assert a.train_images.dtype == torch.uint8
    assert torch.equal(a.train_images[:, 0], a.train_images[:, 2])
    train_share = torch.bincount(a.train_labels) / 1437
    test_share = torch.bincount(a.test_labels) / 360
    assert (train_share - test_share).abs().max() < 0.01


def write_tiny_cifar(folder, per_batch=6):
    """The real on-disk format: pickled dicts with 'data' [n, 3072] uint8 (channel-major) and 'labels'."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=per_batch).tolist()
        with open(folder / name, "wb") as fh:
            pickle.dump({"data": data, "labels": labels, "batch_label": name}, fh)
        batches[name] = (data, labels)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": [str(i) for i in range(10)]}, fh)
    return batches


def test_real_cifar_loader_reads_the_cifar_format(tmp_path):
    batches = write_tiny_cifar(tmp_path / "cifar-10-batches-py")
    data = load_cifar10(tmp_path, download=False)
    assert data.train_images.shape == (30, 3, 32, 32) and data.test_images.shape == (6, 3, 32, 32)
    first, labels = batches["data_batch_1"]
    assert torch.equal(data.train_images[0], torch.from_numpy(first[0].reshape(3, 32, 32)))
    assert data.train_labels[:6].tolist() == labels
    test, test_labels = batches["test_batch"]
    assert torch.equal(data.test_images, torch.from_numpy(test.reshape(-1, 3, 32, 32)))  # file order kept
    assert data.test_labels.tolist() == test_labels


def test_missing_cifar_offline_is_one_clear_error(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", tmp_path)
    message = str(err.value)
    assert "cifar-10-batches-py" in message and "--preset demo" in message and "\n" not in message


def test_corrupt_cifar_batch_is_reported(tmp_path):
    write_tiny_cifar(tmp_path / "cifar-10-batches-py")
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="data_batch_3"):
        load_cifar10(tmp_path, download=False)

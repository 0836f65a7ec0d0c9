from urllib.error import URLError

import numpy as np
import pytest
import torch

from conftest import write_tiny_cifar

from common.data import load_dataset
from common.errors import DataError
from common.data.cifar10 import load_cifar10
from common.data.digits import load_digits
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
    ("vgg4_16", 32, [16, 16, 16, 32, 32, 32]),  # each conv's output, then each stage's
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


# ---- Fashion-MNIST: the real IDX format, found where users have it ---------------------------------------------

def write_tiny_idx(folder, n_train=20, n_test=10, gzipped=True):
    """Fashion-MNIST's on-disk format: big-endian IDX headers (magic 0x0803 images / 0x0801 labels) then uint8."""
    import gzip

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
            name = f"{split}-{kind}-ubyte" + (".gz" if gzipped else "")
            (gzip.open if gzipped else open)(folder / name, "wb").write(header + array.tobytes())
        arrays[split] = (images, labels)
    return arrays


@pytest.mark.parametrize("gzipped", [True, False])
def test_fashion_mnist_reads_torchvisions_layout_first(tmp_path, monkeypatch, gzipped):
    from common.data import fashion_mnist

    monkeypatch.setattr(fashion_mnist, "DEBIAN_FOLDER", tmp_path / "debian")
    write_tiny_idx(tmp_path / "debian", n_train=30)  # there too, but --data_dir comes first
    arrays = write_tiny_idx(tmp_path / "FashionMNIST" / "raw", gzipped=gzipped)
    data = load_dataset("fashion_mnist", tmp_path)
    assert data.train_images.shape == (20, 3, 28, 28) and data.test_images.shape == (10, 3, 28, 28)
    assert torch.equal(data.test_images[:, 0], torch.from_numpy(arrays["t10k"][0]))  # file order, grey in each channel
    assert torch.equal(data.test_images[:, 0], data.test_images[:, 2])
    assert data.train_labels.tolist() == arrays["train"][1].tolist()
    pixels = torch.from_numpy(arrays["train"][0]).float() / 255
    assert data.mean[0] == pytest.approx(pixels.mean().item()) and data.std[0] == pytest.approx(pixels.std().item())


def test_fashion_mnist_falls_back_to_the_debian_folder_then_says_both_ways(tmp_path, monkeypatch):
    import torchvision.datasets

    from common.data import fashion_mnist

    monkeypatch.setattr(fashion_mnist, "DEBIAN_FOLDER", tmp_path / "debian")
    write_tiny_idx(tmp_path / "debian", n_train=30)
    assert len(load_dataset("fashion_mnist", tmp_path / "empty").train_labels) == 30

    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(fashion_mnist, "DEBIAN_FOLDER", tmp_path / "nowhere")
    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", offline)
    with pytest.raises(DataError) as err:
        load_dataset("fashion_mnist", tmp_path / "empty")
    message = str(err.value)
    assert "apt-get install dataset-fashion-mnist" in message and "FashionMNIST/raw" in message
    assert "\n" not in message


def test_a_truncated_idx_file_is_named(tmp_path, monkeypatch):
    from common.data import fashion_mnist

    monkeypatch.setattr(fashion_mnist, "DEBIAN_FOLDER", tmp_path / "nowhere")
    folder = tmp_path / "FashionMNIST" / "raw"
    write_tiny_idx(folder, gzipped=False)
    (folder / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03\x00")
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte"):
        load_dataset("fashion_mnist", tmp_path)


def test_a_training_subset_is_class_balanced_seeded_and_in_file_order():
    data = load_digits()
    subset = data.train_subset(105)
    counts = torch.bincount(subset.train_labels, minlength=10).tolist()
    assert counts == [11] * 5 + [10] * 5 and len(subset.train_labels) == 105
    again = data.train_subset(105)
    assert torch.equal(subset.train_images, again.train_images)  # the same subset for every model
    index = {tuple(img.flatten().tolist()): i for i, img in enumerate(data.train_images)}
    positions = [index[tuple(img.flatten().tolist())] for img in subset.train_images]
    assert positions == sorted(positions) and data.train_subset(0) is data
    with pytest.raises(DataError, match="--train_subset 5000"):
        data.train_subset(5000)


def test_every_registered_dataset_says_what_it_is():
    from common.data import DATASETS

    assert set(DATASETS) == {"cifar10", "digits", "fashion_mnist"}
    for info in DATASETS.values():
        assert len(info.class_names) == 10 and info.channels == 3 and info.image_size in (8, 28, 32)
    assert DATASETS["fashion_mnist"].vertical_flip is False and DATASETS["cifar10"].vertical_flip is True
    assert DATASETS["fashion_mnist"].contrastive.jitter_p == 0 and DATASETS["fashion_mnist"].contrastive.grayscale_p == 0

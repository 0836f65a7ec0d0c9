"""Encoders (WRN-16-2 as the authors', CIFAR ResNet-18, a small WRN-10-1, Morcos et al.'s VGG-19, Zhou et al.'s
PreResNet-20, a 4-conv VGG for the three-regime study on the CPU) and the one network wrapper used by every learning method: encoder + linear classifier, plus the
method's heads (a projection for SupCon, SimCLR, NPID and Exemplar; a rotation classifier for RotNet and S4L).

Every encoder returns its pooled feature and, when `with_hidden=True`, the global-average-pooled hidden
representations at its probe points (prediction depth fits a k-NN on each). For WRN-16-2 these are the authors'
16 points: conv1's output, then per group: block0 mid, block0 conv2 output (before the residual add), block1 mid,
block1 conv2 output, block1 output (after the add). Other depths follow the same rule: per block its mid and
conv2 outputs, per group its output.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from common.engine.objectives import OBJECTIVES, Heads


def _pool(x: torch.Tensor) -> torch.Tensor:
    return x.mean(dim=(2, 3))


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-conv3x3; a 1x1 conv shortcut on the pre-activated input when the width changes."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.shortcut = None
        if c_in != c_out or stride != 1:
            self.shortcut = nn.Conv2d(c_in, c_out, 1, stride, 0, bias=False)

    def forward(self, x, taps: list | None = None):
        pre = F.relu(self.bn1(x))
        residual = x if self.shortcut is None else self.shortcut(pre)
        mid = F.relu(self.bn2(self.conv1(pre)))
        out = self.conv2(mid)
        if taps is not None:
            taps += [_pool(mid), _pool(out)]
        return out + residual


class WideResNet(nn.Module):
    """Pre-activation WRN-depth-width (Zagoruyko & Komodakis), dropout 0, as in the authors' utils/models.py."""

    def __init__(self, depth: int = 16, width: int = 2):
        super().__init__()
        assert (depth - 4) % 6 == 0, "WRN depth must be 6n+4"
        n = (depth - 4) // 6
        channels = [16, 16 * width, 32 * width, 64 * width]
        self.conv1 = nn.Conv2d(3, channels[0], 3, 1, 1, bias=False)
        self.groups = nn.ModuleList()
        for g, stride in enumerate((1, 2, 2)):
            blocks = [PreActBlock(channels[g] if i == 0 else channels[g + 1], channels[g + 1], stride if i == 0 else 1)
                      for i in range(n)]
            self.groups.append(nn.ModuleList(blocks))
        self.bn = nn.BatchNorm2d(channels[3])
        self.feature_dim = channels[3]
        self.stage_taps = _stage_taps(self.groups, per_block=2, stem=1)
        _init(self)

    def forward(self, x, with_hidden: bool = False):
        return _run_encoder(self.conv1(x), self.groups, lambda x: _pool(F.relu(self.bn(x))), with_hidden)


class PreResNet(nn.Module):
    """Zhou et al.'s PreResNet (bearpaw's pytorch-classification, depth 6n+2; PreResNet-20: n = 3): a 3x3 conv to 16
    channels, three groups of n pre-activation blocks at 16, 32, 64 channels, BN-ReLU and the pooled 64-d feature.
    Their downsampling 1x1 conv reads the block's raw input; ours (PreActBlock, shared with the WRNs) reads it
    pre-activated, as He et al.'s identity-mapping paper does."""

    def __init__(self, depth: int = 20):
        super().__init__()
        assert (depth - 2) % 6 == 0, "PreResNet depth must be 6n+2"
        n = (depth - 2) // 6
        channels = [16, 16, 32, 64]
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.groups = nn.ModuleList()
        for g, stride in enumerate((1, 2, 2)):
            self.groups.append(nn.ModuleList([PreActBlock(channels[g] if i == 0 else channels[g + 1], channels[g + 1],
                                                          stride if i == 0 else 1) for i in range(n)]))
        self.bn = nn.BatchNorm2d(64)
        self.feature_dim = 64
        self.stage_taps = _stage_taps(self.groups, per_block=2, stem=1)
        _init(self)

    def forward(self, x, with_hidden: bool = False):
        return _run_encoder(self.conv1(x), self.groups, lambda x: _pool(F.relu(self.bn(x))), with_hidden)


class BasicBlock(nn.Module):
    """Post-activation ResNet block (He et al.), 1x1 conv + BN shortcut when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if c_in != c_out or stride != 1:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x, taps: list | None = None):
        mid = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(mid))
        if taps is not None:
            taps += [_pool(mid), _pool(out)]
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """CIFAR ResNet-18: 3x3 stem with stride 1 and no max-pool, four stages of two blocks, 512-d feature."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        widths, c_in = (64, 128, 256, 512), 64
        self.groups = nn.ModuleList()
        for g, width in enumerate(widths):
            stride = 1 if g == 0 else 2
            self.groups.append(nn.ModuleList([BasicBlock(c_in, width, stride), BasicBlock(width, width, 1)]))
            c_in = width
        self.feature_dim = 512
        self.stage_taps = _stage_taps(self.groups, per_block=2, stem=1)
        _init(self)

    def forward(self, x, with_hidden: bool = False):
        return _run_encoder(F.relu(self.bn1(self.conv1(x))), self.groups, _pool, with_hidden)


class VGG(nn.Module):
    """Morcos et al.'s CIFAR VGG-19 (Caron et al.'s supplement): 16 conv3x3-BN-ReLU layers in five stages of
    64, 128, 256, 512, 512 channels, 2x2 max-pools between the stages, and no MLP: the pooled 512-d feature goes
    straight to the one linear classifier of `Network`. A global average pool ends the encoder (on 32x32 CIFAR the
    last stage is 2x2, so it equals open_lth's AvgPool2d(2)); a pool is skipped once the map is 1x1, so the 8x8
    digits and 28x28 Fashion-MNIST run too. Probes: every conv layer's output and each stage's output. `stages`
    (channels per conv, per stage) builds smaller ones (vgg4_16)."""

    STAGES = ((64, 64), (128, 128), (256,) * 4, (512,) * 4, (512,) * 4)

    def __init__(self, stages: tuple = STAGES):
        super().__init__()
        self.groups = nn.ModuleList()
        c_in = 3
        for widths in stages:
            layers = []
            for width in widths:
                layers.append(ConvBNReLU(c_in, width))
                c_in = width
            self.groups.append(nn.ModuleList(layers))
        self.feature_dim = c_in
        self.stage_taps = _stage_taps(self.groups, per_block=1, stem=0)
        _init(self)

    def forward(self, x, with_hidden: bool = False):
        taps = [] if with_hidden else None
        for g, group in enumerate(self.groups):
            if g and x.shape[-1] > 1:
                x = F.max_pool2d(x, 2)
            for layer in group:
                x = layer(x, taps)
            if with_hidden:
                taps.append(_pool(x))
        return (_pool(x), taps) if with_hidden else _pool(x)


class ConvBNReLU(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x, taps: list | None = None):
        out = F.relu(self.bn(self.conv(x)))
        if taps is not None:
            taps.append(_pool(out))
        return out


def _stage_taps(groups, per_block: int, stem: int) -> tuple[int, ...]:
    """Where each group's (stage's) output sits among the `hidden` probes: after the stem's probe and, per group,
    `per_block` probes per block and then the group's output (the probes a linear transfer probe reads)."""
    taps, position = [], stem
    for group in groups:
        position += per_block * len(group)
        taps.append(position)
        position += 1
    return tuple(taps)


def _run_encoder(stem_out, groups, head, with_hidden: bool):
    """Blocks group by group after the stem; probes: the stem output, each block's taps, each group's output."""
    taps = [_pool(stem_out)] if with_hidden else None
    x = stem_out
    for group in groups:
        for block in group:
            x = block(x, taps)
        if with_hidden:
            taps.append(_pool(x))
    feature = head(x)
    return (feature, taps) if with_hidden else feature


def _init(module: nn.Module) -> None:
    """The authors' init: kaiming_normal(fan_out, relu) convs, BN gamma=1 beta=0, zero Linear biases."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)


ENCODERS = {
    "wrn16_2": lambda: WideResNet(16, 2),
    "wrn10_1": lambda: WideResNet(10, 1),
    "resnet18": ResNet18,
    "vgg19": VGG,
    "preresnet20": lambda: PreResNet(20),
    # the three-regime study's CPU encoder: conv3x3-BN-ReLU x 2 at 16 channels, 2x2 max-pool, x 2 at 32, pooled 32-d
    # feature (17k weights; 14x14 Fashion-MNIST at 0.29 ms per image forward and backward on one core)
    "vgg4_16": lambda: VGG(((16, 16), (32, 32))),
}


class Network(nn.Module):
    """Encoder + linear classifier (+ the method's heads: a projection, a rotation classifier).

    `forward(x, mode)` selects the output so that a population can call any of them through one
    `torch.func.functional_call`: 'logits', 'features', 'hidden' (feature, per-probe list), 'projection'
    (L2-normalised projection of the feature), 'rotation' (the 4-way rotation logits)."""

    def __init__(self, arch: str, num_classes: int = 10, projection_dim: int | None = None, heads: Heads = Heads()):
        super().__init__()
        self.encoder = ENCODERS[arch]()
        dim = self.encoder.feature_dim
        self.classifier = nn.Linear(dim, num_classes)
        nn.init.zeros_(self.classifier.bias)
        self.projection = None
        if heads.projection == "mlp":
            # the authors' 'mlp' head: Linear(d, d)-ReLU-Linear(d, feat_dim)
            self.projection = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(inplace=True), nn.Linear(dim, projection_dim))
        elif heads.projection == "linear":
            self.projection = nn.Sequential(nn.Linear(dim, projection_dim))
        for m in self.projection or ():
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)
        self.rotation = None
        if heads.rotation:
            self.rotation = nn.Linear(dim, heads.rotation)
            nn.init.zeros_(self.rotation.bias)

    def forward(self, x, mode: str = "logits"):
        if mode == "logits":
            return self.classifier(self.encoder(x))
        if mode == "features":
            return self.encoder(x)
        if mode == "hidden":
            return self.encoder(x, with_hidden=True)
        if mode == "projection":
            return F.normalize(self.projection(self.encoder(x)), dim=1)
        if mode == "rotation":
            return self.rotation(self.encoder(x))
        if mode == "rotation_and_logits":  # S4L: both heads on one encoder pass
            features = self.encoder(x)
            return self.rotation(features), self.classifier(features)
        raise ValueError(f"unknown mode {mode!r}")


def build_network(arch: str, method: str, num_classes: int = 10, projection_dim: int = 128) -> Network:
    if arch not in ENCODERS:
        raise ValueError(f"unknown arch {arch!r}: use one of {sorted(ENCODERS)}")
    return Network(arch, num_classes, projection_dim, OBJECTIVES[method].heads)


def seeded_network(arch: str, method: str, num_classes: int, projection_dim: int, seed: int) -> Network:
    """The network of `method` whose initial weights are drawn after torch.manual_seed(seed): every study's fresh
    member of that seed."""
    torch.manual_seed(seed)
    return build_network(arch, method, num_classes, projection_dim)


def part_of(name: str) -> str:
    """Which checkpoint file a parameter belongs to for a method with heads: the classifier, or the encoder file
    that also holds the projection or rotation head."""
    return "classifier" if name.startswith("classifier.") else "encoder"

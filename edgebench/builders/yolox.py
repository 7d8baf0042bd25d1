"""YOLOX detection networks (Nano, Tiny, S), built from the published architecture.

Reference: Ge et al., "YOLOX: Exceeding YOLO Series in 2021", arXiv:2107.08430, and the Megvii release
models. The network is a CSPDarknet backbone with a Focus stem and an SPP bottleneck, the YOLOPAFPN neck
and the anchor-free decoupled head (separate classification and regression/objectness branches).

``forward`` returns one tensor ``(B, N, 5 + num_classes)``: per grid cell ``[x, y, w, h, obj, cls...]``
with the box regression raw and obj/cls after sigmoid, cells row-major, levels in stride order 8, 16, 32.
This is the layout of the official ONNX export with ``decode_in_inference=False``; grid/stride decoding
and NMS belong to post-processing.
"""

import math

import torch
from torch import nn

__all__ = ["STRIDES", "YOLOX", "yolox_nano", "yolox_s", "yolox_tiny"]

STRIDES = (8, 16, 32)

# Widths at width multiple 1.0: backbone outputs of dark3/dark4/dark5 and the head's hidden width.
_LEVEL_CHANNELS = (256, 512, 1024)
_HEAD_CHANNELS = 256


class BaseConv(nn.Module):
    """Conv2d (no bias) + BatchNorm + SiLU, 'same' padding."""

    def __init__(self, c_in: int, c_out: int, k: int = 1, s: int = 1, groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, s, (k - 1) // 2, groups=groups, bias=False)
        # YOLOX re-initialises every BatchNorm to these values after building the model.
        self.bn = nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.03)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class DWConv(nn.Module):
    """Depthwise k x k conv followed by a pointwise 1x1 conv, each with BatchNorm + SiLU."""

    def __init__(self, c_in: int, c_out: int, k: int = 1, s: int = 1):
        super().__init__()
        self.dconv = BaseConv(c_in, c_in, k, s, groups=c_in)
        self.pconv = BaseConv(c_in, c_out, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pconv(self.dconv(x))


def _conv(depthwise: bool) -> type[nn.Module]:
    return DWConv if depthwise else BaseConv


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 conv, optional residual."""

    def __init__(
        self, c_in: int, c_out: int, shortcut: bool = True, expansion: float = 0.5, depthwise: bool = False
    ):
        super().__init__()
        hidden = int(c_out * expansion)
        self.conv1 = BaseConv(c_in, hidden, 1, 1)
        self.conv2 = _conv(depthwise)(hidden, c_out, 3, 1)
        self.use_add = shortcut and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x))
        return x + y if self.use_add else y


class CSPLayer(nn.Module):
    """CSP block: half-width bottleneck branch and half-width bypass, concatenated and fused by 1x1."""

    def __init__(self, c_in: int, c_out: int, n: int = 1, shortcut: bool = True, depthwise: bool = False):
        super().__init__()
        hidden = c_out // 2
        self.conv1 = BaseConv(c_in, hidden, 1, 1)
        self.conv2 = BaseConv(c_in, hidden, 1, 1)
        self.conv3 = BaseConv(2 * hidden, c_out, 1, 1)
        self.m = nn.Sequential(*(Bottleneck(hidden, hidden, shortcut, 1.0, depthwise) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(torch.cat((self.m(self.conv1(x)), self.conv2(x)), 1))


class SPPBottleneck(nn.Module):
    """Spatial pyramid pooling with parallel 5/9/13 max-pools around a halved width."""

    def __init__(self, c_in: int, c_out: int, kernel_sizes: tuple[int, ...] = (5, 9, 13)):
        super().__init__()
        hidden = c_in // 2
        self.conv1 = BaseConv(c_in, hidden, 1, 1)
        self.m = nn.ModuleList(nn.MaxPool2d(k, 1, k // 2) for k in kernel_sizes)
        self.conv2 = BaseConv(hidden * (len(kernel_sizes) + 1), c_out, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        return self.conv2(torch.cat([x, *(pool(x) for pool in self.m)], 1))


class Focus(nn.Module):
    """Space-to-depth (2x2 pixel blocks into channels) followed by a conv."""

    def __init__(self, c_in: int, c_out: int, k: int = 1, s: int = 1):
        super().__init__()
        self.conv = BaseConv(c_in * 4, c_out, k, s)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Strided slices export as ONNX Slice with steps (opset >= 10). Block order as (row, col)
        # parity: (even, even), (odd, even), (even, odd), (odd, odd), matching the released weights.
        return self.conv(
            torch.cat((x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]), 1)
        )


class CSPDarknet(nn.Module):
    """YOLOX backbone; returns the stride 8, 16 and 32 features (dark3, dark4, dark5)."""

    def __init__(self, depth: float, width: float, depthwise: bool = False):
        super().__init__()
        conv = _conv(depthwise)
        c = int(width * 64)
        n = max(round(depth * 3), 1)
        self.stem = Focus(3, c, k=3)
        self.dark2 = nn.Sequential(conv(c, 2 * c, 3, 2), CSPLayer(2 * c, 2 * c, n, depthwise=depthwise))
        self.dark3 = nn.Sequential(
            conv(2 * c, 4 * c, 3, 2), CSPLayer(4 * c, 4 * c, 3 * n, depthwise=depthwise)
        )
        self.dark4 = nn.Sequential(
            conv(4 * c, 8 * c, 3, 2), CSPLayer(8 * c, 8 * c, 3 * n, depthwise=depthwise)
        )
        self.dark5 = nn.Sequential(
            conv(8 * c, 16 * c, 3, 2),
            SPPBottleneck(16 * c, 16 * c),
            CSPLayer(16 * c, 16 * c, n, shortcut=False, depthwise=depthwise),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.dark2(self.stem(x))
        c3 = self.dark3(x)
        c4 = self.dark4(c3)
        c5 = self.dark5(c4)
        return c3, c4, c5


class YOLOPAFPN(nn.Module):
    """PANet neck: top-down FPN then a bottom-up path, CSP layers without residuals at each merge."""

    def __init__(self, depth: float, width: float, depthwise: bool = False):
        super().__init__()
        conv = _conv(depthwise)
        c3, c4, c5 = (int(ch * width) for ch in _LEVEL_CHANNELS)
        n = round(3 * depth)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        # The two lateral 1x1 convs stay dense even in the depthwise (Nano) variant.
        self.lateral_conv0 = BaseConv(c5, c4, 1, 1)
        self.C3_p4 = CSPLayer(2 * c4, c4, n, False, depthwise)
        self.reduce_conv1 = BaseConv(c4, c3, 1, 1)
        self.C3_p3 = CSPLayer(2 * c3, c3, n, False, depthwise)
        self.bu_conv2 = conv(c3, c3, 3, 2)
        self.C3_n3 = CSPLayer(2 * c3, c4, n, False, depthwise)
        self.bu_conv1 = conv(c4, c4, 3, 2)
        self.C3_n4 = CSPLayer(2 * c4, c5, n, False, depthwise)

    def forward(self, feats: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        x3, x4, x5 = feats
        lat5 = self.lateral_conv0(x5)
        p4 = self.C3_p4(torch.cat((self.upsample(lat5), x4), 1))
        lat4 = self.reduce_conv1(p4)
        out3 = self.C3_p3(torch.cat((self.upsample(lat4), x3), 1))
        out4 = self.C3_n3(torch.cat((self.bu_conv2(out3), lat4), 1))
        out5 = self.C3_n4(torch.cat((self.bu_conv1(out4), lat5), 1))
        return out3, out4, out5


class YOLOXHead(nn.Module):
    """Decoupled anchor-free head: per level a 1x1 stem, then two 3x3 convs for classes and two for
    box regression + objectness."""

    def __init__(self, num_classes: int, width: float, depthwise: bool = False, prior_prob: float = 1e-2):
        super().__init__()
        conv = _conv(depthwise)
        hidden = int(_HEAD_CHANNELS * width)
        self.stems = nn.ModuleList()
        self.cls_convs = nn.ModuleList()
        self.reg_convs = nn.ModuleList()
        self.cls_preds = nn.ModuleList()
        self.reg_preds = nn.ModuleList()
        self.obj_preds = nn.ModuleList()
        for ch in _LEVEL_CHANNELS:
            self.stems.append(BaseConv(int(ch * width), hidden, 1, 1))
            self.cls_convs.append(nn.Sequential(conv(hidden, hidden, 3, 1), conv(hidden, hidden, 3, 1)))
            self.reg_convs.append(nn.Sequential(conv(hidden, hidden, 3, 1), conv(hidden, hidden, 3, 1)))
            self.cls_preds.append(nn.Conv2d(hidden, num_classes, 1))
            self.reg_preds.append(nn.Conv2d(hidden, 4, 1))
            self.obj_preds.append(nn.Conv2d(hidden, 1, 1))
        # Focal-loss style prior: start obj/cls confidences near prior_prob instead of 0.5.
        bias = -math.log((1 - prior_prob) / prior_prob)
        for pred in (*self.cls_preds, *self.obj_preds):
            nn.init.constant_(pred.bias, bias)

    def forward(self, feats: tuple[torch.Tensor, ...]) -> torch.Tensor:
        outputs = []
        for i, x in enumerate(feats):
            x = self.stems[i](x)
            cls = self.cls_preds[i](self.cls_convs[i](x))
            reg_feat = self.reg_convs[i](x)
            reg = self.reg_preds[i](reg_feat)
            obj = self.obj_preds[i](reg_feat)
            outputs.append(torch.cat((reg, obj.sigmoid(), cls.sigmoid()), 1).flatten(2))
        return torch.cat(outputs, 2).permute(0, 2, 1)


class YOLOX(nn.Module):
    """YOLOX detector: CSPDarknet + YOLOPAFPN + decoupled head."""

    def __init__(self, depth: float, width: float, num_classes: int = 80, depthwise: bool = False):
        super().__init__()
        self.num_classes = num_classes
        self.strides = STRIDES
        self.backbone = CSPDarknet(depth, width, depthwise)
        self.neck = YOLOPAFPN(depth, width, depthwise)
        self.head = YOLOXHead(num_classes, width, depthwise)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.neck(self.backbone(x)))


def yolox_nano(num_classes: int = 80) -> YOLOX:
    """YOLOX-Nano (Ge et al., arXiv:2107.08430, Megvii release; 416 input); published 0.91M parameters."""
    return YOLOX(0.33, 0.25, num_classes, depthwise=True)


def yolox_tiny(num_classes: int = 80) -> YOLOX:
    """YOLOX-Tiny (Ge et al., arXiv:2107.08430, Megvii release; 416 input); published 5.06M parameters."""
    return YOLOX(0.33, 0.375, num_classes)


def yolox_s(num_classes: int = 80) -> YOLOX:
    """YOLOX-S (Ge et al., arXiv:2107.08430, Megvii release; 640 input); published 9.0M parameters."""
    return YOLOX(0.33, 0.50, num_classes)

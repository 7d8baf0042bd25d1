"""Tiny YOLO v2 (VOC) and v3 (COCO) in PyTorch, following the darknet cfg layer structure.

Forward passes return the raw head maps; decoding and NMS are post-processing.
"""

import torch
from torch import nn

# Grid-cell units, (w, h) pairs, from yolov2-tiny-voc.cfg.
TINY_YOLOV2_VOC_ANCHORS = [
    (1.08, 1.19),
    (3.42, 4.41),
    (6.63, 11.38),
    (9.42, 5.11),
    (16.62, 10.52),
]

# Pixels at 416 input, flattened (w, h) per head: first the 13x13 head (mask 3,4,5), then 26x26 (mask 0,1,2).
TINY_YOLOV3_ANCHORS = [
    [81, 82, 135, 169, 344, 319],
    [10, 14, 23, 27, 37, 58],
]


def _conv_bn_leaky(cin: int, cout: int, k: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride=1, padding=k // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.LeakyReLU(0.1),
    )


class _EdgePadBottomRight(nn.Module):
    """Same result as ``nn.ReplicationPad2d((0, 1, 0, 1))``, written as slice + concat.

    The TorchScript exporter turns any pad module into a Pad whose ``pads`` input is computed at run time
    (ConstantOfShape/Slice/Transpose/Cast), which some edge runtimes cannot parse; slices of the last
    row/column with fixed indices export as static Slice + Concat.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([x, x[:, :, -1:, :]], dim=2)
        return torch.cat([x, x[:, :, :, -1:]], dim=3)


def _maxpool_stride1() -> nn.Sequential:
    # Darknet's size-2 stride-1 maxpool keeps the spatial size by padding right/bottom with -inf. Replicating
    # the edge gives the same maxima (a window holding a copy of the edge value has that value as candidate
    # and nothing larger from outside), whereas zero padding would turn negative edge maxima into 0.
    return nn.Sequential(_EdgePadBottomRight(), nn.MaxPool2d(2, 1))


class TinyYOLOv2(nn.Module):
    def __init__(self, num_classes: int = 20, num_anchors: int = 5):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for i, cout in enumerate((16, 32, 64, 128, 256, 512)):
            layers.append(_conv_bn_leaky(cin, cout, 3))
            layers.append(nn.MaxPool2d(2, 2) if i < 5 else _maxpool_stride1())
            cin = cout
        layers.append(_conv_bn_leaky(512, 1024, 3))
        layers.append(_conv_bn_leaky(1024, 1024, 3))
        self.features = nn.Sequential(*layers)
        self.head = nn.Conv2d(1024, num_anchors * (5 + num_classes), 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class TinyYOLOv3(nn.Module):
    def __init__(self, num_classes: int = 80, num_anchors: int = 3):
        super().__init__()
        out_ch = num_anchors * (5 + num_classes)
        # Up to and including the 256-channel conv at stride 16: its output is routed to the 26x26 head.
        self.stage16 = nn.Sequential(
            _conv_bn_leaky(3, 16, 3),
            nn.MaxPool2d(2, 2),
            _conv_bn_leaky(16, 32, 3),
            nn.MaxPool2d(2, 2),
            _conv_bn_leaky(32, 64, 3),
            nn.MaxPool2d(2, 2),
            _conv_bn_leaky(64, 128, 3),
            nn.MaxPool2d(2, 2),
            _conv_bn_leaky(128, 256, 3),
        )
        self.stage32 = nn.Sequential(
            nn.MaxPool2d(2, 2),
            _conv_bn_leaky(256, 512, 3),
            _maxpool_stride1(),
            _conv_bn_leaky(512, 1024, 3),
            _conv_bn_leaky(1024, 256, 1),
        )
        self.head32 = nn.Sequential(
            _conv_bn_leaky(256, 512, 3),
            nn.Conv2d(512, out_ch, 1, bias=True),
        )
        self.lateral = nn.Sequential(
            _conv_bn_leaky(256, 128, 1),
            nn.Upsample(scale_factor=2, mode="nearest"),
        )
        self.head16 = nn.Sequential(
            _conv_bn_leaky(128 + 256, 256, 3),
            nn.Conv2d(256, out_ch, 1, bias=True),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c16 = self.stage16(x)
        c32 = self.stage32(c16)
        out32 = self.head32(c32)
        # Darknet route order: upsampled branch first, then the earlier 256-channel feature map.
        out16 = self.head16(torch.cat([self.lateral(c32), c16], dim=1))
        return out32, out16


def tiny_yolov2(num_classes: int = 20) -> TinyYOLOv2:
    """Tiny YOLOv2, darknet ``yolov2-tiny-voc.cfg`` (Redmon & Farhadi 2017, YOLO9000).

    Published: 15.86M parameters (VOC, 20 classes). Returns the raw ``(1, 125, 13, 13)`` map at 416 input.
    """
    return TinyYOLOv2(num_classes=num_classes)


def tiny_yolov3(num_classes: int = 80) -> TinyYOLOv3:
    """Tiny YOLOv3, darknet ``yolov3-tiny.cfg`` (Redmon & Farhadi 2018, YOLOv3: An Incremental Improvement).

    Published: 8.86M parameters (COCO, 80 classes). Returns raw maps ``(1, 255, 13, 13)`` and
    ``(1, 255, 26, 26)`` at 416 input, stride 32 first.
    """
    return TinyYOLOv3(num_classes=num_classes)

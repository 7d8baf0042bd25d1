"""Tiny real torch models with the output layouts of today's pretrained exports, for tests that
need an ONNX file of that layout without shipping weights."""

from __future__ import annotations

from pathlib import Path

import onnx
import torch

__all__ = ["TinyClassifier", "TinyV8", "export_onnx"]


class TinyV8(torch.nn.Module):
    """Three strided levels, each a box distribution (4 x 16 bins) and C class logits per cell;
    DFL (softmax expectation over the bins), dist2bbox around the anchor points and the sigmoid are
    in the graph, the output is (1, 4 + C, N) cx, cy, w, h in pixels: Ultralytics' export form."""

    def __init__(self, classes=3, bins=16, strides=(8, 16, 32)):
        super().__init__()
        self.strides, self.bins, self.classes = strides, bins, classes
        self.stem = torch.nn.Conv2d(3, 8, 3, 2, 1)
        self.downs = torch.nn.ModuleList(torch.nn.Conv2d(8, 8, 3, 2, 1) for _ in range(len(strides) + 1))
        self.box = torch.nn.ModuleList(torch.nn.Conv2d(8, 4 * bins, 1) for _ in strides)
        self.cls = torch.nn.ModuleList(torch.nn.Conv2d(8, classes, 1) for _ in strides)
        self.register_buffer("project", torch.arange(bins, dtype=torch.float32))

    def forward(self, images):
        x = self.downs[0](self.stem(images))  # stride 4
        boxes, scores = [], []
        for level, stride in enumerate(self.strides):
            x = self.downs[level + 1](x)  # stride 8, 16, 32
            h, w = x.shape[-2:]
            dist = self.box[level](x).view(1, 4, self.bins, h * w).softmax(2)
            ltrb = (dist * self.project.view(1, 1, -1, 1)).sum(2)  # (1, 4, hw)
            ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
            anchor = torch.stack([xs.reshape(-1), ys.reshape(-1)])[None]  # (1, 2, hw)
            lt, rb = ltrb[:, :2], ltrb[:, 2:]
            centre = anchor + (rb - lt) / 2
            size = lt + rb
            boxes.append(torch.cat([centre, size], 1) * stride)
            scores.append(self.cls[level](x).view(1, self.classes, h * w).sigmoid())
        return torch.cat([torch.cat(boxes, 2), torch.cat(scores, 2)], 1)


class TinyClassifier(torch.nn.Module):
    """Conv + global pool + linear; ``softmax=True`` ends the graph in a softmax, as PaddleClas and
    PaddleOCR classifiers do."""

    def __init__(self, classes=4, softmax=False):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, 2, 1)
        self.fc = torch.nn.Linear(8, classes)
        self.softmax = softmax

    def forward(self, images):
        logits = self.fc(self.conv(images).mean((2, 3)))
        return logits.softmax(1) if self.softmax else logits


def export_onnx(module, size, path: Path, outputs, dynamic=False, metadata=None, opset=13) -> Path:
    """Export with input ``images``; ``dynamic`` makes batch, height and width dynamic (as
    Ultralytics' ``dynamic=True`` does); ``metadata`` goes into the file's metadata_props."""
    torch.manual_seed(0)
    module.eval()
    axes = {"images": {0: "batch", 2: "height", 3: "width"}} if dynamic else None
    with torch.no_grad():
        torch.onnx.export(
            module,
            torch.zeros(1, 3, *size),
            str(path),
            input_names=["images"],
            output_names=list(outputs),
            opset_version=opset,
            dynamo=False,
            dynamic_axes=axes,
        )
    if metadata:
        model = onnx.load(str(path))
        onnx.helper.set_model_props(model, {key: str(value) for key, value in metadata.items()})
        onnx.save(model, str(path))
    return path

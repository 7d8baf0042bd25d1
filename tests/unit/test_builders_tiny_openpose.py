import numpy as np
import pytest
import torch
from torch import nn

from edgebench.builders.openpose import lightweight_openpose
from edgebench.builders.tiny_yolo import (
    TINY_YOLOV2_VOC_ANCHORS,
    TINY_YOLOV3_ANCHORS,
    tiny_yolov2,
    tiny_yolov3,
)

# name -> (builder, published parameter count, input size, expected output shapes)
MODELS = {
    "tiny_yolov2": (tiny_yolov2, 15.86e6, 416, [(1, 125, 13, 13)]),
    "tiny_yolov3": (tiny_yolov3, 8.86e6, 416, [(1, 255, 13, 13), (1, 255, 26, 26)]),
    "lightweight_openpose": (lightweight_openpose, 4.1e6, 256, [(1, 19, 32, 32), (1, 38, 32, 32)]),
}


@pytest.fixture(scope="module")
def built():
    cache: dict[str, nn.Module] = {}

    def get(name: str) -> nn.Module:
        if name not in cache:
            torch.manual_seed(0)
            cache[name] = MODELS[name][0]().eval()
        return cache[name]

    return get


def _outputs(y) -> list[torch.Tensor]:
    return list(y) if isinstance(y, tuple) else [y]


@pytest.mark.parametrize("name", MODELS)
def test_parameter_count_near_published(built, name):
    published = MODELS[name][1]
    n = sum(p.numel() for p in built(name).parameters())
    assert abs(n - published) / published < 0.10, f"{name}: {n} vs published {published:.0f}"


@pytest.mark.parametrize("name", MODELS)
def test_output_shapes(built, name):
    _, _, size, shapes = MODELS[name]
    with torch.no_grad():
        outs = _outputs(built(name)(torch.zeros(1, 3, size, size)))
    assert [tuple(o.shape) for o in outs] == shapes


def test_openpose_shapes_follow_input_and_stage_count():
    model = lightweight_openpose(num_refinement_stages=2).eval()
    assert len(model.refinement_stages) == 2
    with torch.no_grad():
        heatmaps, pafs = model(torch.zeros(1, 3, 128, 192))
    assert heatmaps.shape == (1, 19, 16, 24)
    assert pafs.shape == (1, 38, 16, 24)


def test_anchor_constants():
    assert len(TINY_YOLOV2_VOC_ANCHORS) == 5
    assert TINY_YOLOV2_VOC_ANCHORS[0] == (1.08, 1.19)
    assert TINY_YOLOV2_VOC_ANCHORS[-1] == (16.62, 10.52)
    assert TINY_YOLOV3_ANCHORS == [[81, 82, 135, 169, 344, 319], [10, 14, 23, 27, 37, 58]]


def test_stride1_maxpool_padding_replicates_edge():
    from edgebench.builders.tiny_yolo import _EdgePadBottomRight

    x = torch.randn(2, 4, 13, 13)
    assert torch.equal(_EdgePadBottomRight()(x), nn.ReplicationPad2d((0, 1, 0, 1))(x))


def _calibrate_batchnorm(model: nn.Module, size: int) -> None:
    # With random init the activations shrink layer by layer to ~1e-10, which makes any parity check
    # vacuous; a few training-mode passes give BN real running statistics (momentum=None: plain average).
    # About half resolution (a multiple of 32, as the YOLO route needs) keeps this cheap; the statistics
    # barely depend on the input size.
    cal = size // 64 * 32
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for _ in range(2):
            model(torch.rand(2, 3, cal, cal, generator=g))
    model.eval()


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_onnx_export_matches_torch(name, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    builder, _, size, shapes = MODELS[name]
    torch.manual_seed(0)
    model = builder()
    _calibrate_batchnorm(model, size)

    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(2))
    path = tmp_path / f"{name}.onnx"
    torch.onnx.export(model.eval(), torch.zeros(1, 3, size, size), str(path), dynamo=False, opset_version=13)

    graph = onnx.load(str(path)).graph
    # No shape arithmetic in the graph: it must stay static for edge runtimes.
    assert not {"ConstantOfShape", "Shape"} & {n.op_type for n in graph.node}

    with torch.no_grad():
        expected = [o.numpy() for o in _outputs(model(x))]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})

    assert [g.shape for g in got] == shapes
    for e, g in zip(expected, got, strict=True):
        scale = float(np.abs(e).max())
        assert scale > 1e-3, "activations collapsed; parity check would be vacuous"
        np.testing.assert_allclose(g, e, rtol=1e-3, atol=1e-3 * scale)

"""Own YOLOv5 / YOLOX builders: parameter counts, output layouts, ONNX export parity."""

import pytest

torch = pytest.importorskip("torch")

from edgebench.builders import yolov5, yolox  # noqa: E402

# Published parameter counts (YOLOv5 v6.0 release table, YOLOX paper / Megvii model zoo).
PUBLISHED_PARAMS = {
    "yolov5n": 1.9e6,
    "yolov5s": 7.2e6,
    "yolov5n6": 3.2e6,
    "yolov5s6": 12.6e6,
    "yolox_nano": 0.91e6,
    "yolox_tiny": 5.06e6,
    "yolox_s": 9.0e6,
}
BUILDERS = {
    "yolov5n": yolov5.yolov5n,
    "yolov5s": yolov5.yolov5s,
    "yolov5n6": yolov5.yolov5n6,
    "yolov5s6": yolov5.yolov5s6,
    "yolox_nano": yolox.yolox_nano,
    "yolox_tiny": yolox.yolox_tiny,
    "yolox_s": yolox.yolox_s,
}


def _num_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {name: build().eval() for name, build in BUILDERS.items()}


@pytest.mark.parametrize("name", list(BUILDERS))
def test_param_count_matches_published(models, name):
    n = _num_params(models[name])
    assert abs(n - PUBLISHED_PARAMS[name]) <= 0.10 * PUBLISHED_PARAMS[name], n


@pytest.mark.parametrize("name", list(BUILDERS))
def test_builder_has_docstring_with_reference(name):
    doc = BUILDERS[name].__doc__
    assert doc and "published" in doc and "M parameters" in doc


def test_anchor_and_stride_constants():
    assert yolov5.STRIDES_P5 == (8, 16, 32)
    assert yolov5.STRIDES_P6 == (8, 16, 32, 64)
    assert yolov5.ANCHORS_P5 == [
        [10, 13, 16, 30, 33, 23],
        [30, 61, 62, 45, 59, 119],
        [116, 90, 156, 198, 373, 326],
    ]
    assert len(yolov5.ANCHORS_P6) == 4
    assert all(len(level) == 6 for level in yolov5.ANCHORS_P6)
    # Anchors grow with the level they belong to.
    areas = [max(w * h for w, h in zip(lv[::2], lv[1::2], strict=True)) for lv in yolov5.ANCHORS_P6]
    assert areas == sorted(areas)


@pytest.mark.parametrize(
    ("name", "size", "strides"),
    [
        ("yolov5n", 256, (8, 16, 32)),
        ("yolov5s", 256, (8, 16, 32)),
        ("yolov5n6", 256, (8, 16, 32, 64)),
        ("yolov5s6", 256, (8, 16, 32, 64)),
    ],
)
def test_yolov5_raw_maps(models, name, size, strides):
    model = models[name]
    assert tuple(model.strides) == strides
    with torch.no_grad():
        outs = model(torch.rand(1, 3, size, size))
    assert isinstance(outs, tuple)
    assert [tuple(o.shape) for o in outs] == [(1, 3 * 85, size // s, size // s) for s in strides]
    # Raw logits: no sigmoid, so values leave [0, 1].
    flat = torch.cat([o.flatten() for o in outs])
    assert flat.min() < 0 or flat.max() > 1


def test_yolov5_num_classes_and_rectangular_input():
    model = yolov5.yolov5n(num_classes=20).eval()
    with torch.no_grad():
        outs = model(torch.rand(1, 3, 128, 192))
    assert [tuple(o.shape) for o in outs] == [(1, 75, 16, 24), (1, 75, 8, 12), (1, 75, 4, 6)]


@pytest.mark.parametrize(("name", "size"), [("yolox_nano", 256), ("yolox_tiny", 256), ("yolox_s", 256)])
def test_yolox_flat_output(models, name, size):
    model = models[name]
    with torch.no_grad():
        out = model(torch.rand(1, 3, size, size))
    cells = [(size // s) ** 2 for s in (8, 16, 32)]
    assert tuple(out.shape) == (1, sum(cells), 85)
    assert torch.all((out[..., 4:] >= 0) & (out[..., 4:] <= 1))
    # Box regression stays raw (not squashed), so some values fall outside [0, 1].
    assert out[..., :4].min() < 0 or out[..., :4].max() > 1


def test_yolox_level_order_is_stride_8_first_row_major():
    model = yolox.yolox_nano(num_classes=3).eval()
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        out = model(x)
        feats = model.neck(model.backbone(x))
        head = model.head
        # Rebuild the stride-8 level by hand and compare with the first block of rows.
        stem = head.stems[0](feats[0])
        reg = head.reg_preds[0](head.reg_convs[0](stem))
    assert tuple(out.shape) == (1, 8 * 12 + 4 * 6 + 2 * 3, 8)
    # Cell (row 1, col 2) of the 8x12 stride-8 grid is row 1 * 12 + 2 of the flat output.
    torch.testing.assert_close(out[0, 14, :4], reg[0, :, 1, 2])


@pytest.mark.slow
@pytest.mark.parametrize(("name", "size"), [("yolov5n", 128), ("yolox_nano", 128)])
def test_onnx_export_matches_torch(models, tmp_path, name, size):
    np = pytest.importorskip("numpy")
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    model = models[name]
    path = tmp_path / f"{name}.onnx"
    torch.onnx.export(model.eval(), torch.zeros(1, 3, size, size), str(path), dynamo=False, opset_version=13)

    x = torch.rand(1, 3, size, size)
    with torch.no_grad():
        expected = model(x)
    expected = expected if isinstance(expected, tuple) else (expected,)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e.numpy(), rtol=1e-3, atol=1e-4)

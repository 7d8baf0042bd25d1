"""bench.py: the measured loop with a fake backend, image listing, warm-up split, OOM detection."""

import numpy as np
import pytest

from edgebench_runtime import bench
from edgebench_runtime.bench import NoReadableImages, is_memory_error, measure
from edgebench_runtime.imaging import ImageDecodeError, ImageSourceError, list_images
from edgebench_runtime.results import TimingsWriter, read_timings


class FakeBackend:
    input_names = ("input",)

    def __init__(self):
        self.calls = 0

    def infer(self, feeds):
        self.calls += 1
        assert feeds["input"].dtype == np.float32
        return [np.zeros((1, 10), np.float32)]


class FakePipeline:
    def preprocess(self, image):
        return {"input": image.astype(np.float32)}, {"original": image.shape[:2]}

    def postprocess(self, outputs, geometry):
        return {"n": 1}

    def brief(self, result):
        return "a,b"  # commas must not break the CSV


def fake_decode(path):
    if "bad" in path:
        raise ImageDecodeError(f"cannot decode {path}")
    return np.zeros((4, 4, 3), np.uint8)


def test_measure_streams_rows_and_skips_unreadable(tmp_path):
    images = ["/x/a.jpg", "/x/bad.jpg", "/x/c,d.jpg"]
    writer = TimingsWriter(str(tmp_path / "timings.csv"))
    unreadable = set()
    backend = FakeBackend()
    seq = measure(
        backend, FakePipeline(), images, writer, 0, 5, 0, 0, decode=fake_decode, unreadable=unreadable
    )
    writer.close()
    rows = read_timings(str(tmp_path / "timings.csv"))
    assert rows["index"].tolist() == [0, 1, 2, 3, 4]
    assert rows["seq"].tolist() == [0, 2, 3, 5, 6]  # bad.jpg tried once, then skipped without decoding
    assert rows["image"] == ["a.jpg", "c_d.jpg", "a.jpg", "c_d.jpg", "a.jpg"]
    assert rows["result"] == ["a_b"] * 5
    assert unreadable == {"bad.jpg"}
    assert backend.calls == 5 and seq == 7
    assert (rows["infer_ms"] >= 0).all()
    # resume from the next image
    writer = TimingsWriter(str(tmp_path / "timings.csv"))
    measure(backend, FakePipeline(), images, writer, 5, 7, seq, 1, decode=fake_decode)
    writer.close()
    rows = read_timings(str(tmp_path / "timings.csv"))
    assert rows["index"].tolist() == list(range(7)) and rows["segment"].tolist()[-2:] == [1, 1]


def test_measure_with_no_readable_image_fails(tmp_path):
    writer = TimingsWriter(str(tmp_path / "timings.csv"))
    with pytest.raises(NoReadableImages):
        measure(
            FakeBackend(), FakePipeline(), ["/bad1.jpg", "/bad2.jpg"], writer, 0, 3, 0, 0, decode=fake_decode
        )
    writer.close()


def test_list_images(tmp_path):
    with pytest.raises(ImageSourceError, match="does not exist"):
        list_images(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ImageSourceError, match="holds no"):
        list_images(tmp_path)
    for name in ("b.JPG", "a.png", "c.jpeg"):
        (tmp_path / name).write_bytes(b"")
    assert [p.rsplit("/", 1)[1] for p in list_images(tmp_path)] == ["a.png", "b.JPG", "c.jpeg"]
    with pytest.raises(ImageSourceError, match="not a folder"):
        list_images(tmp_path / "notes.txt")


def test_split_warmup_keeps_images_apart():
    paths = [f"{i:02d}.jpg" for i in range(10)]
    measured, warm, disjoint = bench.split_warmup(paths, 50)
    assert disjoint and not set(measured) & set(warm) and len(warm) == 2
    assert bench.split_warmup(paths, 0) == (paths, [], True)
    assert bench.split_warmup(["one.jpg"], 5) == (["one.jpg"], ["one.jpg"], False)


def test_memory_errors_are_recognised():
    assert is_memory_error(MemoryError())
    assert is_memory_error(
        RuntimeError("... Failed to allocate memory for requested buffer of size 1073565696")
    )
    assert is_memory_error(RuntimeError("std::bad_alloc"))
    assert not is_memory_error(RuntimeError("shape mismatch"))

"""predictions.jsonl (edgebench_runtime/predictions.py and the measured loop): one line per distinct
image on its first pass, written outside the timed phases, resumable past a torn line, and moved or
cleared with the rows it belongs to."""

import json
import time

import numpy as np
import pytest

from edgebench_runtime import resume
from edgebench_runtime.bench import _warmup, measure
from edgebench_runtime.imaging import ImageDecodeError
from edgebench_runtime.predictions import (
    PREDICTIONS_FILE,
    PredictionRecorder,
    UnknownResult,
    read_predictions,
    result_as_data,
)
from edgebench_runtime.results import TimingsWriter, read_timings

MANIFEST = {"decoder": {"name": "imagenet_topk"}, "labels": ["cat", "dog", "fox"]}


class Backend:
    input_names = ("input",)
    last_breakdown = None

    def infer(self, feeds):
        return [feeds["input"]]


class Pipeline:
    """Classifies an image by its first pixel: 0 -> cat, 1 -> dog, 2 -> fox."""

    def preprocess(self, image):
        return {"input": image}, {"original": image.shape[:2]}

    def postprocess(self, outputs, geometry):
        best = int(outputs[0][0, 0, 0])
        order = [best] + [c for c in range(3) if c != best]
        return {
            "classes": np.array(order),
            "scores": np.array([0.9, 0.07, 0.03], np.float32),
            "labels": [MANIFEST["labels"][c] for c in order],
        }

    def brief(self, result):
        return str(result["classes"][0])


def decode(path):
    if "bad" in path:
        raise ImageDecodeError(path)
    return np.full((2, 2, 3), int(path[-5]), np.uint8)  # "/d/x1.png" -> 1


def test_each_image_is_recorded_once_on_its_first_pass(tmp_path):
    images = ["/d/a0.png", "/d/bad9.png", "/d/b1.png", "/d/c2.png"]
    writer = TimingsWriter(str(tmp_path / "timings.csv"))
    recorder = PredictionRecorder(str(tmp_path / PREDICTIONS_FILE), MANIFEST)
    measure(Backend(), Pipeline(), images, writer, 0, 7, 0, 0, decode=decode, recorder=recorder)
    writer.close()
    recorder.close()
    records = read_predictions(str(tmp_path / PREDICTIONS_FILE))
    assert [r["image"] for r in records] == ["a0.png", "b1.png", "c2.png"]  # 7 rows, cycled twice
    assert [r["result"]["top"][0]["label"] for r in records] == ["cat", "dog", "fox"]
    assert records[1]["result"]["top"][0] == {"label": "dog", "score": 0.9, "index": 1}
    assert {r["from"] for r in records} == {"measured"}
    assert len(read_timings(str(tmp_path / "timings.csv"))["index"]) == 7


def test_recording_is_outside_the_timed_phases(tmp_path):
    class SlowRecorder(PredictionRecorder):
        def record(self, image, result, source="measured"):
            time.sleep(0.05)
            super().record(image, result, source)

    writer = TimingsWriter(str(tmp_path / "timings.csv"))
    recorder = SlowRecorder(str(tmp_path / PREDICTIONS_FILE), MANIFEST)
    measure(
        Backend(),
        Pipeline(),
        ["/d/a0.png", "/d/b1.png"],
        writer,
        0,
        4,
        0,
        0,
        decode=decode,
        recorder=recorder,
    )
    writer.close()
    recorder.close()
    rows = read_timings(str(tmp_path / "timings.csv"))
    total = rows["decode_ms"] + rows["pre_ms"] + rows["infer_ms"] + rows["post_ms"]
    assert total.max() < 25.0  # the 50 ms of each record call is in none of them


def test_warm_up_images_kept_apart_are_recorded_from_the_warm_up(tmp_path):
    recorder = PredictionRecorder(str(tmp_path / PREDICTIONS_FILE), MANIFEST)
    _warmup(Backend(), Pipeline(), ["/d/z2.png"], 3, decode=decode, recorder=recorder)
    recorder.close()
    assert [(r["image"], r["from"]) for r in read_predictions(str(tmp_path / PREDICTIONS_FILE))] == [
        ("z2.png", "warmup")
    ]


def test_a_resumed_run_appends_after_cutting_a_torn_last_line(tmp_path):
    path = tmp_path / PREDICTIONS_FILE
    whole = json.dumps({"image": "a0.png", "from": "measured", "result": {"top": []}})
    path.write_text(whole + "\n" + '{"image": "b1.png", "res')  # killed mid-write
    assert [r["image"] for r in read_predictions(str(path))] == ["a0.png"]
    recorder = PredictionRecorder(str(path), MANIFEST)
    writer = TimingsWriter(str(tmp_path / "timings.csv"))
    measure(
        Backend(),
        Pipeline(),
        ["/d/a0.png", "/d/b1.png"],
        writer,
        0,
        2,
        0,
        1,
        decode=decode,
        recorder=recorder,
    )
    writer.close()
    recorder.close()
    lines = path.read_text().splitlines()
    assert lines[0] == whole  # a0 kept as it was, not written again
    assert [json.loads(line)["image"] for line in lines] == ["a0.png", "b1.png"]


def test_a_result_without_a_json_form_is_named():
    with pytest.raises(UnknownResult, match="decoder imagenet_topk gave a result with no JSON form"):
        result_as_data(MANIFEST, {"heatmap": 1})
    with pytest.raises(UnknownResult, match="classes: 2 values but 1 labels"):
        result_as_data(MANIFEST, {"classes": [1, 2], "scores": [0.5, 0.5], "labels": ["cat"]})


def test_predictions_are_set_aside_and_cleared_with_their_rows(tmp_path):
    for name in ("timings.csv", "summary.json", PREDICTIONS_FILE):
        (tmp_path / name).write_text("x")
    resume.set_aside(str(tmp_path))
    assert (tmp_path / ("interrupted-1." + PREDICTIONS_FILE)).exists()
    assert not (tmp_path / PREDICTIONS_FILE).exists()
    (tmp_path / PREDICTIONS_FILE).write_text("x")
    resume.clear_results(str(tmp_path))
    assert not (tmp_path / PREDICTIONS_FILE).exists()

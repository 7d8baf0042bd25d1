"""edgebench.predict: every task's decoded result as JSON-ready data, and drawn."""

import json

import numpy as np

from edgebench.predict import draw, result_as_data, result_text


def test_each_task_as_data_text_and_drawing(tmp_path):
    image = np.zeros((40, 60, 3), np.uint8)
    boxes = np.array([[1.234, 2, 30.5, 20, 0.87654, 3]], np.float32)
    cases = {
        "ssd": (
            {"boxes": boxes, "labels": ["cat"]},
            {"boxes": [{"label": "cat", "score": 0.8765, "box": [1.23, 2.0, 30.5, 20.0]}]},
        ),
        "imagenet_topk": (
            {
                "classes": np.array([7, 2]),
                "scores": np.array([0.9, 0.05], np.float32),
                "labels": ["cock", "shark"],
            },
            {
                "top": [
                    {"label": "cock", "score": 0.9, "index": 7},
                    {"label": "shark", "score": 0.05, "index": 2},
                ]
            },
        ),
    }
    people = np.full((1, 3, 3), -1.0, np.float32)
    people[0, 0] = [10, 12, 0.9]
    people[0, 2] = [20, 22, 0.5]
    cases["openpose_paf"] = (
        {"people": people, "scores": np.array([0.7], np.float32)},
        {
            "people": [
                {"score": 0.7, "keypoints": {"nose": [10.0, 12.0, 0.9], "right_shoulder": [20.0, 22.0, 0.5]}}
            ]
        },
    )
    mask = np.zeros((40, 60), np.uint8)
    mask[:10] = 2
    cases["seg_argmax"] = (
        {
            "mask": mask,
            "histogram": np.bincount(mask.ravel(), minlength=3),
            "classes": np.array([0, 2]),
            "labels": ["bg", "car"],
        },
        {
            "size": [40, 60],
            "classes": [
                {"label": "bg", "pixels": 1800, "fraction": 0.75},
                {"label": "car", "pixels": 600, "fraction": 0.25},
            ],
        },
    )
    for decoder, (result, expected) in cases.items():
        manifest = {"decoder": {"name": decoder}, "labels": ["nose", "neck", "right_shoulder"]}
        data = result_as_data(manifest, result)
        assert data == expected, decoder
        json.dumps(data)  # plain data
        assert result_text("m", data, 1.0).startswith("m: inference 1.0 ms")
        draw(image, manifest, result, data, tmp_path / f"{decoder}.png")
        assert (tmp_path / f"{decoder}.png").stat().st_size > 0
    assert "no boxes above the score threshold" in result_text("m", {"boxes": []}, 1.0)
    assert result_as_data({"decoder": {"name": "raw"}}, None)["decoder"] == "raw"

"""What a model predicted for each image of a run, kept for scoring accuracy on the controller.

``predictions.jsonl`` in a run's directory holds one JSON line per distinct image, written on the
image's first pass (cycled repeats are not written again):
``{"image": FILE NAME, "from": "measured" | "warmup", "result": DATA}``, where DATA is the decoded
result in the shape ``edgebench predict --json`` prints (:func:`result_as_data`, the one
definition of it; the controller imports it from here). Lines are written after the timed phases of
an image; a resumed run appends, and a torn last line (the process killed mid-write) is cut before
it does, and skipped by :func:`read_predictions`.

Python 3.6 compatible.
"""

import json
import os
from typing import Any, Dict, List, Optional, Set, Tuple  # noqa: F401 - Set, Optional in type comments

from .results import AppendFile

__all__ = [
    "PREDICTIONS_FILE",
    "PredictionRecorder",
    "UnknownResult",
    "read_predictions",
    "result_as_data",
]

PREDICTIONS_FILE = "predictions.jsonl"


class UnknownResult(ValueError):
    """A decoder returned a result of a shape that has no JSON form here."""


def _round(value: Any, digits: int = 2) -> float:
    return round(float(value), digits)


def _pairs(first: Any, second: Any, what: str) -> List[Tuple[Any, Any]]:
    first, second = list(first), list(second)
    if len(first) != len(second):
        raise UnknownResult("%s: %d values but %d labels" % (what, len(first), len(second)))
    return list(zip(first, second))  # noqa: B905 - strict= is Python 3.10+; lengths checked above


def result_as_data(manifest: Dict[str, Any], result: Any) -> Dict[str, Any]:
    """The decoded result as JSON-ready data, coordinates in original-image pixels: detection
    ``{"boxes": [{"label", "score", "box": [x1, y1, x2, y2]}]}``, classification ``{"top": [{"label",
    "score", "index"}]}`` (best first), pose ``{"people": [{"score", "keypoints": {name: [x, y,
    score]}}]}``, segmentation ``{"size", "classes": [{"label", "pixels", "fraction"}]}``; ``raw``
    decoders ``{"decoder", "note"}``."""
    decoder = (manifest.get("decoder") or {}).get("name", "raw")
    if result is None:
        return {"decoder": decoder, "note": "decoder raw: outputs are not decoded"}
    if "boxes" in result:
        return {
            "boxes": [
                {"label": label, "score": _round(row[4], 4), "box": [_round(v) for v in row[:4]]}
                for row, label in _pairs(result["boxes"].tolist(), result["labels"], "boxes")
            ]
        }
    if "scores" in result and "classes" in result:
        ranked = _pairs(
            zip(result["classes"], result["scores"]),  # noqa: B905 - Python 3.6; _pairs checks lengths
            result["labels"],
            "classes",
        )
        return {
            "top": [
                {"label": label, "score": _round(score, 4), "index": int(index)}
                for (index, score), label in ranked
            ]
        }
    if "people" in result:
        names = manifest.get("labels") or []
        people = []
        for person, score in _pairs(result["people"], result["scores"], "people"):
            keypoints = {}
            for index, (x, y, confidence) in enumerate(person.tolist()):
                if confidence > 0:
                    name = names[index] if index < len(names) else str(index)
                    keypoints[name] = [_round(x), _round(y), _round(confidence, 3)]
            people.append({"score": _round(score, 4), "keypoints": keypoints})
        return {"people": people}
    if "mask" in result:
        total = float(result["mask"].size)
        return {
            "size": list(result["mask"].shape),
            "classes": [
                {
                    "label": label,
                    "pixels": int(result["histogram"][c]),
                    "fraction": _round(result["histogram"][c] / total, 4),
                }
                for c, label in _pairs(result["classes"].tolist(), result["labels"], "classes")
            ],
        }
    raise UnknownResult("decoder %s gave a result with no JSON form: %s" % (decoder, sorted(result)))


def _complete_lines(data: bytes) -> Tuple[List[Dict[str, Any]], int]:
    """The records of the file's bytes and the length of the part that holds them: everything up to
    the last newline whose lines parse (a torn or garbled tail is left out)."""
    records = []
    end = 0
    for line in data.split(b"\n")[:-1]:  # the part after the last newline is never a whole line
        try:
            record = json.loads(line.decode("utf-8"))
        except ValueError:
            break
        if not isinstance(record, dict) or "image" not in record:
            break
        records.append(record)
        end += len(line) + 1
    return records, end


def read_predictions(path: str) -> List[Dict[str, Any]]:
    """Every whole record of a predictions file (none when it is absent); a torn last line is
    skipped."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except (IOError, OSError):
        return []
    return _complete_lines(data)[0]


class PredictionRecorder(AppendFile):
    """Appends the first result of each image to ``predictions.jsonl``: one ``write`` per line,
    ``fsync`` on close. Opening it on an existing file (a resumed run) cuts a torn tail and
    remembers the images already written, so none is written twice."""

    def __init__(self, path: str, manifest: Dict[str, Any]) -> None:
        self.path = path
        self.manifest = manifest
        self.seen = set()  # type: Set[str]
        existing = b""
        if os.path.exists(path):
            with open(path, "rb") as handle:
                existing = handle.read()
        records, end = _complete_lines(existing)
        self.seen.update(str(record["image"]) for record in records)
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)  # type: Optional[int]
        if end != len(existing):
            os.ftruncate(self.fd, end)
        os.lseek(self.fd, 0, os.SEEK_END)

    def record(self, image: str, result: Any, source: str = "measured") -> None:
        """Write ``image``'s result unless the image has one already."""
        if image in self.seen or self.fd is None:
            return
        line = json.dumps(
            {"image": image, "from": source, "result": result_as_data(self.manifest, result)},
            sort_keys=True,
        )
        self._write((line + "\n").encode("utf-8"))
        self.seen.add(image)

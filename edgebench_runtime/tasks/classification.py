"""``imagenet_topk``: softmax over the class logits, the top-k (default 5) with labels.

Decoder parameters (manifest ``decoder`` block): ``top_k`` (or ``k``; default 5); ``softmax``
(default true; false when the graph already ends in a softmax); ``label_offset`` (default 0: the
index of the first label in the output vector, 1 for models with a background class).

Python 3.6 compatible.
"""

from typing import Any, ClassVar, Dict, List, Optional

import numpy as np

from .base import Decoder, register_decoder, softmax

__all__ = ["ImagenetTopK"]


@register_decoder("imagenet_topk")
class ImagenetTopK(Decoder):
    parameters: ClassVar[dict] = {
        "top_k": "int",
        "k": "int",
        "topk": "int",
        "softmax": "bool",
        "label_offset": "int",
    }

    def __init__(self, manifest: Dict[str, Any], params: Optional[Dict[str, Any]] = None) -> None:
        Decoder.__init__(self, manifest, params)
        self.k = int(self.params.get("top_k", self.params.get("k", self.params.get("topk", 5))))
        self.apply_softmax = bool(self.params.get("softmax", True))
        self.label_offset = int(self.params.get("label_offset", 0))

    def __call__(self, outputs: List[np.ndarray], geometry: Dict[str, Any]) -> Dict[str, Any]:
        logits = outputs[0].reshape(-1)
        probs = softmax(logits) if self.apply_softmax else logits.astype(np.float32, copy=False)
        k = min(self.k, probs.shape[0])
        top = np.argpartition(-probs, k - 1)[:k]
        top = top[np.argsort(-probs[top], kind="stable")]
        labels = self.labels
        names = []
        for index in top:
            label_index = int(index) - self.label_offset
            names.append(labels[label_index] if 0 <= label_index < len(labels) else str(int(index)))
        return {"classes": top, "scores": probs[top], "labels": names}

    def brief(self, result: Dict[str, Any]) -> str:
        return "%d:%.4f" % (int(result["classes"][0]), float(result["scores"][0]))

"""The words of edgebench, defined once: result statuses, providers and their precisions, modes.

The runtime, the run plan's check (``plan.py``), the validate play (through ``edgebench plan-check``),
the report and both command lines use these; nothing else spells them out.

Python 3.6 compatible; imports nothing of the runtime (the bottom layer).
"""

from typing import List, Optional, Tuple

__all__ = [
    "BAD_STATUSES",
    "MODES",
    "PRECISIONS",
    "PROVIDER_FAMILIES",
    "STATUSES",
    "STATUS_MEANINGS",
    "TENSORRT_DEFAULT_PRECISION",
    "parse_provider",
    "provider_name",
    "provider_names",
]

#: How a run (one model x provider x mode on one device) ended, in ``summary.json``'s ``status``.
STATUS_MEANINGS = (
    ("complete", "every requested image measured"),
    ("partial", "stopped early without an error of its own (the runtime was interrupted)"),
    ("failed", "an exception, a corrupt artifact, a full disk, a crash: the reason says which"),
    ("oom", "out of memory: MemoryError/allocation failure, or SIGKILL with the kernel's OOM evidence"),
    ("timeout", "the per-run timeout elapsed; the child was killed"),
    ("skipped", "not run: the provider is unavailable on this device (the reason says why)"),
)
STATUSES = tuple(word for word, _meaning in STATUS_MEANINGS)
#: Statuses that make ``edgebench-runtime run`` exit "incomplete" and the report list a failure.
BAD_STATUSES = ("failed", "oom", "timeout", "partial")

#: Execution providers by family: ``cpu`` and ``cuda`` run through ONNX Runtime, ``tensorrt``
#: through TensorRT's own API with an engine per precision.
PROVIDER_FAMILIES = ("cpu", "cuda", "tensorrt")
#: TensorRT engine precisions; a TensorRT provider is named ``tensorrt-<precision>``.
PRECISIONS = ("fp32", "fp16", "int8")
TENSORRT_DEFAULT_PRECISION = "fp16"
#: warm: one session, warm-up inferences, then the images; cold: a new process and session per image.
MODES = ("warm", "cold")


def parse_provider(provider: str) -> Tuple[str, Optional[str]]:
    """``"tensorrt-fp16"`` -> ``("tensorrt", "fp16")``; ``"cpu"`` -> ``("cpu", None)``."""
    text = str(provider).strip().lower()
    if "-" in text:
        family, precision = text.split("-", 1)
        return family, precision
    return text, None


def provider_name(family: str, precision: Optional[str] = None) -> str:
    """The provider's one name: ``tensorrt-fp16`` for TensorRT (its default precision when none is
    given), the family alone for the others."""
    if family == "tensorrt":
        return "%s-%s" % (family, precision or TENSORRT_DEFAULT_PRECISION)
    return family


def provider_names(families: List[str], precisions: List[str]) -> List[str]:
    """Provider names for families and TensorRT precisions: ``[cpu, tensorrt]`` x ``[fp16, int8]`` ->
    ``[cpu, tensorrt-fp16, tensorrt-int8]``."""
    names = []
    for family in families:
        if family == "tensorrt":
            names.extend(provider_name(family, p) for p in (precisions or [TENSORRT_DEFAULT_PRECISION]))
        else:
            names.append(provider_name(family))
    return names

"""The ``engines`` command: build (or find cached) the TensorRT engine of each model x precision
before the run phase, so a run finds its engine instead of building it on the clock.

A command over the TensorRT backend (``backends/tensorrt.py``), which in turn uses the engine
library (``engines.py``); the command is kept out of that library so the library never imports the
backend above it.

Python 3.6 compatible.
"""

import os
import sys
from typing import Callable, List, Optional

from .backends.base import ProviderUnavailable
from .backends.tensorrt import TensorRTBackend
from .engines import DEFAULT_WORKSPACE_MB
from .manifest import ArtifactError, verify_artifact
from .vocabulary import PRECISIONS

__all__ = ["build_engines"]


def build_engines(
    artifacts_dir: str,
    models: List[str],
    precisions: List[str],
    workspace_mb: int = DEFAULT_WORKSPACE_MB,
    engine_cache: Optional[str] = None,
    calibration_images: Optional[str] = None,
    device_id: int = 0,
    write: Optional[Callable[[str], None]] = None,
) -> int:
    """The ``engines`` command: build (or find cached) one engine per model x precision, one line
    each on ``write`` containing ``built``, ``cached`` or ``skipped`` (or ``FAILED``).

    Returns an exit code: 0 all built / cached / skipped, 2 unknown precision, 3 input error (no
    TensorRT here, artifacts dir or model missing), 4 at least one model failed (corrupt artifact,
    parser or builder error)."""
    write = write or (lambda text: sys.stdout.write(text + "\n"))
    err = lambda text: sys.stderr.write("edgebench-runtime engines: %s\n" % text)  # noqa: E731
    for precision in precisions:
        if precision not in PRECISIONS:
            err("unknown precision %r (known: %s)" % (precision, ", ".join(PRECISIONS)))
            return 2
    ok, reason = TensorRTBackend.availability("tensorrt")
    if not ok:
        err("TensorRT is not available on this device: %s" % reason)
        return 3
    if not os.path.isdir(str(artifacts_dir)):
        err("artifacts directory %s does not exist" % artifacts_dir)
        return 3
    missing = [m for m in models if not os.path.isfile(os.path.join(str(artifacts_dir), m, "manifest.json"))]
    if missing or not models:
        err("no artifact for %s in %s" % (", ".join(missing) or "(no models given)", artifacts_dir))
        return 3
    code = 0
    options = {"workspace_mb": workspace_mb, "device_id": device_id}
    if engine_cache:
        options["engine_cache"] = engine_cache
    if calibration_images:
        options["calibration_images"] = calibration_images
    for model in models:
        artifact_dir = os.path.join(str(artifacts_dir), model)
        try:
            manifest = verify_artifact(artifact_dir)
        except ArtifactError as exc:
            write("%s: FAILED: artifact check failed: %s" % (model, exc))
            code = 4
            continue
        for precision in precisions:
            label = "%s tensorrt-%s" % (model, precision)
            backend = TensorRTBackend("tensorrt-" + precision, {"provider_options": options})
            try:
                backend.check_usable()
                info = backend.prepare_engine(artifact_dir, manifest)
            except ProviderUnavailable as exc:
                write("%s: skipped: %s" % (label, exc))
                continue
            except Exception as exc:
                write("%s: FAILED: %s: %s" % (label, type(exc).__name__, str(exc).replace("built", "made")))
                code = 4
                continue
            finally:
                backend.close()
            if info["status"] == "built":
                write(
                    "%s: built in %.1f s -> %s%s"
                    % (
                        label,
                        (info.get("build_ms") or 0.0) / 1e3,
                        info["path"],
                        (" (%s)" % info["rebuilt_because"]) if info.get("rebuilt_because") else "",
                    )
                )
            else:
                write("%s: cached -> %s" % (label, info["path"]))
    return code

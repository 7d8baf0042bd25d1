"""The backend seam: what the measured loop needs from an inference runtime.

A backend is created for one provider string (``cpu``, ``cuda``, ``tensorrt-fp16``, ...), loaded
once with an artifact, called once per image with the input feeds, and closed. ``infer`` must
include everything the design counts as inference: for TensorRT the host-to-device and
device-to-host copies of every input and output, with the stream synchronised before returning.

Python 3.6 compatible.
"""

from typing import Any, Dict, List, Optional, Tuple

from ..vocabulary import parse_provider

# parse_provider is defined once, in the vocabulary; re-exported for the backends that import it here.
__all__ = ["BREAKDOWN", "Backend", "ProviderUnavailable", "parse_provider"]

#: The stages of one inference a backend may time on the device itself (trtexec's breakdown:
#: host-to-device copies, GPU compute, device-to-host copies), in ms, as ``last_breakdown``.
BREAKDOWN = ("h2d_ms", "gpu_compute_ms", "d2h_ms")


class ProviderUnavailable(Exception):
    """The device lacks this provider (library, driver or hardware): the run is ``skipped``."""


class Backend(object):
    """Base class. Subclasses set ``name`` and implement the five methods below."""

    name = "base"
    #: provider families this backend serves, e.g. ("cpu", "cuda")
    families = ()
    #: True when ``infer`` times the BREAKDOWN stages; after each ``infer`` ``last_breakdown`` holds
    #: a tuple of ms per stage (None where not measured)
    measures_breakdown = False
    last_breakdown = None

    def __init__(self, provider: str, options: Optional[Dict[str, Any]] = None) -> None:
        self.provider = provider
        self.family, self.precision = parse_provider(provider)
        self.options = dict(options or {})
        self.input_names = []  # type: List[str]
        self.output_names = []  # type: List[str]

    @classmethod
    def availability(cls, provider: str) -> Tuple[bool, Optional[str]]:
        """``(True, None)`` or ``(False, reason)``, cheaply and without loading a model."""
        return False, "backend %s does not implement availability()" % cls.name

    def version(self) -> Optional[str]:
        raise NotImplementedError

    def load(self, artifact_dir: str, manifest: Dict[str, Any]) -> None:
        """Prepare to run the artifact's model. Raises ProviderUnavailable when the provider
        turns out to be missing only at load time (e.g. ONNX Runtime silently falling back)."""
        raise NotImplementedError

    def infer(self, feeds: Dict[str, Any]) -> List[Any]:
        """Run one inference: ``feeds`` maps input name -> array; returns the outputs as a list
        of numpy arrays in ``self.output_names`` order."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the session/engine; safe to call twice."""

    def details(self) -> Dict[str, Any]:
        """Everything that influences the timings, recorded in summary.json."""
        return {"name": self.name, "version": self.version(), "provider": self.provider}

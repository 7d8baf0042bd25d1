"""ONNX Runtime backend for the ``cpu`` and ``cuda`` providers.

Thread counts, graph optimisation level, provider options and session config entries are
configurable and all recorded in ``details()``. ONNX Runtime falls back to the CPU silently when a
requested provider cannot be created; ``load`` checks the session's active providers and raises
ProviderUnavailable instead, so a missing CUDA is reported ``skipped`` and never faked.

Python 3.6 compatible.
"""

import os
from typing import Any, Dict, List, Optional, Tuple

from ..provisioned import absent_reasons
from .base import Backend, ProviderUnavailable, parse_provider

__all__ = ["GRAPH_OPT_LEVELS", "OrtBackend"]

ORT_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
GRAPH_OPT_LEVELS = ("disable", "basic", "extended", "all")


def _ort():
    import onnxruntime

    return onnxruntime


class OrtBackend(Backend):
    name = "onnxruntime"
    families = ("cpu", "cuda")

    def __init__(self, provider: str, options: Optional[Dict[str, Any]] = None) -> None:
        Backend.__init__(self, provider, options)
        self.threads = self.options.get("threads")
        self.inter_op_threads = self.options.get("inter_op_threads")
        self.graph_opt = self.options.get("graph_optimization_level", "all")
        if self.graph_opt not in GRAPH_OPT_LEVELS:
            raise ValueError("graph optimisation level must be one of %s" % ", ".join(GRAPH_OPT_LEVELS))
        self.provider_options = dict(self.options.get("provider_options") or {})
        self.session_config = dict(self.options.get("session_config") or {})
        self.session = None
        self.model_path = None
        self.active_providers = []
        self._run = None

    @classmethod
    def availability(cls, provider: str) -> Tuple[bool, Optional[str]]:
        family, precision = parse_provider(provider)
        if family not in ORT_PROVIDERS:
            return False, "onnxruntime does not serve provider %r" % provider
        if precision is not None:
            return False, "onnxruntime provider %r takes no precision suffix" % provider
        try:
            ort = _ort()
        except ImportError as exc:
            return False, "onnxruntime is not importable: %s" % exc
        wanted = ORT_PROVIDERS[family]
        available = ort.get_available_providers()
        if wanted not in available:
            reason = "%s is not among this onnxruntime's providers (%s %s: %s)" % (
                wanted,
                getattr(ort, "__name__", "onnxruntime"),
                ort.__version__,
                ", ".join(available),
            )
            notes = absent_reasons(("onnxruntime-gpu",)) if family == "cuda" else []
            return False, "; ".join([reason] + ["provisioning: %s" % note for note in notes])
        return True, None

    def version(self) -> Optional[str]:
        return _ort().__version__

    def load(self, artifact_dir: str, manifest: Dict[str, Any]) -> None:
        ort = _ort()
        ok, reason = self.availability(self.provider)
        if not ok:
            raise ProviderUnavailable(reason)
        options = ort.SessionOptions()
        if self.threads:
            options.intra_op_num_threads = int(self.threads)
        if self.inter_op_threads:
            options.inter_op_num_threads = int(self.inter_op_threads)
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[self.graph_opt]
        options.log_severity_level = 3
        for key, value in sorted(self.session_config.items()):
            options.add_session_config_entry(str(key), str(value))
        wanted = ORT_PROVIDERS[self.family]
        providers = [wanted] if wanted == "CPUExecutionProvider" else [wanted, "CPUExecutionProvider"]
        provider_options = [dict((str(k), str(v)) for k, v in self.provider_options.items())]
        if len(providers) == 2:
            provider_options.append({})
        self.model_path = os.path.join(str(artifact_dir), manifest.get("model_file", "model.onnx"))
        session = ort.InferenceSession(
            self.model_path, sess_options=options, providers=providers, provider_options=provider_options
        )
        self.active_providers = list(session.get_providers())
        if wanted not in self.active_providers:
            raise ProviderUnavailable(
                "onnxruntime could not create %s on this device (active: %s)"
                % (wanted, ", ".join(self.active_providers))
            )
        self.session = session
        self.input_names = [item.name for item in session.get_inputs()]
        self.output_names = [item.name for item in session.get_outputs()]
        self._run = session.run

    def infer(self, feeds: Dict[str, Any]) -> List[Any]:
        return self._run(self.output_names, feeds)

    def close(self) -> None:
        self.session = None
        self._run = None

    def details(self) -> Dict[str, Any]:
        data = Backend.details(self)
        data.update(
            {
                "model_file": os.path.basename(self.model_path) if self.model_path else None,
                "threads": self.threads,
                "inter_op_threads": self.inter_op_threads,
                "execution_mode": "sequential",
                "graph_optimization_level": self.graph_opt,
                "provider_options": self.provider_options,
                "session_config": self.session_config,
                "active_providers": self.active_providers,
            }
        )
        return data

"""The run plan: what ``edgebench-runtime run`` measures, and how, in one place.

The validate play computes the plan once per device (``edgebench_plan``, from the ``edgebench_*``
variables), checks it with :func:`check_plan` on the controller (``edgebench plan-check``), and the
engines and run roles push it into the device's working directory as ``plan-<run_id>.json``:
``edgebench-runtime run --plan`` and ``edgebench-runtime engines --plan`` read that file, so the
engines the engines phase builds are the ones the run phase looks up (same workspace, same
calibration images).

A plan file (schema 1)::

    {"schema_version": 1, "run_id": "20260101T000000Z",
     "models": ["mobilenet_v3_small"], "providers": ["cpu", "tensorrt-fp16"], "modes": ["warm"],
     "images": {"source": null, "count": 100, "warmup": 10}, "predictions": false,
     "validity": {"min_duration_s": 3, "max_images": 10000},
     "threads": null, "timeout_s": 1800, "cooldown": "none", "reboot_policy": "never",
     "tensorrt": {"workspace_mb": 1024, "calibration_images": null},
     "paths": {"artifacts": "~/edgebench/artifacts", "output": "~/edgebench/results/<run_id>/<host>"}}

Providers carry their precision in their name (:mod:`vocabulary`), the one form every phase uses.
``predictions``: every run also writes each image's decoded result to ``predictions.jsonl``
(:mod:`predictions`), from which the controller scores accuracy on a labelled set.

Python 3.6 compatible.
"""

import difflib
import json
import os
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence

from .cooldown import parse_policy
from .imaging import ImageSourceError, list_images
from .vocabulary import MODES, PRECISIONS, PROVIDER_FAMILIES, parse_provider

__all__ = [
    "PLAN_SCHEMA_VERSION",
    "REBOOT_POLICIES",
    "InputError",
    "Plan",
    "UsageError",
    "check_plan",
    "load_plan",
    "read_plan",
    "tensorrt_options",
    "validate",
]

PLAN_SCHEMA_VERSION = 1
#: never: the device stays up; per_model / per_application: rebooted between units of work (the
#: run role does it; the runtime records the policy, which moves timings).
REBOOT_POLICIES = ("never", "per_model", "per_application")


class UsageError(Exception):
    """Bad arguments or plan: unknown provider or mode, bad cooldown policy (exit 2)."""


class InputError(Exception):
    """Missing artifacts/model/images, output dir not writable (exit 3)."""


class Plan(object):
    """Everything ``run`` needs; the CLI fills it from a plan file or from arguments."""

    def __init__(
        self,
        artifacts_dir: str,
        models: List[str],
        providers: Sequence[str] = ("cpu",),
        modes: Sequence[str] = ("warm",),
        images_dir: Optional[str] = None,
        count: int = 100,
        warmup: int = 10,
        threads: Optional[int] = None,
        inter_op_threads: Optional[int] = None,
        graph_optimization_level: str = "all",
        provider_options: Optional[Dict[str, Any]] = None,
        session_config: Optional[Dict[str, Any]] = None,
        timeout_s: Optional[float] = None,
        cooldown: Any = "none",
        output_dir: str = "results",
        force: bool = False,
        memory_limit_mb: Optional[int] = None,
        child_prefix: Optional[List[str]] = None,
        telemetry_interval: float = 1.0,
        use_cv2: Optional[bool] = None,
        progress: Optional[bool] = None,
        fsync_interval: float = 1.0,
        status_interval: float = 1.0,
        log: Optional[Callable[[str], None]] = None,
        min_duration_s: Optional[float] = None,
        max_images: Optional[int] = None,
        record_predictions: bool = False,
    ) -> None:
        self.artifacts_dir = str(artifacts_dir)
        self.models = list(models)
        self.providers = list(providers)
        self.modes = list(modes)
        self.images_dir = str(images_dir) if images_dir else os.path.join(self.artifacts_dir, "images")
        self.count = int(count)
        self.warmup = int(warmup)
        self.threads = threads
        self.inter_op_threads = inter_op_threads
        self.graph_optimization_level = graph_optimization_level
        self.provider_options = dict(provider_options or {})
        self.session_config = dict(session_config or {})
        self.timeout_s = timeout_s
        self.cooldown = parse_policy(cooldown) if isinstance(cooldown, str) else cooldown
        self.output_dir = str(output_dir)
        self.force = bool(force)
        self.memory_limit_mb = memory_limit_mb
        self.child_prefix = list(child_prefix or [])
        self.telemetry_interval = telemetry_interval
        self.use_cv2 = use_cv2
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.fsync_interval = fsync_interval
        self.status_interval = status_interval
        self.log = log or (lambda text: sys.stderr.write(text + "\n"))
        # The validity minimums a run extends itself to (bench.py), and its cap.
        self.min_duration_s = None if min_duration_s is None else float(min_duration_s)
        self.max_images = None if max_images is None else int(max_images)
        # Each run keeps every image's first decoded result (predictions.jsonl), outside its timing.
        self.record_predictions = bool(record_predictions)

    def backend_options(self, provider: str) -> Dict[str, Any]:
        family = parse_provider(provider)[0]
        return {
            "threads": self.threads,
            "inter_op_threads": self.inter_op_threads,
            "graph_optimization_level": self.graph_optimization_level,
            "provider_options": dict(self.provider_options.get(family, {})),
            "session_config": self.session_config,
        }


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return (isinstance(value, (int, float))) and not isinstance(value, bool)


def _positive_int(value):
    return None if _is_int(value) and value > 0 else "a whole number above 0"


def _count_or_zero(value):
    return None if _is_int(value) and value >= 0 else "a whole number, 0 or more"


def _non_negative(value):
    return None if _is_number(value) and value >= 0 else "a number of seconds, 0 or more"


def _optional(check):
    return lambda value: None if value is None else check(value)


def _text(value):
    return None if isinstance(value, str) and value else "a non-empty string"


def _names(value):
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        return "a non-empty list of names"
    return None


def _providers(value):
    problem = _names(value)
    if problem:
        return problem
    for provider in value:
        family, precision = parse_provider(provider)
        if family not in PROVIDER_FAMILIES or (precision is not None and family != "tensorrt"):
            return "provider names out of %s (TensorRT as tensorrt-<precision>); %r is not one" % (
                ", ".join(PROVIDER_FAMILIES),
                provider,
            )
        if family == "tensorrt" and precision not in PRECISIONS:
            return "TensorRT named with one of its precisions %s (tensorrt-fp16); %r is not" % (
                ", ".join(PRECISIONS),
                provider,
            )
    return None


def _modes(value):
    problem = _names(value)
    if problem:
        return problem
    unknown = [mode for mode in value if mode not in MODES]
    return "modes out of %s; %s unknown" % (", ".join(MODES), ", ".join(unknown)) if unknown else None


def _cooldown(value):
    if not isinstance(value, str):
        return "a cooldown policy string"
    try:
        parse_policy(value)
    except ValueError as exc:
        return str(exc)
    return None


def _flag(value):
    return None if isinstance(value, bool) else "true or false"


def _reboot_policy(value):
    return None if value in REBOOT_POLICIES else "one of %s" % ", ".join(REBOOT_POLICIES)


#: key -> check (returns what the value must be, or None) or a nested spec of the same shape.
_SPEC = {
    "schema_version": lambda v: None if v == PLAN_SCHEMA_VERSION else "%d" % PLAN_SCHEMA_VERSION,
    "run_id": _text,
    "models": _names,
    "providers": _providers,
    "modes": _modes,
    "images": {
        "source": _optional(_text),
        "count": _positive_int,
        "warmup": _count_or_zero,
    },
    "predictions": _flag,
    "validity": {
        "min_duration_s": _non_negative,
        "max_images": _positive_int,
    },
    "threads": _optional(_positive_int),
    "timeout_s": _optional(lambda v: None if _is_number(v) and v > 0 else "a number of seconds above 0"),
    "cooldown": _cooldown,
    "reboot_policy": _reboot_policy,
    "tensorrt": {
        "workspace_mb": _positive_int,
        "calibration_images": _optional(_text),
    },
    "paths": {
        "artifacts": _text,
        "output": _text,
    },
}


def _check(data: Any, spec: Dict[str, Any], prefix: str, problems: List[str]) -> None:
    if not isinstance(data, dict):
        problems.append("%s must be a mapping, not %s" % (prefix or "the plan", type(data).__name__))
        return
    for key in sorted(set(data) - set(spec)):
        close = difflib.get_close_matches(key, list(spec), 1)
        problems.append(
            "%s%s is not a plan setting%s"
            % (prefix, key, " (did you mean %s%s?)" % (prefix, close[0]) if close else "")
        )
    for key, check in sorted(spec.items()):
        name = prefix + key
        if key not in data:
            problems.append("%s is missing" % name)
            continue
        if isinstance(check, dict):
            _check(data[key], check, name + ".", problems)
            continue
        wanted = check(data[key])
        if wanted:
            problems.append("%s is %s; it must be %s" % (name, json.dumps(data[key]), wanted))


def check_plan(data: Any) -> List[str]:
    """Every problem of a plan (a decoded plan file), each naming the setting; empty when sound."""
    problems = []  # type: List[str]
    _check(data, _SPEC, "", problems)
    return problems


def _narrow(kind: str, planned: List[str], chosen: Optional[List[str]]) -> List[str]:
    if not chosen:
        return list(planned)
    outside = [name for name in chosen if name not in planned]
    if outside:
        raise UsageError(
            "--%s %s: not in the plan's %s (%s)" % (kind, ",".join(outside), kind, ", ".join(planned))
        )
    return list(chosen)


def tensorrt_options(data: Dict[str, Any]) -> Dict[str, Any]:
    """The TensorRT backend's options of a plan: the engines command and the run use these same
    values, so the engine the engines phase builds is the one the run looks up (both are part of
    the engine cache key). int8 calibrates on ``tensorrt.calibration_images``, else on the
    benchmark's own images."""
    artifacts = os.path.expanduser(data["paths"]["artifacts"])
    trt = data["tensorrt"]
    calibration = trt["calibration_images"] or data["images"]["source"] or os.path.join(artifacts, "images")
    return {
        "workspace_mb": data["tensorrt"]["workspace_mb"],
        "calibration_images": os.path.expanduser(calibration),
    }


def read_plan(path: str) -> Dict[str, Any]:
    """The decoded, checked plan file; raises UsageError naming every problem."""
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (IOError, OSError) as exc:
        raise UsageError("cannot read the plan %s: %s" % (path, exc)) from None
    except ValueError as exc:
        raise UsageError("the plan %s is not JSON: %s" % (path, exc)) from None
    problems = check_plan(data)
    if problems:
        raise UsageError("the plan %s: %s" % (path, "; ".join(problems)))
    return data


def load_plan(
    path: str,
    models: Optional[List[str]] = None,
    providers: Optional[List[str]] = None,
    modes: Optional[List[str]] = None,
    output_dir: Optional[str] = None,
    **options: Any
) -> "Plan":
    """The :class:`Plan` of a plan file; ``models`` / ``providers`` / ``modes`` narrow it to one unit
    of work (each must be in the plan), ``output_dir`` replaces its output path, and ``options``
    are the settings that belong to this invocation rather than the plan (force, progress, log,
    child prefix, memory limit). Raises UsageError naming every problem."""
    data = read_plan(path)
    artifacts = os.path.expanduser(data["paths"]["artifacts"])
    images_dir = data["images"]["source"]
    return Plan(
        artifacts_dir=artifacts,
        models=_narrow("models", data["models"], models),
        providers=_narrow("providers", data["providers"], providers),
        modes=_narrow("modes", data["modes"], modes),
        images_dir=os.path.expanduser(images_dir) if images_dir else None,
        count=data["images"]["count"],
        warmup=data["images"]["warmup"],
        threads=data["threads"],
        provider_options={"tensorrt": tensorrt_options(data)},
        timeout_s=data["timeout_s"],
        cooldown=data["cooldown"],
        output_dir=os.path.expanduser(output_dir or data["paths"]["output"]),
        min_duration_s=data["validity"]["min_duration_s"],
        max_images=data["validity"]["max_images"],
        record_predictions=data["predictions"],
        **options
    )


def validate(plan: "Plan") -> List[str]:
    """Raise UsageError / InputError before anything runs; returns the image list."""
    from .backends import known_families

    if plan.count < 1:
        raise UsageError("--count must be at least 1")
    if plan.warmup < 0:
        raise UsageError("--warmup must be >= 0")
    for mode in plan.modes:
        if mode not in MODES:
            raise UsageError("unknown mode %r (known: %s)" % (mode, ", ".join(MODES)))
    for provider in plan.providers:
        if parse_provider(provider)[0] not in known_families():
            raise UsageError("unknown provider %r (known: cpu, cuda, tensorrt[-fp32|-fp16|-int8])" % provider)
    if not os.path.isdir(plan.artifacts_dir):
        raise InputError("artifacts directory %s does not exist" % plan.artifacts_dir)
    available = sorted(
        name
        for name in os.listdir(plan.artifacts_dir)
        if os.path.isfile(os.path.join(plan.artifacts_dir, name, "manifest.json"))
    )
    if plan.models in (["all"], []):
        plan.models = available
        if not available:
            raise InputError("no artifacts (directories with manifest.json) in %s" % plan.artifacts_dir)
    for model in plan.models:
        if model not in available:
            close = difflib.get_close_matches(model, available, 3)
            raise InputError(
                "unknown model %r: no %s/%s/manifest.json%s"
                % (
                    model,
                    plan.artifacts_dir,
                    model,
                    (" (did you mean %s?)" % ", ".join(close))
                    if close
                    else (" (available: %s)" % ", ".join(available[:20]) if available else ""),
                )
            )
    try:
        images = list_images(plan.images_dir)
    except ImageSourceError as exc:
        raise InputError(str(exc)) from None
    try:
        if not os.path.isdir(plan.output_dir):
            os.makedirs(plan.output_dir)
        probe_path = os.path.join(plan.output_dir, ".write-test-%d" % os.getpid())
        with open(probe_path, "w") as handle:
            handle.write("ok")
        os.unlink(probe_path)
    except (IOError, OSError) as exc:
        raise InputError("output directory %s is not writable: %s" % (plan.output_dir, exc)) from None
    return images


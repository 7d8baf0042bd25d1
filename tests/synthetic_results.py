"""Synthetic but schema-valid result trees, for the report's tests and benchmarks. Importable as
``synthetic_results`` (tests/ is on sys.path under pytest; benchmarks/bench_report.py puts it there
itself); a test fixture, so it lives beside the tests and not in the installed package.

The files follow the runtime's result contract (docs/architecture.md, "Result files"): timings.csv
rows written with the runtime's column order, summary.json statistics computed by the runtime's own
``summarize_rows``, an env.json shaped like ``edgebench-runtime probe`` output, telemetry.csv with a
temperature column. ``rescale_result`` rewrites a real result's timings (a planted slowdown) and
recomputes its summary the way ``edgebench-runtime summarize`` does.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from edgebench_runtime.results import TIMINGS_COLUMNS, read_timings, summarize_rows, validity

__all__ = ["rescale_result", "synthetic_env", "synthetic_run", "write_result"]

SCHEMA = 1


def _iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat()


def synthetic_env(host: str, board: str | None = None, **overrides) -> dict:
    """An env.json like the probe's; ``overrides`` replace top-level keys (``versions`` merges)."""
    env = {
        "schema_version": SCHEMA,
        "arch": "aarch64",
        "available_providers": ["cpu"],
        "board_model": board,
        "cpu_count": 4,
        "cpu_governor": "ondemand",
        "cpu_model": "Cortex-A72",
        "edgebench_runtime": "0.1.0",
        "hostname": host,
        "jetson": {"jetpack": None, "l4t_release": None},
        "kernel": "6.1.0-rpi7-rpi-v8",
        "memory_total_mb": 3794,
        "nvpmodel": None,
        "onnxruntime_providers": ["CPUExecutionProvider"],
        "os": "Debian GNU/Linux 12 (bookworm)",
        "power_rails": [],
        "providers": {
            "cpu": {"available": True, "reason": None},
            "cuda": {"available": False, "reason": "CUDAExecutionProvider is not available"},
            "tensorrt": {"available": False, "reason": "tensorrt Python bindings not importable"},
        },
        "python": {"executable": "/usr/bin/python3", "implementation": "CPython", "version": "3.11.2"},
        "rapl": False,
        "thermal_zones": [{"name": "cpu-thermal", "temp_c": 45.0}],
        "versions": {
            "numpy": "1.26.4",
            "onnxruntime": "1.17.1",
            "opencv": None,
            "pillow": "10.2.0",
            "pycuda": None,
            "tensorrt": None,
        },
    }
    versions = overrides.pop("versions", None)
    env.update(overrides)
    if versions:
        env["versions"] = {**env["versions"], **versions}
    return env


def _write_timings(path: Path, phases: dict[str, np.ndarray], start: float, images: list[str]) -> None:
    n = len(phases["infer_ms"])
    lines = [",".join(TIMINGS_COLUMNS)]
    clock = start
    for i in range(n):
        clock += (
            phases["decode_ms"][i] + phases["pre_ms"][i] + phases["infer_ms"][i] + phases["post_ms"][i]
        ) / 1000.0
        lines.append(
            f"{SCHEMA},{i},{i},{images[i % len(images)]},{phases['decode_ms'][i]:.4f},"
            f"{phases['pre_ms'][i]:.4f},{phases['infer_ms'][i]:.4f},{phases['post_ms'][i]:.4f},0,{clock:.3f},1:0.5000"
        )
    path.write_text("\n".join(lines) + "\n")


def _write_telemetry(path: Path, start: float, seconds: float, base_temp: float, throttle_at: float | None):
    header = "schema_version,time,elapsed_s,segment,temp_cpu-thermal_c,cpu0_mhz,mem_used_mb,pi_throttled_now"
    lines = [header]
    steps = max(2, int(seconds) + 2)
    for k in range(steps):
        now = start + k
        throttled = 1 if throttle_at is not None and now >= throttle_at else 0
        temp = base_temp + 10.0 * k / steps
        mhz = 600 if throttled else 1500
        lines.append(f"{SCHEMA},{now:.3f},{k:.3f},0,{temp:.1f},{mhz},512.0,{throttled}")
    path.write_text("\n".join(lines) + "\n")


def write_result(
    result_dir: Path,
    *,
    host: str,
    model: str,
    provider: str,
    mode: str,
    infer_ms: np.ndarray,
    status: str = "complete",
    reason: str | None = None,
    requested: int | None = None,
    task: str = "classification",
    start: float = 1_700_000_000.0,
    model_sha256: str = "0" * 64,
    settings: dict | None = None,
    backend_version: str = "1.17.1",
    rng: np.random.Generator | None = None,
    throttle_at: float | None = None,
) -> dict:
    """One ``<model>/<provider>-<mode>/`` result: timings.csv, telemetry.csv, summary.json."""
    rng = rng or np.random.default_rng(0)
    result_dir = Path(result_dir)
    result_dir.mkdir(parents=True, exist_ok=True)
    n = len(infer_ms)
    phases = {
        "decode_ms": np.abs(rng.normal(4.0, 0.2, n)),
        "pre_ms": np.abs(rng.normal(2.0, 0.1, n)),
        "infer_ms": np.asarray(infer_ms, dtype=float),
        "post_ms": np.abs(rng.normal(0.3, 0.02, n)),
    }
    images = [f"img{k:03d}.jpg" for k in range(6)]
    load_ms = 250.0 + 10 * rng.random()
    first = float(infer_ms[0]) if n and mode == "cold" else (float(np.max(infer_ms)) * 1.5 if n else None)
    if status != "skipped":
        _write_timings(result_dir / "timings.csv", phases, start, images)
        duration = float(np.sum(sum(phases.values()))) / 1000.0
        _write_telemetry(result_dir / "telemetry.csv", start, duration, 45.0, throttle_at)
    stats = summarize_rows(read_timings(str(result_dir / "timings.csv")), cold=mode == "cold")
    settings = settings or {
        "backend_options": {"threads": None, "graph_optimization_level": "all"},
        "warmup": 10,
        "model_sha256": model_sha256,
        "use_cv2": None,
        "memory_limit_mb": None,
    }
    end = start + (float(np.sum(sum(phases.values()))) / 1000.0 if status != "skipped" else 0.0)
    summary = {
        "schema_version": SCHEMA,
        "status": status,
        "reason": reason,
        "error": None,
        "model": model,
        "provider": provider,
        "mode": mode,
        "task": task,
        "decoder": "imagenet_topk" if task == "classification" else "raw",
        "weights": "random-init",
        "artifact": {
            "dir": f"/home/pi/edgebench/artifacts/{model}",
            "model_file": "model.onnx",
            "sha256": model_sha256,
            "verified": True,
        },
        "settings": settings,
        "backend": None
        if status == "skipped"
        else {"name": "onnxruntime", "version": backend_version, "provider": provider, "threads": None},
        "images": {
            "requested": requested if requested is not None else n,
            "measured": n,
            "warmup": 0 if mode == "cold" else 10,
            "source": "images",
            "source_files": 6,
            "unreadable": 0,
            "unreadable_files": [],
        },
        "load_ms": None if status == "skipped" else load_ms,
        "first_inference_ms": None if status == "skipped" else first,
        **stats,
        "throttling": {"seen": throttle_at is not None, "evidence": [], "reason": None},
        "energy": {"mj_per_image": None, "reason": "no readable power source"},
        "telemetry": {
            "samples": 3,
            "interval_s": 1.0,
            "max_temp_c": 55.0,
            "cpu_mhz_min": 600.0,
            "cpu_mhz_max": 1500.0,
            "rss_max_sampled_mb": 80.0,
            "collector_errors": [],
        },
        "peak_rss_mb": None if status == "skipped" else 90.0,
        "cooldown": {"policy": "none", "waited_s": 0.0},
        "segments": [],
        "started": _iso(start),
        "finished": _iso(end),
        "host": host,
        "python": "3.11.2",
        "runtime_version": "0.1.0",
    }
    summary.setdefault("correctness", {"status": "passed", "passed": True, "reason": None})
    summary["validity"] = validity(summary)
    (result_dir / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True))
    return summary


def synthetic_run(
    run_dir: Path,
    hosts: dict[str, dict],
    models: dict[str, float],
    providers: tuple[str, ...] = ("cpu",),
    modes: tuple[str, ...] = ("warm", "cold"),
    count: int = 100,
    start: float = 1_700_000_000.0,
    seed: int = 0,
    cv: float = 0.03,
    slowdown: dict | None = None,
    tasks: dict[str, str] | None = None,
) -> Path:
    """A run directory: ``hosts`` maps host name → env.json (``synthetic_env``); ``models`` maps
    model name → mean inference ms on the reference device; a host's env may carry ``_speed``
    (a multiplier, popped before writing). ``slowdown`` maps (host, model, provider, mode) to a
    factor applied to that result. Providers other than cpu run ~4x faster."""
    rng = np.random.default_rng(seed)
    run_dir = Path(run_dir)
    clock = start
    for host, env in hosts.items():
        env = dict(env)
        speed = env.pop("_speed", 1.0)
        host_dir = run_dir / host
        host_dir.mkdir(parents=True, exist_ok=True)
        (host_dir / "env.json").write_text(json.dumps(env, indent=1, sort_keys=True))
        status = {
            "schema_version": SCHEMA,
            "state": "finished",
            "started": _iso(start),
            "plan": {
                "models": list(models),
                "providers": list(providers),
                "modes": list(modes),
                "count": count,
                "warmup": 10,
            },
        }
        (host_dir / "status.json").write_text(json.dumps(status, indent=1))
        for model, base in models.items():
            for provider in providers:
                for mode in modes:
                    factor = speed * (1.0 if provider == "cpu" else 0.25)
                    factor *= (slowdown or {}).get((host, model, provider, mode), 1.0)
                    infer = np.abs(rng.normal(base * factor, base * factor * cv, count))
                    if mode == "cold":
                        infer[0] *= 5
                    summary = write_result(
                        run_dir / host / model / f"{provider}-{mode}",
                        host=host,
                        model=model,
                        provider=provider,
                        mode=mode,
                        infer_ms=infer,
                        start=clock,
                        rng=rng,
                        task=(tasks or {}).get(model, "classification"),
                        backend_version=(env.get("versions") or {}).get("onnxruntime") or "1.17.1",
                    )
                    clock += 1.0 + float(np.sum(infer)) / 1000.0
                    del summary
    return run_dir


def rescale_result(
    result_dir: Path, factor: float, jitter: float = 0.0, seed: int = 0, shift_hours: float = 0.0
) -> dict:
    """Multiply a result's infer_ms by ``factor`` (times 1 ± ``jitter`` per row), move its times
    by ``shift_hours``, and recompute summary.json statistics from the rewritten timings.csv."""
    result_dir = Path(result_dir)
    rng = np.random.default_rng(seed)
    path = result_dir / "timings.csv"
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    col, tcol = header.index("infer_ms"), header.index("time")
    out = [lines[0]]
    for line in lines[1:]:
        parts = line.split(",", len(header) - 1)
        scale = factor * (1.0 + rng.uniform(-jitter, jitter))
        parts[col] = f"{float(parts[col]) * scale:.4f}"
        parts[tcol] = f"{float(parts[tcol]) + shift_hours * 3600:.3f}"
        out.append(",".join(parts))
    path.write_text("\n".join(out) + "\n")
    summary = json.loads((result_dir / "summary.json").read_text())
    summary.update(summarize_rows(read_timings(str(path)), cold=summary.get("mode") == "cold"))
    summary["validity"] = validity(summary)
    for key in ("started", "finished"):
        if summary.get(key):
            moved = datetime.fromisoformat(summary[key]).timestamp() + shift_hours * 3600
            summary[key] = _iso(moved)
    (result_dir / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True))
    return summary

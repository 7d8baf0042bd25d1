"""Loading: one or more runs into tidy pandas frames, the input of every table of the report.

``load_results`` reads run directories (``results/<run_id>/``) through ``edgebench.results`` into
pandas: ``runs`` has one row per run × host × model × provider × mode with every summary statistic,
status, reason and the host's device type and fingerprint; ``hosts`` one row per run × host;
``timings()`` the per-image rows when asked.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from edgebench.results import (
    ACCURACY_FIGURES,
    ResultsError,
    accuracy_columns,
    check_run_dir,
    device_type,
    fingerprint,
    read_device_label,
    read_env,
    read_status,
    run_records,
    validity_of,
)
from edgebench_runtime.vocabulary import parse_provider

__all__ = ["GPU_PHASES", "PHASE_NAMES", "RESULT_KEY", "STATS", "ResultSet", "load_results"]

# What names one result: run, device, model, provider (with precision) and mode.
RESULT_KEY = ("run_id", "device_type", "host", "model", "provider", "mode")

PHASE_NAMES = ("decode_ms", "pre_ms", "infer_ms", "post_ms", "total_ms", "e2e_ms")
#: trtexec's breakdown of infer_ms where the runtime timed it (TensorRT, CUDA events)
GPU_PHASES = ("h2d_ms", "gpu_compute_ms", "d2h_ms")
STATS = ("mean", "std", "min", "max", "p50", "p90", "p99")


@dataclass
class ResultSet:
    """What ``load_results`` read: tidy frames plus the paths to read per-image rows lazily."""

    runs: pd.DataFrame
    hosts: pd.DataFrame
    run_dirs: list[Path]
    _timings: pd.DataFrame | None = field(default=None, repr=False)
    _groups: dict | None = field(default=None, repr=False)

    def timings(self) -> pd.DataFrame:
        """Per-image rows of every result with rows: the runtime's timings.csv columns plus the
        keys run_id, host, device_type, model, provider, mode."""
        if self._timings is None:
            frames = []
            for row in self.runs.itertuples(index=False):
                path = Path(row.path) / "timings.csv"
                if row.rows and path.exists():
                    frame = pd.read_csv(path, on_bad_lines="skip", dtype={"result": str, "image": str})
                    frame = frame.dropna(subset=["infer_ms"])
                    for key in RESULT_KEY:
                        frame[key] = getattr(row, key)
                    frames.append(frame)
            self._timings = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        return self._timings

    def rows_for(self, run_id: str, host: str, model: str, provider: str, mode: str) -> pd.DataFrame:
        """The per-image rows of one result (empty when it has none)."""
        if self._groups is None:
            timings = self.timings()
            keys = ["run_id", "host", "model", "provider", "mode"]
            self._groups = {k: g for k, g in timings.groupby(keys, sort=False)} if not timings.empty else {}
        return self._groups.get((run_id, host, model, provider, mode), pd.DataFrame())

    def telemetry(self, result_path: str | Path) -> pd.DataFrame | None:
        """telemetry.csv of one result (every telemetry.*.csv of earlier segments first)."""
        result_path = Path(result_path)
        paths = [*sorted(result_path.glob("telemetry.*.csv")), result_path / "telemetry.csv"]
        frames = [pd.read_csv(p, on_bad_lines="skip") for p in paths if p.exists() and p.stat().st_size]
        return pd.concat(frames, ignore_index=True) if frames else None


def _first_line(text) -> str:
    if not text:
        return ""
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _record_row(run_id: str, host: str, dtype: str, env: dict | None, record) -> dict:
    summary = record.summary or {}
    phases = summary.get("phases") or {}
    steady = summary.get("phases_excluding_first") or {}
    images = summary.get("images") or {}
    stability = summary.get("stability") or {}
    family, precision = parse_provider(record.provider)
    status = summary.get("status") or "missing"
    reason = summary.get("reason") or record.problem or _first_line(summary.get("error"))
    if record.problem and summary.get("reason") and record.problem not in reason:
        reason = f"{reason}; {record.problem}"
    settings = dict(summary.get("settings") or {})
    settings.pop("model_sha256", None)
    row = {
        "run_id": run_id,
        "host": host,
        "device_type": dtype,
        "model": record.model,
        "task": summary.get("task"),
        "provider": record.provider,
        "family": family,
        "precision": precision,
        "mode": record.mode,
        "status": status,
        "reason": reason or "",
        "problem": record.problem or "",
        "images_requested": images.get("requested"),
        "images_measured": images.get("measured"),
        "rows": record.rows,
    }
    for phase in (*PHASE_NAMES, *GPU_PHASES):
        stats = phases.get(phase) or {}
        for stat in STATS:
            value = stats.get(stat)  # p99 is null below 662 images: NaN keeps the column numeric
            row[f"{phase}_{stat}"] = math.nan if value is None else value
    row["infer_ms_n"] = (phases.get("infer_ms") or {}).get("n")
    steady_infer = steady.get("infer_ms") or {}
    infer = phases.get("infer_ms") or {}
    # Steady state: cold runs drop the first image of each segment (the first inference).
    row["steady_infer_p50"] = steady_infer.get("p50") if steady_infer else infer.get("p50")
    row["steady_infer_std"] = steady_infer.get("std") if steady_infer else infer.get("std")
    row["steady_infer_n"] = steady_infer.get("n") if steady_infer else infer.get("n")
    validity = summary.get("validity") or {}
    spread = summary.get("dispersion") or {}
    row.update(
        {
            "validity": validity_of(summary),
            "validity_reasons": "; ".join(validity.get("reasons") or []),
            "robust_dispersion": spread.get("robust"),
            "infer_ms_p90_es": infer.get("p90_early_stopping"),
            "p99_reason": infer.get("p99_reason") or "",
            "measured_s": summary.get("measured_s"),
            "cooldown_policy": (summary.get("cooldown") or {}).get("policy"),
            "threads": ((summary.get("settings") or {}).get("backend_options") or {}).get("threads"),
            "cpu_mhz_min": (summary.get("telemetry") or {}).get("cpu_mhz_min"),
        }
    )
    throttling = summary.get("throttling") or {}
    energy = summary.get("energy") or {}
    telemetry = summary.get("telemetry") or {}
    artifact = summary.get("artifact") or {}
    row.update(
        {
            "fps": summary.get("fps"),
            "fps_e2e": summary.get("fps_e2e"),
            "stability": stability.get("verdict"),
            "correctness": (summary.get("correctness") or {}).get("status"),
            "correctness_max_abs": (summary.get("correctness") or {}).get("max_abs"),
            "correctness_reason": (summary.get("correctness") or {}).get("reason") or "",
            "cv": stability.get("cv"),
            "stability_warning": stability.get("warning") or "",
            "load_ms": summary.get("load_ms"),
            "first_inference_ms": summary.get("first_inference_ms"),
            "throttled": throttling.get("seen"),
            "max_temp_c": telemetry.get("max_temp_c"),
            "peak_rss_mb": summary.get("peak_rss_mb"),
            "mj_per_image": energy.get("mj_per_image"),
            "mean_power_w": energy.get("mean_power_w"),
            "weights": summary.get("weights"),
            "artifact_dir": artifact.get("dir"),
            "artifact_verified": artifact.get("verified"),
            "settings_key": json.dumps(settings, sort_keys=True, default=str),
            "started": summary.get("started"),
            "finished": summary.get("finished"),
            "path": str(record.path),
        }
    )
    accuracy = accuracy_columns(summary)
    for figure in ACCURACY_FIGURES:  # NaN keeps the figures' columns numeric
        accuracy[figure] = math.nan if accuracy[figure] is None else float(accuracy[figure])
    row.update(accuracy)
    for key, value in fingerprint(env, summary).items():
        row[f"fp_{key}"] = value
    return row


def load_results(run_dirs, timings: bool = False) -> ResultSet:
    """Read run directories into a ResultSet. Raises ResultsError for a missing or empty run, a
    run without summaries, a run of an unsupported schema version, or runs of different schema
    versions together."""
    if isinstance(run_dirs, (str, Path)):
        run_dirs = [run_dirs]
    run_dirs = [Path(p) for p in run_dirs]
    if not run_dirs:
        raise ResultsError("no run directories given")
    rows, hosts = [], []
    seen_ids: dict[str, Path] = {}
    for run_dir in run_dirs:
        host_paths = check_run_dir(run_dir)
        run_id = run_dir.resolve().name
        if run_id in seen_ids and seen_ids[run_id] != run_dir.resolve():
            run_id = f"{run_id}@{run_dir.resolve().parent.name}"
        seen_ids[run_id] = run_dir.resolve()
        for host_dir in host_paths:
            env = read_env(host_dir)
            status = read_status(host_dir) or {}
            label = read_device_label(host_dir)
            dtype = device_type(env, label) if env or label else device_type({"hostname": host_dir.name})
            records = run_records(host_dir)
            host_row = {
                "run_id": run_id,
                "host": host_dir.name,
                "device_type": dtype,
                "device_label": label,
                "env_missing": env is None,
                "cpu_model": (env or {}).get("cpu_model"),
                "arch": (env or {}).get("arch"),
                "memory_total_mb": (env or {}).get("memory_total_mb"),
                "available_providers": ", ".join((env or {}).get("available_providers") or []),
                "plan": status.get("plan"),
                "state": status.get("state"),
                "results": len(records),
            }
            for key, value in fingerprint(env).items():
                if key not in ("model_sha256", "backend_version"):
                    host_row[key] = value
            hosts.append(host_row)
            rows.extend(_record_row(run_id, host_dir.name, dtype, env, record) for record in records)
    result = ResultSet(pd.DataFrame(rows), pd.DataFrame(hosts), run_dirs)
    if timings:
        result.timings()
    return result

"""Tidy tables of one or more runs, and the thesis's tables built from them.

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
    ResultsError,
    check_run_dir,
    device_type,
    fingerprint,
    fingerprint_diff,
    read_device_label,
    read_env,
    read_status,
    run_records,
    validity_of,
)

__all__ = [
    "PHASE_NAMES",
    "STATS",
    "ResultSet",
    "device_tables",
    "failure_table",
    "fingerprint_notes",
    "load_results",
    "model_facts",
    "speedup_table",
    "to_markdown",
    "unit_table",
    "warm_cold_table",
]

# What names one result: run, device, model, provider (with precision) and mode.
RESULT_KEY = ("run_id", "device_type", "host", "model", "provider", "mode")

PHASE_NAMES = ("decode_ms", "pre_ms", "infer_ms", "post_ms", "total_ms", "e2e_ms")
#: trtexec's breakdown of infer_ms where the runtime timed it (TensorRT, CUDA events)
GPU_PHASES = ("h2d_ms", "gpu_compute_ms", "d2h_ms")
STATS = ("mean", "std", "min", "max", "p50", "p90", "p99")
NOT_COMPLETE = ("partial", "failed", "oom", "timeout", "skipped", "missing")


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


def _split_provider(provider: str) -> tuple[str, str | None]:
    family, _, precision = provider.partition("-")
    return family, precision or None


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
    family, precision = _split_provider(record.provider)
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


# --- the thesis's tables ----------------------------------------------------------------------------


def _complete(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[(runs["status"] == "complete") & (runs["rows"] > 0)]


def unit_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Each unit's own figures: one row per run × host × model × provider × mode (complete)."""
    cols = [
        *RESULT_KEY,
        "pre_ms_mean",
        "infer_ms_mean",
        "post_ms_mean",
        "fps",
        "infer_ms_p50",
        "infer_ms_p90",
        "infer_ms_p99",
        "infer_ms_std",
        "stability",
        "validity",
        "status",
    ]
    return _complete(runs)[cols].sort_values(["device_type", "provider", "mode", "model", "host"])


def device_tables(runs: pd.DataFrame) -> dict[tuple[str, str, str], pd.DataFrame]:
    """The thesis's Tables 4.1–4.21, per device type × provider × mode: model, average pre /
    inference / post ms, FPS, p50/p90/p99, std, stability, validity ("valid" when every unit's
    result is, "invalid" when none is, else "k/n valid"), status. Several units of one device
    type are averaged (mean of the units' means) only when their fingerprints agree (units that
    differ form their own table, named after the difference) with the averaged units listed in
    ``unit_hosts`` and the unit-to-unit spread beside: ``units``,
    ``infer_spread_pct`` ((max − min) / mean of the units' mean inference times) and the units' FPS
    range. ``fastest`` marks the model with the highest FPS (bold in Markdown and HTML)."""
    tables = {}
    runs = runs.assign(device_type=_fingerprint_variants(runs))
    for (dtype, provider, mode), group in runs.groupby(["device_type", "provider", "mode"], sort=True):
        out_rows = []
        for model, frame in group.groupby("model", sort=False):
            done = _complete(frame)
            statuses = sorted(set(frame["status"]))
            if done.empty:
                out_rows.append({"model": model, "units": 0, "status": "/".join(statuses)})
                continue
            infer_means = done["infer_ms_mean"].astype(float)
            spread = (
                (infer_means.max() - infer_means.min()) / infer_means.mean() * 100
                if len(done) > 1 and infer_means.mean()
                else None
            )
            verdicts = sorted(set(done["stability"].dropna()))
            checks = sorted(set(done["correctness"].dropna()))
            valid = int((done["validity"] == "valid").sum())
            out_rows.append(
                {
                    "model": model,
                    "pre_ms": done["pre_ms_mean"].mean(),
                    "infer_ms": infer_means.mean(),
                    **{phase: done[f"{phase}_mean"].astype(float).mean() for phase in GPU_PHASES},
                    "post_ms": done["post_ms_mean"].mean(),
                    "fps": done["fps"].mean(),
                    "p50_ms": done["infer_ms_p50"].mean(),
                    "p90_ms": done["infer_ms_p90"].mean(),
                    "p90_es_ms": done["infer_ms_p90_es"].astype(float).mean(),
                    "p99_ms": done["infer_ms_p99"].mean(),
                    "std_ms": done["infer_ms_std"].mean(),
                    "stability": "/".join(verdicts) if verdicts else "unknown",
                    "correctness": "/".join(checks) if checks else None,
                    "validity": "valid"
                    if valid == len(done)
                    else ("invalid" if valid == 0 else f"{valid}/{len(done)} valid"),
                    "units": int(done["host"].nunique()),
                    "unit_hosts": ", ".join(sorted(done["host"].unique())),
                    "infer_spread_pct": spread,
                    "fps_min": done["fps"].min() if len(done) > 1 else None,
                    "fps_max": done["fps"].max() if len(done) > 1 else None,
                    "status": "/".join(statuses),
                }
            )
        table = pd.DataFrame(out_rows)
        table["fastest"] = False
        if "fps" in table and table["fps"].notna().any():
            table.loc[table["fps"].idxmax(), "fastest"] = True
        tables[(dtype, provider, mode)] = table
    return tables


def _fingerprint_variants(runs: pd.DataFrame) -> pd.Series:
    """Each result's device type, split where units of one type differ in what moves timings
    (``_CAUSE_FIELDS``: library versions, power mode, governor, kernel, ...): the units that share
    the most common fingerprint keep the type's name, the others get it with the difference named,
    "Raspberry Pi 4 Model B [onnxruntime 1.18.0]", so that only units that agree are averaged."""
    columns = [f"fp_{name}" for name in _CAUSE_FIELDS if f"fp_{name}" in runs]
    if runs.empty or not columns:
        return runs["device_type"] if "device_type" in runs else pd.Series(dtype=object)
    signature = runs[columns].astype(object).where(runs[columns].notna(), None).apply(tuple, axis=1)
    out = runs["device_type"].copy()
    for dtype, index in runs.groupby("device_type").groups.items():
        per_host = dict(zip(runs.loc[index, "host"], signature.loc[index], strict=True))
        counts: dict[tuple, int] = {}
        for value in per_host.values():
            counts[value] = counts.get(value, 0) + 1
        if len(counts) < 2:
            continue
        common = sorted(counts, key=lambda value: (-counts[value], str(value)))[0]
        for position in index:
            own = signature.loc[position]
            if own == common:
                continue
            named = [
                f"{column[3:]} {value or 'unknown'}"
                for column, value, usual in zip(columns, own, common, strict=True)
                if value != usual
            ]
            out.loc[position] = f"{dtype} [{', '.join(named)}]"
    return out


def speedup_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The thesis's Table 4.10: every non-CPU provider (TensorRT per precision) against CPU, per
    device type, model and mode: ``<provider> infer ×`` = CPU mean inference ms ÷ that provider's,
    ``<provider> FPS ×`` = its FPS ÷ CPU FPS. Units of a device type are averaged first."""
    done = _complete(runs)
    if done.empty:
        return pd.DataFrame()
    means = done.groupby(["device_type", "model", "mode", "provider"], as_index=False)[
        ["infer_ms_mean", "fps"]
    ].mean()
    providers = sorted(p for p in means["provider"].unique() if p != "cpu")
    rows = []
    for (dtype, model, mode), group in means.groupby(["device_type", "model", "mode"]):
        cpu = group[group["provider"] == "cpu"]
        if cpu.empty or not providers:
            continue
        row = {
            "device_type": dtype,
            "model": model,
            "mode": mode,
            "cpu_infer_ms": float(cpu["infer_ms_mean"].iloc[0]),
            "cpu_fps": float(cpu["fps"].iloc[0]),
        }
        found = False
        for provider in providers:
            other = group[group["provider"] == provider]
            if other.empty:
                row[f"{provider} infer ×"] = None
                row[f"{provider} FPS ×"] = None
                continue
            found = True
            row[f"{provider} infer ×"] = row["cpu_infer_ms"] / float(other["infer_ms_mean"].iloc[0])
            row[f"{provider} FPS ×"] = float(other["fps"].iloc[0]) / row["cpu_fps"]
        if found:
            rows.append(row)
    return pd.DataFrame(rows)


def _manifest_for(row, artifacts_dir: Path | None) -> dict | None:
    candidates = []
    if artifacts_dir:
        candidates.append(Path(artifacts_dir) / row.model / "manifest.json")
    if isinstance(row.artifact_dir, str) and row.artifact_dir:
        candidates.append(Path(row.artifact_dir) / "manifest.json")
    for path in candidates:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            continue
    return None


def model_facts(runs: pd.DataFrame, catalog=None, artifacts_dir: Path | None = None) -> pd.DataFrame:
    """The thesis's Table 3.2: input size, params, GFLOPs, file size, weights kind — reference
    values from the catalog beside what edgebench measured (the artifact manifest, when it is
    readable on this machine: ``artifacts_dir/<model>/`` or the result's artifact dir)."""
    if catalog is None:
        try:
            from edgebench.catalog import load_catalog

            catalog = load_catalog()
        except Exception:  # the facts table degrades to what the results say
            catalog = None
    rows = []
    for model, group in runs.groupby("model", sort=True):
        first = group.iloc[0]
        entry = catalog.entries.get(model) if catalog is not None else None
        manifest = None
        for row in group.itertuples(index=False):
            manifest = _manifest_for(row, artifacts_dir)
            if manifest:
                break
        reference = (entry.reference if entry else {}) or {}
        measured = (manifest or {}).get("measured") or {}
        size = None
        if manifest:
            files = manifest.get("files") or {}
            model_file = files.get(manifest.get("model_file") or "model.onnx") or {}
            size = model_file.get("size") or measured.get("onnx_bytes")
        shape = (manifest or {}).get("input") or (entry.input if entry else None) or {}
        weights = list(group["weights"].dropna().unique())
        if not weights and manifest:
            weights = [manifest.get("weights")]
        rows.append(
            {
                "model": model,
                "task": first["task"] or (entry.task if entry else None),
                "input": f"{shape.get('height')}x{shape.get('width')}" if shape.get("height") else "",
                "params_m_ref": reference.get("params_m"),
                "params_m_measured": measured.get("params_m"),
                "gflops_ref": reference.get("gflops"),
                "file_mb": size / 1e6 if size else None,
                "weights": "/".join(str(w) for w in weights if w),
                "parity": None if not manifest else ((manifest.get("parity") or {}).get("passed")),
                "in_catalog": entry is not None,
            }
        )
    return pd.DataFrame(rows)


def warm_cold_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Warm vs cold per run × host × model × provider: load and first-inference times of both
    modes, and the steady-state median (cold: without the first image) with its difference."""
    have = runs[runs["rows"] > 0]
    rows = []
    for key, group in have.groupby(["run_id", "device_type", "host", "model", "provider"], sort=True):
        warm = group[group["mode"] == "warm"]
        cold = group[group["mode"] == "cold"]
        if warm.empty or cold.empty:
            continue
        w, c = warm.iloc[0], cold.iloc[0]
        diff = (
            None
            if pd.isna(c["steady_infer_p50"]) or pd.isna(w["steady_infer_p50"])
            else (c["steady_infer_p50"] - w["steady_infer_p50"])
        )
        rows.append(
            {
                "run_id": key[0],
                "device_type": key[1],
                "host": key[2],
                "model": key[3],
                "provider": key[4],
                "load_ms_warm": w["load_ms"],
                "load_ms_cold": c["load_ms"],
                "first_inference_ms_warm": w["first_inference_ms"],
                "first_inference_ms_cold": c["first_inference_ms"],
                "steady_p50_ms_warm": w["steady_infer_p50"],
                "steady_p50_ms_cold": c["steady_infer_p50"],
                "steady_p50_diff_ms": diff,
                "steady_p50_diff_pct": diff / w["steady_infer_p50"] * 100
                if diff is not None and w["steady_infer_p50"]
                else None,
            }
        )
    return pd.DataFrame(rows)


def failure_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Every result that is not a clean complete one: partial, oom, failed, timeout, skipped (and
    results whose files disagree), with images completed and the reason."""
    bad = runs[(runs["status"] != "complete") | (runs["problem"] != "")]
    cols = [
        *RESULT_KEY,
        "status",
        "images_measured",
        "images_requested",
        "reason",
    ]
    return bad[cols].sort_values(["status", "host", "model", "provider", "mode"]).reset_index(drop=True)


_CAUSE_FIELDS = (
    "onnxruntime",
    "tensorrt",
    "jetpack",
    "l4t",
    "power_mode",
    "cpu_governor",
    "edgebench_runtime",
    "python",
    "kernel",
    "os",
    "numpy",
    "opencv",
)


def fingerprint_notes(hosts: pd.DataFrame) -> list[str]:
    """Where results cannot be compared at face value: units of one device type whose software
    versions, power mode or governor differ, and software that differs across the fleet."""
    notes = []
    for dtype, group in hosts.groupby("device_type", sort=True):
        for field_name in _CAUSE_FIELDS:
            values = group[field_name].fillna("unknown")
            if values.nunique() > 1:
                detail = ", ".join(f"{h}: {v}" for h, v in zip(group["host"], values, strict=True))
                notes.append(f"{dtype} units differ in {field_name} ({detail}): their spread includes it")
    if hosts["device_type"].nunique() > 1:
        for field_name in ("onnxruntime", "edgebench_runtime"):
            values = hosts[field_name].dropna()
            if values.nunique() > 1:
                by = hosts.groupby(field_name)["host"].apply(lambda h: ", ".join(sorted(h)))
                detail = "; ".join(f"{v}: {h}" for v, h in by.items())
                notes.append(
                    f"devices run different {field_name} versions ({detail}): "
                    "cross-device comparisons mix software and hardware"
                )
    return notes


def pairwise_fingerprint_diff(hosts: pd.DataFrame, a: str, b: str) -> dict:
    rows = hosts.set_index("host")
    return fingerprint_diff(rows.loc[a].to_dict(), rows.loc[b].to_dict())


# --- Markdown ---------------------------------------------------------------------------------------


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if abs(value) >= 100:
            return f"{value:.1f}"
        return f"{value:.2f}" if abs(value) >= 1 or value == 0 else f"{value:.3f}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(table: pd.DataFrame, bold: pd.Series | None = None, columns=None) -> str:
    """A GitHub Markdown table; rows where ``bold`` is true are bold (the fastest model)."""
    columns = list(columns or [c for c in table.columns if c != "fastest"])
    if bold is None and "fastest" in table:
        bold = table["fastest"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for position, (_, row) in enumerate(table.iterrows()):
        cells = [_fmt(row[c]) for c in columns]
        if bold is not None and bool(bold.iloc[position]):
            cells = [f"**{c}**" if c else c for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)

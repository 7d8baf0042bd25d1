"""The thesis's tables, from the frames ``load.load_results`` read: per device type × provider × mode
(Tables 4.1–4.21), each unit's own figures, speed-up against CPU (4.10), model facts (3.2), warm vs
cold, failures, validity, and the notes on units whose fingerprints differ. Pure functions of
DataFrames: nothing here reads files except the artifact manifests of the model facts, or writes any.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from edgebench.results import ACCURACY_FIGURES, fingerprint_diff

from .load import GPU_PHASES, RESULT_KEY

__all__ = [
    "VALIDITY_COLUMNS",
    "device_tables",
    "failure_table",
    "fingerprint_notes",
    "model_facts",
    "pairwise_fingerprint_diff",
    "speedup_table",
    "unit_table",
    "validity_table",
    "warm_cold_table",
]


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
    result is, "invalid" when none is, else "k/n valid"), status, and beside them the accuracy on
    the run's labelled set (``top1``/``top5``, ``map``/``map50``/``map75``; empty without one).
    Several units of one device
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
                    # Accuracy per provider and precision: the units' mean (one figure when they agree).
                    **{f: done[f].astype(float).mean() for f in ACCURACY_FIGURES if f in done},
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


VALIDITY_COLUMNS = [
    "run_id",
    "host",
    "model",
    "provider",
    "mode",
    "validity",
    "images_measured",
    "validity_reasons",
]


def validity_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Every result's verdict with its reasons, invalid ones first."""
    if runs.empty:
        return pd.DataFrame(columns=VALIDITY_COLUMNS)
    order = runs["validity"].map({"invalid": 0, "unknown": 1, "valid": 2})
    return (
        runs.assign(_order=order)
        .sort_values(["_order", "host", "model", "provider", "mode"])[VALIDITY_COLUMNS]
        .reset_index(drop=True)
    )

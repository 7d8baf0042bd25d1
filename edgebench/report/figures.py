"""The report's figures (matplotlib, headless Agg backend, PNG).

- ``timeline``: inference time per image over the run, warm vs cold, per host and model (the
  thesis's Figures 4.3–4.11), temperature and throttle events on a second axis where telemetry has
  them;
- ``boxplot``: inference time per model per device type and provider (Figure 4.12);
- ``fps``: FPS per model across device types and providers, per task (Figure 4.14);
- ``latency_gflops``: mean inference time against the catalog's GFLOPs, per device type.

Colours are fixed per provider (timelines, box plots, scatter) and per device type (FPS bars), so
the same thing has the same colour in every figure. Models run down the vertical axis of box plots
and bar charts, and the figure grows with their number, so 26 model names never overlap.
"""

from __future__ import annotations

import multiprocessing
import os
import re
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

__all__ = [
    "PROVIDER_COLORS",
    "boxplot_figure",
    "device_colors",
    "fps_figure",
    "latency_gflops_figure",
    "make_figures",
    "timeline_figure",
]

PROVIDER_COLORS = {
    "cpu": "#1f77b4",
    "cuda": "#2ca02c",
    "tensorrt": "#ff7f0e",
    "tensorrt-fp32": "#ff7f0e",
    "tensorrt-fp16": "#d62728",
    "tensorrt-int8": "#9467bd",
}
_SPARE = ["#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
_DEVICE_PALETTE = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
]
_HATCHES = ["", "//", "xx", "..", "\\\\", "++", "oo"]
_MARKERS = ["o", "s", "^", "D", "v", "P", "X"]
DPI = 90


def provider_color(provider: str) -> str:
    if provider not in PROVIDER_COLORS:
        PROVIDER_COLORS[provider] = _SPARE[len(PROVIDER_COLORS) % len(_SPARE)]
    return PROVIDER_COLORS[provider]


def device_colors(device_types) -> dict[str, str]:
    """One colour per device type, by sorted name: stable across the figures of one report."""
    return {d: _DEVICE_PALETTE[i % len(_DEVICE_PALETTE)] for i, d in enumerate(sorted(set(device_types)))}


def _slug(*parts: str) -> str:
    return "-".join(re.sub(r"[^A-Za-z0-9._]+", "_", str(p)).strip("_") for p in parts)


def _save(fig, path: Path) -> Path:
    # Fixed margins (set where the figure is made) instead of bbox_inches="tight": the tight
    # bounding box costs a second layout pass, a third of the time of a figure.
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _left_margin(labels, width_in: float, fontsize: float = 8) -> float:
    """Fraction of the figure width that the longest y tick label needs."""
    longest = max((len(str(label)) for label in labels), default=4)
    return min(0.6, (0.25 + longest * fontsize * 0.0085) / width_in)


def _temperature(tele: pd.DataFrame) -> pd.Series | None:
    cols = [c for c in tele.columns if c.startswith("temp_") and c.endswith("_c")]
    if not cols:
        return None
    return tele[cols].apply(pd.to_numeric, errors="coerce").max(axis=1)


def _throttle_times(tele: pd.DataFrame) -> np.ndarray:
    times = pd.to_numeric(tele["time"], errors="coerce")
    hit = np.zeros(len(tele), dtype=bool)
    if "pi_throttled_now" in tele:
        hit |= pd.to_numeric(tele["pi_throttled_now"], errors="coerce").fillna(0).to_numpy() != 0
    if "throttle_count" in tele:
        counts = pd.to_numeric(tele["throttle_count"], errors="coerce").ffill().fillna(0).to_numpy()
        hit[1:] |= np.diff(counts) > 0
    return times.to_numpy()[hit]


def timeline_figure(result_set, host: str, model: str, path: Path) -> dict | None:
    """Inference time per image for every provider × mode of one host and model."""
    runs = result_set.runs
    sel = runs[(runs["host"] == host) & (runs["model"] == model) & (runs["rows"] > 0)]
    if sel.empty:
        return None
    fig, ax = plt.subplots(figsize=(9, 4.2))
    fig.subplots_adjust(left=0.08, right=0.91, top=0.86, bottom=0.12)
    temp_ax = None
    legend_extra = []
    for row in sel.sort_values(["provider", "mode"]).itertuples(index=False):
        rows = result_set.rows_for(row.run_id, host, model, row.provider, row.mode)
        if rows.empty:
            continue
        style = "-" if row.mode == "warm" else "--"
        ax.plot(
            rows["index"],
            rows["infer_ms"],
            style,
            color=provider_color(row.provider),
            linewidth=1.1,
            label=f"{row.provider} {row.mode}",
        )
        tele = result_set.telemetry(row.path)
        if tele is None or tele.empty or "time" not in tele:
            continue
        times = rows["time"].to_numpy(dtype=float)
        index = rows["index"].to_numpy(dtype=float)
        order = np.argsort(times)
        temp = _temperature(tele)
        tele_times = pd.to_numeric(tele["time"], errors="coerce").to_numpy()
        inside = (tele_times >= times.min() - 1) & (tele_times <= times.max() + 1)
        if temp is not None and inside.any():
            temp_ax = temp_ax or ax.twinx()
            x = np.interp(tele_times[inside], times[order], index[order])
            temp_ax.plot(x, temp.to_numpy()[inside], style, color="#aa3333", alpha=0.6, linewidth=1)
        for when in _throttle_times(tele):
            if times.min() - 1 <= when <= times.max() + 1:
                ax.axvline(
                    np.interp(when, times[order], index[order]), color="#cc0000", alpha=0.25, linewidth=3
                )
                if not legend_extra:
                    legend_extra.append(
                        plt.Line2D([], [], color="#cc0000", alpha=0.4, linewidth=3, label="throttling")
                    )
    if temp_ax is not None:
        temp_ax.set_ylabel("temperature (°C), red", color="#aa3333")
        legend_extra.append(plt.Line2D([], [], color="#aa3333", alpha=0.6, label="temperature"))
    device = sel["device_type"].iloc[0]
    ax.set_title(f"{model} on {host} ({device})\ninference time per image", fontsize=11)
    ax.set_xlabel("image (measured order)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("inference time (ms)")
    ax.set_ylim(0, ax.get_ylim()[1] * 1.25)  # headroom for the legend
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(
        handles + legend_extra,
        labels + [h.get_label() for h in legend_extra],
        fontsize=8,
        loc="upper right",
        ncol=2,
    )
    _save(fig, path)
    return {
        "kind": "timeline",
        "path": path,
        "title": f"{model} on {host}",
        "host": host,
        "model": model,
        "device_type": device,
    }


def boxplot_figure(result_set, device: str, provider: str, mode: str, path: Path) -> dict | None:
    """Inference time per model (all units of the device type pooled) as horizontal box plots."""
    timings = result_set.timings()
    rows = timings[
        (timings["device_type"] == device) & (timings["provider"] == provider) & (timings["mode"] == mode)
    ]
    if rows.empty:
        return None
    order = rows.groupby("model")["infer_ms"].median().sort_values(ascending=False).index.tolist()
    data = [rows.loc[rows["model"] == m, "infer_ms"].to_numpy() for m in order]
    height = max(3.0, 1.4 + 0.32 * len(order))
    fig, ax = plt.subplots(figsize=(9, height))
    fig.subplots_adjust(left=_left_margin(order, 9), right=0.97, top=1 - 0.6 / height, bottom=0.55 / height)
    box = ax.boxplot(
        data,
        vert=False,
        patch_artist=True,
        showfliers=True,
        widths=0.6,
        flierprops={"markersize": 2, "alpha": 0.4},
    )
    for patch in box["boxes"]:
        patch.set_facecolor(provider_color(provider))
        patch.set_alpha(0.55)
    ax.set_yticks(range(1, len(order) + 1), order, fontsize=8)
    lows = [d.min() for d in data if d.size]
    highs = [d.max() for d in data if d.size]
    if lows and min(lows) > 0 and max(highs) / min(lows) > 30:
        ax.set_xscale("log")
    units = rows["host"].nunique()
    ax.set_title(
        f"{device}, {provider} {mode}: inference time per model ({units} unit{'s' * (units > 1)})",
        fontsize=11,
    )
    ax.set_xlabel("inference time per image (ms)")
    ax.grid(alpha=0.3, axis="x")
    _save(fig, path)
    return {
        "kind": "boxplot",
        "path": path,
        "title": f"{device}, {provider} {mode}",
        "device_type": device,
        "provider": provider,
        "mode": mode,
    }


def _preferred_mode(frame: pd.DataFrame) -> str:
    return "warm" if (frame["mode"] == "warm").any() else str(frame["mode"].iloc[0])


def fps_figure(runs: pd.DataFrame, task: str, path: Path, colors: dict[str, str]) -> dict | None:
    """FPS per model (units averaged) for every device type × provider, one task."""
    done = runs[(runs["status"] == "complete") & (runs["task"].fillna("unknown") == task)]
    if done.empty:
        return None
    mode = _preferred_mode(done)
    done = done[done["mode"] == mode]
    means = done.groupby(["model", "device_type", "provider"], as_index=False)["fps"].mean()
    series = sorted({(d, p) for d, p in zip(means["device_type"], means["provider"], strict=True)})
    providers = sorted({p for _, p in series})
    models = means.groupby("model")["fps"].max().sort_values().index.tolist()
    bar = 0.8 / max(1, len(series))
    fig_h = max(3.0, 1.6 + max(0.35, 0.16 * len(series)) * len(models))
    fig, ax = plt.subplots(figsize=(9, fig_h))
    fig.subplots_adjust(left=_left_margin(models, 9), right=0.97, top=1 - 0.6 / fig_h, bottom=0.6 / fig_h)
    for k, (device, provider) in enumerate(series):
        part = means[(means["device_type"] == device) & (means["provider"] == provider)].set_index("model")
        values = [part["fps"].get(m, np.nan) for m in models]
        ax.barh(
            np.arange(len(models)) + (k - (len(series) - 1) / 2) * bar,
            values,
            height=bar,
            color=colors[device],
            hatch=_HATCHES[providers.index(provider) % len(_HATCHES)],
            edgecolor="white",
            label=f"{device} · {provider}",
        )
    ax.set_yticks(range(len(models)), models, fontsize=8)
    ax.set_xlabel(f"frames per second (1000 / mean pre+infer+post ms), {mode} mode")
    ax.set_title(f"{task}: FPS per model across devices and providers", fontsize=11)
    ax.grid(alpha=0.3, axis="x")
    ax.legend(fontsize=8, loc="lower right")
    _save(fig, path)
    return {"kind": "fps", "path": path, "title": f"FPS, {task}", "task": task}


def latency_gflops_figure(runs: pd.DataFrame, facts: pd.DataFrame, device: str, path: Path) -> dict | None:
    """Mean inference time against GFLOPs (catalog reference), one device type, every provider."""
    gflops = facts.set_index("model")["gflops_ref"] if not facts.empty else pd.Series(dtype=float)
    done = runs[(runs["status"] == "complete") & (runs["device_type"] == device)]
    if done.empty:
        return None
    mode = _preferred_mode(done)
    done = done[done["mode"] == mode]
    means = done.groupby(["model", "provider"], as_index=False)["infer_ms_mean"].mean()
    means["gflops"] = means["model"].map(gflops)
    means = means.dropna(subset=["gflops", "infer_ms_mean"])
    if means.empty:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 5))
    fig.subplots_adjust(left=0.11, right=0.97, top=0.92, bottom=0.11)
    for k, (provider, part) in enumerate(means.groupby("provider", sort=True)):
        ax.scatter(
            part["gflops"],
            part["infer_ms_mean"],
            color=provider_color(provider),
            marker=_MARKERS[k % len(_MARKERS)],
            label=provider,
            alpha=0.85,
        )
        if means["model"].nunique() <= 8:
            for row in part.itertuples(index=False):
                ax.annotate(
                    row.model,
                    (row.gflops, row.infer_ms_mean),
                    fontsize=7,
                    xytext=(4, 3),
                    textcoords="offset points",
                )
    if means["gflops"].max() / max(means["gflops"].min(), 1e-9) > 20:
        ax.set_xscale("log")
    if means["infer_ms_mean"].max() / max(means["infer_ms_mean"].min(), 1e-9) > 20:
        ax.set_yscale("log")
    ax.set_xlabel("GFLOPs per image (catalog reference)")
    ax.set_ylabel(f"mean inference time (ms), {mode} mode")
    ax.set_title(f"{device}: latency vs GFLOPs")
    ax.grid(alpha=0.3, which="both")
    ax.legend(title="provider", fontsize=8)
    _save(fig, path)
    return {
        "kind": "latency_gflops",
        "path": path,
        "title": f"{device}: latency vs GFLOPs",
        "device_type": device,
    }


_STATE: dict = {}


def _render(job: tuple) -> dict | None:
    kind, args = job
    result_set, facts, colors = _STATE["result_set"], _STATE["facts"], _STATE["colors"]
    if kind == "fps":
        return fps_figure(result_set.runs, *args, colors)
    if kind == "latency_gflops":
        return latency_gflops_figure(result_set.runs, facts, *args)
    if kind == "boxplot":
        return boxplot_figure(result_set, *args)
    return timeline_figure(result_set, *args)


def make_figures(
    result_set, facts: pd.DataFrame, out_dir: Path, timelines: bool = True, workers: int | None = None
) -> list[dict]:
    """Every figure of the report under ``out_dir`` (created); returns their descriptions.

    Figures are independent, so with more than a few of them they are drawn by ``workers`` forked
    processes (default: the CPU count, at most 8; 1 draws them here)."""
    out_dir = Path(out_dir)
    runs = result_set.runs
    have_rows = runs[runs["rows"] > 0]
    jobs: list[tuple] = []
    for task in sorted(runs["task"].fillna("unknown").unique()):
        jobs.append(("fps", (task, out_dir / f"fps-{_slug(task)}.png")))
    for device in sorted(runs["device_type"].unique()):
        jobs.append(("latency_gflops", (device, out_dir / f"latency-gflops-{_slug(device)}.png")))
    keys = have_rows[["device_type", "provider", "mode"]].drop_duplicates()
    for row in keys.sort_values(["device_type", "provider", "mode"]).itertuples(index=False):
        name = f"box-{_slug(row.device_type, row.provider, row.mode)}.png"
        jobs.append(("boxplot", (row.device_type, row.provider, row.mode, out_dir / name)))
    if timelines:
        pairs = have_rows[["host", "model"]].drop_duplicates().sort_values(["host", "model"])
        for row in pairs.itertuples(index=False):
            jobs.append(
                ("timeline", (row.host, row.model, out_dir / f"timeline-{_slug(row.host, row.model)}.png"))
            )
    if not have_rows.empty:
        result_set.rows_for("", "", "", "", "")  # read and group the per-image rows once, before forking
    _STATE.update(result_set=result_set, facts=facts, colors=device_colors(runs["device_type"]))
    workers = workers if workers is not None else min(8, os.cpu_count() or 1)
    try:
        if workers > 1 and len(jobs) > 8 and "fork" in multiprocessing.get_all_start_methods():
            context = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                figures = list(pool.map(_render, jobs, chunksize=max(1, len(jobs) // (workers * 4))))
        else:
            figures = [_render(job) for job in jobs]
    finally:
        _STATE.clear()
    return [fig for fig in figures if fig]

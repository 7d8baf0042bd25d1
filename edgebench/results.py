"""Reading result trees on the controller: `results/<run_id>/<host>/<model>/<provider>-<mode>/`.

The file formats are the runtime's (see docs/architecture.md, "Result files"); this module only
walks and checks them, so that collection and reporting share one reading of a tree.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "ACCURACY_FIGURES",
    "DEVICE_LABEL_FILE",
    "FINGERPRINT_FIELDS",
    "HostCheck",
    "ResultsError",
    "RunRecord",
    "accuracy_columns",
    "check_host_tree",
    "check_run_dir",
    "device_type",
    "find_run_dirs",
    "fingerprint",
    "fingerprint_diff",
    "host_dirs",
    "read_device_label",
    "read_env",
    "read_status",
    "run_records",
    "run_started",
    "schema_versions",
    "summary_rows",
    "validity_of",
    "write_summary_csv",
]

SUPPORTED_SCHEMA = 1


@dataclass
class RunRecord:
    host: str
    model: str
    provider: str
    mode: str
    path: Path
    summary: dict | None
    rows: int
    problem: str | None = None


@dataclass
class HostCheck:
    host: str
    runs: int = 0
    rows: int = 0
    problems: list[str] = field(default_factory=list)


def _count_rows(timings: Path) -> int:
    if not timings.exists():
        return 0
    with timings.open("rb") as handle:
        data = handle.read()
    # Header first; a torn last line (no trailing newline after a kill) is not a row.
    return max(0, data.count(b"\n") - 1)


def _read_summary(path: Path) -> tuple[dict | None, str | None]:
    if not path.exists():
        return None, "summary.json missing"
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return None, f"summary.json unreadable: {exc}"
    if summary.get("schema_version") != SUPPORTED_SCHEMA:
        return (
            summary,
            f"summary.json schema_version {summary.get('schema_version')!r} is not {SUPPORTED_SCHEMA}",
        )
    return summary, None


def run_records(host_dir: Path) -> list[RunRecord]:
    """Every model x provider x mode result of one host, with its summary and row count."""
    records = []
    for run_dir in sorted(p for p in Path(host_dir).glob("*/*") if p.is_dir()):
        provider, _, mode = run_dir.name.rpartition("-")
        summary, problem = _read_summary(run_dir / "summary.json")
        rows = _count_rows(run_dir / "timings.csv")
        if summary is not None and problem is None and summary.get("status") == "complete":
            measured = (summary.get("images") or {}).get("measured")
            if measured != rows:
                problem = f"timings.csv has {rows} rows but summary.json says {measured} images were measured"
        records.append(
            RunRecord(
                Path(host_dir).name, run_dir.parent.name, provider, mode, run_dir, summary, rows, problem
            )
        )
    return records


def check_host_tree(host_dir: Path) -> HostCheck:
    """Files present, summaries parse, row counts match the summaries."""
    check = HostCheck(Path(host_dir).name)
    if not (Path(host_dir) / "env.json").exists():
        check.problems.append("env.json missing")
    for record in run_records(host_dir):
        check.runs += 1
        check.rows += record.rows
        if record.problem:
            check.problems.append(f"{record.model}/{record.provider}-{record.mode}: {record.problem}")
    return check


def _is_host_dir(path: Path) -> bool:
    """A host's tree: env.json, status.json or a result directory. The report folder that
    ``edgebench report`` writes into the run directory (report.html, figures/, tables/) is not."""
    if (path / "env.json").exists() or (path / "status.json").exists():
        return True
    if (path / "report.html").exists() or (path / "report.md").exists():
        return False
    return any(p.is_dir() for p in path.glob("*/*"))


def host_dirs(run_dir: Path) -> list[Path]:
    return sorted(
        p for p in Path(run_dir).iterdir() if p.is_dir() and not p.name.startswith(".") and _is_host_dir(p)
    )


#: summary.json's ``accuracy`` figures, which the collect phase scores on a labelled set
ACCURACY_FIGURES = ("top1", "top5", "map", "map50", "map75")

_SUMMARY_COLUMNS = ["host", "model", "provider", "mode", "status", "reason", "images", "pre_ms", "infer_ms",
                    "post_ms", "fps", "fps_e2e", "infer_p50_ms", "infer_p99_ms", "stability", "load_ms",
                    "first_inference_ms", "validity", "validity_reasons", "accuracy", "accuracy_reason",
                    "accuracy_dataset", *ACCURACY_FIGURES]  # fmt: skip


def accuracy_columns(summary: dict | None) -> dict:
    """One result's accuracy as flat columns: ``accuracy`` (``computed``, ``unavailable``, or empty
    when the run measured no labelled set), ``accuracy_reason``, ``accuracy_dataset`` and the
    figures (None where the task has none: top-1/top-5 for classification, mAP for detection)."""
    block = (summary or {}).get("accuracy") or {}
    row = {
        "accuracy": block.get("status") or "",
        "accuracy_reason": block.get("reason") or "",
        "accuracy_dataset": block.get("dataset") or "",
    }
    row.update({figure: block.get(figure) for figure in ACCURACY_FIGURES})
    return row


def validity_of(summary: dict | None) -> str:
    """``valid`` / ``invalid`` from summary.json's ``validity``; ``unknown`` for results written
    before the runtime judged validity (or without a summary)."""
    verdict = ((summary or {}).get("validity") or {}).get("verdict")
    return verdict if verdict in ("valid", "invalid") else "unknown"


def _mean(summary: dict, phase: str):
    return ((summary.get("phases") or {}).get(phase) or {}).get("mean")


def summary_rows(run_dir: Path) -> list[dict]:
    """One flat row per host x model x provider x mode of a run."""
    rows = []
    for host_dir in host_dirs(run_dir):
        for record in run_records(host_dir):
            summary = record.summary or {}
            infer = (summary.get("phases") or {}).get("infer_ms") or {}
            rows.append({
                "host": record.host,
                "model": record.model,
                "provider": record.provider,
                "mode": record.mode,
                "status": summary.get("status", "missing"),
                "reason": summary.get("reason") or record.problem or "",
                "images": record.rows,
                "pre_ms": _mean(summary, "pre_ms"),
                "infer_ms": _mean(summary, "infer_ms"),
                "post_ms": _mean(summary, "post_ms"),
                "fps": summary.get("fps"),
                "fps_e2e": summary.get("fps_e2e"),
                "infer_p50_ms": infer.get("p50"),
                "infer_p99_ms": infer.get("p99"),
                "stability": (summary.get("stability") or {}).get("verdict"),
                "load_ms": summary.get("load_ms"),
                "first_inference_ms": summary.get("first_inference_ms"),
                "validity": validity_of(summary),
                "validity_reasons": "; ".join((summary.get("validity") or {}).get("reasons") or []),
                **accuracy_columns(summary),
            })  # fmt: skip
    return rows


def write_summary_csv(run_dir: Path) -> Path:
    path = Path(run_dir) / "summary.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=_SUMMARY_COLUMNS)
        writer.writeheader()
        writer.writerows(summary_rows(run_dir))
    return path


# --- checks and fingerprints shared by the report and history -------------------------------------


class ResultsError(ValueError):
    """A run directory cannot be reported on: missing, empty, without summaries, or holding
    results of an unsupported or mixed schema version."""


def _read_json_file(path: Path) -> dict | None:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_env(host_dir: Path) -> dict | None:
    """The host's env.json (the runtime's probe), or None when missing or unreadable."""
    return _read_json_file(Path(host_dir) / "env.json")


def read_status(host_dir: Path) -> dict | None:
    """The host's status.json (progress and the run plan), or None."""
    return _read_json_file(Path(host_dir) / "status.json")


def _csv_schema(path: Path) -> int | str | None:
    """schema_version of a result CSV: the first column of its first data row."""
    try:
        with Path(path).open() as handle:
            handle.readline()
            first = handle.readline()
    except OSError:
        return None
    if not first.strip():
        return None
    value = first.split(",", 1)[0].strip()
    try:
        return int(value)
    except ValueError:
        return value


def schema_versions(run_dir: Path) -> dict[object, list[str]]:
    """``{schema_version: [files]}`` over env.json, summary.json, timings.csv and telemetry.csv of
    every host of a run (paths relative to the run directory). CSVs without rows are left out."""
    run_dir = Path(run_dir)
    found: dict[object, list[str]] = {}

    def note(version, path: Path) -> None:
        found.setdefault(version, []).append(str(path.relative_to(run_dir)))

    for host_dir in host_dirs(run_dir):
        env = read_env(host_dir)
        if env is not None:
            note(env.get("schema_version"), host_dir / "env.json")
        for result_dir in sorted(p for p in host_dir.glob("*/*") if p.is_dir()):
            summary = _read_json_file(result_dir / "summary.json")
            if summary is not None:
                note(summary.get("schema_version"), result_dir / "summary.json")
            for name in ("timings.csv", "telemetry.csv"):
                if (result_dir / name).exists():
                    version = _csv_schema(result_dir / name)
                    if version is not None:
                        note(version, result_dir / name)
    return found


def _describe_versions(found: dict[object, list[str]]) -> str:
    parts = []
    for version, files in sorted(found.items(), key=lambda item: str(item[0])):
        example = ", ".join(files[:2]) + (", ..." if len(files) > 2 else "")
        parts.append(f"schema_version {version!r} in {len(files)} file(s) ({example})")
    return "; ".join(parts)


def check_run_dir(run_dir: Path) -> list[Path]:
    """Raise ResultsError unless ``run_dir`` is a readable run of one supported schema version;
    return its host directories."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise ResultsError(f"no results directory {run_dir}")
    if not run_dir.is_dir():
        raise ResultsError(f"{run_dir} is not a directory")
    hosts = host_dirs(run_dir)
    if not hosts:
        raise ResultsError(f"{run_dir} is empty: no host directories (expected {run_dir}/<host>/...)")
    if not any(p.is_file() for host in hosts for p in host.glob("*/*/summary.json")):
        raise ResultsError(
            f"{run_dir} holds no results: no <host>/<model>/<provider>-<mode>/summary.json under it"
        )
    found = schema_versions(run_dir)
    if len(found) > 1:
        raise ResultsError(
            f"{run_dir} mixes result schema versions, which cannot be reported together: "
            + _describe_versions(found)
        )
    if found and next(iter(found)) != SUPPORTED_SCHEMA:
        raise ResultsError(
            f"{run_dir} holds results of {_describe_versions(found)}; this edgebench reads "
            f"schema_version {SUPPORTED_SCHEMA} only"
        )
    return hosts


def find_run_dirs(results_dir: Path) -> list[Path]:
    """Directories under ``results_dir`` that look like runs (a host with env.json or a summary)."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        return []
    runs = []
    for candidate in sorted(p for p in results_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for host in host_dirs(candidate):
            if (host / "env.json").exists() or next(host.glob("*/*/summary.json"), None):
                runs.append(candidate)
                break
    return runs


def run_started(run_dir: Path) -> str:
    """When a run began: the earliest ``started`` of its summaries (ISO 8601 UTC), else of its
    status.json files, else the directory name (run ids are UTC time stamps by default)."""
    stamps = []
    for host in host_dirs(run_dir):
        for path in host.glob("*/*/summary.json"):
            summary = _read_json_file(path) or {}
            if summary.get("started"):
                stamps.append(str(summary["started"]))
        if not stamps:
            status = read_status(host) or {}
            if status.get("started"):
                stamps.append(str(status["started"]))
    return min(stamps) if stamps else Path(run_dir).name


DEVICE_LABEL_FILE = "device.json"


def read_device_label(host_dir: Path) -> str | None:
    """The inventory's ``edgebench_device_label`` for this host, as the collect phase recorded it
    in ``<host>/device.json``; None when the inventory sets none."""
    data = _read_json_file(Path(host_dir) / DEVICE_LABEL_FILE) or {}
    label = str(data.get("device_label") or "").strip()
    return label or None


def write_device_label(host_dir: Path, label: str) -> None:
    """Record the inventory's ``edgebench_device_label`` beside a host's collected results."""
    path = Path(host_dir) / DEVICE_LABEL_FILE
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps({"device_label": label}, indent=2) + "\n")
    temporary.replace(path)


def device_type(env: dict | None, label: str | None = None) -> str:
    """What kind of device a host is, to group units of one type: what the user says it is (the
    inventory's ``edgebench_device_label``, ``label``), else ``device_type`` when the probe (or
    EDGEBENCH_PROBE_OVERRIDE) sets it, else the board model without its revision ("Raspberry Pi 4
    Model B") from the device tree, else the DMI vendor and product, else the CPU model and
    architecture. Boards that share a CPU (Orin Nano and Orin NX) are told apart by the first
    three; a fleet of look-alike hosts (containers, VMs) only by the label."""
    if label:
        return label
    env = env or {}
    if env.get("device_type"):
        return str(env["device_type"])
    board = (env.get("board_model") or "").replace("\x00", "").strip()
    if board:
        return re.sub(r"\s+Rev\s+[\w.]+$", "", board)
    product = (env.get("dmi_product") or "").strip()
    if product:
        return product
    cpu = (env.get("cpu_model") or "").strip()
    arch = (env.get("arch") or "").strip()
    if cpu or arch:
        return f"{cpu or 'unknown CPU'} ({arch})" if arch else cpu
    return str(env.get("hostname") or "unknown device")


#: What may explain a difference between two results: software versions, power mode, governor,
#: the model file itself. (name, how to read it from env.json / summary.json)
FINGERPRINT_FIELDS = (
    "board", "os", "kernel", "jetpack", "l4t", "power_mode", "cpu_governor", "python",
    "edgebench_runtime", "onnxruntime", "tensorrt", "numpy", "opencv", "model_sha256", "backend_version",
)  # fmt: skip


def fingerprint(env: dict | None, summary: dict | None = None) -> dict[str, str | None]:
    """The comparable facts of a host (and of one result, when ``summary`` is given)."""
    env = env or {}
    versions = env.get("versions") or {}
    jetson = env.get("jetson") or {}
    nvpmodel = env.get("nvpmodel") or {}
    python = env.get("python") or {}
    out: dict[str, str | None] = {
        "board": env.get("board_model"),
        "os": env.get("os"),
        "kernel": env.get("kernel"),
        "jetpack": jetson.get("jetpack"),
        "l4t": jetson.get("l4t_release"),
        "power_mode": nvpmodel.get("name") if isinstance(nvpmodel, dict) else nvpmodel,
        "cpu_governor": env.get("cpu_governor"),
        "python": python.get("version") if isinstance(python, dict) else python,
        "edgebench_runtime": env.get("edgebench_runtime"),
        "onnxruntime": versions.get("onnxruntime"),
        "tensorrt": versions.get("tensorrt"),
        "numpy": versions.get("numpy"),
        "opencv": versions.get("opencv"),
        "model_sha256": None,
        "backend_version": None,
    }
    if summary:
        out["model_sha256"] = (summary.get("settings") or {}).get("model_sha256") or (
            summary.get("artifact") or {}
        ).get("sha256")
        out["backend_version"] = (summary.get("backend") or {}).get("version")
        out["edgebench_runtime"] = summary.get("runtime_version") or out["edgebench_runtime"]
    return {key: (None if value is None else str(value)) for key, value in out.items()}


def fingerprint_diff(a: dict, b: dict) -> dict[str, tuple[str | None, str | None]]:
    """Fields whose values differ between two fingerprints, as ``{field: (a, b)}``."""
    return {key: (a.get(key), b.get(key)) for key in FINGERPRINT_FIELDS if a.get(key) != b.get(key)}

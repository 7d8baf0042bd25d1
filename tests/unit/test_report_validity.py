"""The validity verdict where people read results: report.md, report.html, the tables, the
``edgebench report`` table the playbook prints at the end, and the runtime's verdict carried
through unchanged (an invalid result is never shown as valid)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from synthetic_results import synthetic_env, synthetic_run, write_result

from edgebench.report import build_report
from edgebench.report.load import load_results
from edgebench.report.tables import device_tables


def _fleet(tmp_path):
    root = tmp_path / "run1"
    hosts = {"pi-a": synthetic_env("pi-a", "Raspberry Pi 4 Model B Rev 1.4")}
    # 400 images of 10 ms: 64 images and over 3 s (valid); 30 images of 10 ms: too few and too short.
    synthetic_run(root, hosts, {"long": 10.0}, modes=("warm",), count=400, seed=1)
    synthetic_run(root, hosts, {"short": 10.0}, modes=("warm",), count=30, seed=2)
    rng = np.random.default_rng(3)
    noisy = rng.normal(10.0, 0.1, 400)
    noisy[::2] *= 1.5  # half the images 50 % slower: the robust dispersion sees it
    write_result(root / "pi-a" / "noisy" / "cpu-warm", host="pi-a", model="noisy", provider="cpu",
                 mode="warm", infer_ms=noisy, rng=rng)  # fmt: skip
    return root


def test_verdicts_and_reasons_reach_the_tables_and_the_reports(tmp_path):
    root = _fleet(tmp_path)
    result = load_results(root)
    runs = result.runs.set_index("model")
    assert runs.loc["long", "validity"] == "valid" and runs.loc["long", "validity_reasons"] == ""
    assert runs.loc["short", "validity"] == "invalid"
    assert "30 measured images, under the 64" in runs.loc["short", "validity_reasons"]
    assert "measured for" in runs.loc["short", "validity_reasons"]
    assert "varies by" in runs.loc["noisy", "validity_reasons"]
    assert np.isnan(runs.loc["long", "infer_ms_p99"])  # 400 < 662 images: no p99
    assert runs.loc["long", "infer_ms_p90_es"] >= runs.loc["long", "infer_ms_p90"]
    table = next(iter(device_tables(result.runs).values())).set_index("model")
    assert table.loc["long", "validity"] == "valid" and table.loc["short", "validity"] == "invalid"
    assert table.loc["long", "unit_hosts"] == "pi-a"

    html = build_report(root, history=False, timelines=False)
    text = html.read_text()
    assert 'id="validity"' in text and "30 measured images, under the 64" in text
    assert "1/3" in text  # results valid
    markdown = (html.parent / "report.md").read_text()
    assert "## Validity" in markdown and "1/3 valid" in markdown
    assert "30 measured images, under the 64" in markdown


def test_the_closing_table_shows_the_verdict(tmp_path):
    root = _fleet(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "edgebench.cli", "report", str(root), "--format", "csv"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[1]: line for line in proc.stdout.splitlines() if line.startswith("pi-a")}
    assert " valid " in lines["long"] and " invalid " in lines["short"]
    assert "30 measured images" in lines["short"]


def test_results_before_the_verdict_read_as_unknown(tmp_path):
    root = _fleet(tmp_path)
    path = root / "pi-a" / "long" / "cpu-warm" / "summary.json"
    summary = json.loads(path.read_text())
    del summary["validity"]
    path.write_text(json.dumps(summary))
    runs = load_results(root).runs.set_index("model")
    assert runs.loc["long", "validity"] == "unknown"


def test_edgebench_run_closes_with_the_verdicts(tmp_path, monkeypatch, capsys):
    from edgebench import cli, fleet

    root = _fleet(tmp_path)

    def fake_run_benchmark(**kwargs):
        return fleet.FleetRun(0, "successful", "run1", {"pi-a": fleet.HostProgress("pi-a")}, root)

    monkeypatch.setattr(fleet, "run_benchmark", fake_run_benchmark)
    assert cli.main(["run"]) == 0
    out = capsys.readouterr().out
    header, _rule, row = out.splitlines()[:3]
    assert "valid" in header.split() and "1/3" in row.split()
    assert "invalid: pi-a short cpu-warm: 30 measured images, under the 64" in out

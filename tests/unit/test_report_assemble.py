"""Assemble once, render three ways: the CSV, Markdown and HTML writers show what the ``Report``
holds and compute nothing of their own; and the one text-table format of the terminal."""

from __future__ import annotations

from synthetic_results import synthetic_env, synthetic_run

from edgebench.report import assemble_report, load_results
from edgebench.report.render_csv import csv_tables
from edgebench.report.render_html import render_html
from edgebench.report.render_markdown import render_markdown
from edgebench.text_table import text_table

PI4 = "Raspberry Pi 4 Model B"


def _report(tmp_path):
    hosts = {
        "pi-a": synthetic_env("pi-a", f"{PI4} Rev 1.4"),
        "pi-b": {
            **synthetic_env("pi-b", f"{PI4} Rev 1.5", versions={"onnxruntime": "1.18.0"}),
            "_speed": 1.2,
        },
    }
    run = synthetic_run(tmp_path / "run1", hosts, {"fast": 10.0, "slow": 40.0}, count=8, seed=1)
    return assemble_report(load_results(run), history=False)


def test_the_three_writers_render_the_one_assembled_report(tmp_path):
    report = _report(tmp_path)
    # pi-b's newer ONNX Runtime splits the device type: its own tables, named after the difference.
    assert [d.caption for d in report.devices] == [
        f"{PI4} · cpu · cold",
        f"{PI4} · cpu · warm",
        f"{PI4} [onnxruntime 1.18.0] · cpu · cold",
        f"{PI4} [onnxruntime 1.18.0] · cpu · warm",
    ]
    assert report.overview["results"] == 8 and report.overview["complete"] == 8
    assert report.figures == [] and report.changes.empty and report.changes_note == ""
    markdown = render_markdown(report)
    html = render_html(report, files=["tables/results.csv"])
    tables = csv_tables(report)
    for device in report.devices:
        assert f"### {device.caption}" in markdown
        assert f'id="{device.name}"' in html and device.name in tables
        assert device.shown_columns[0] == "model" and "fastest" not in device.shown_columns
    assert report.warnings
    for warning in report.warnings:
        assert f"- {warning['text']}" in markdown
    assert {"results", "hosts", "units", "speedup", "model_facts", "warm_cold", "failures"} <= set(tables)
    assert "settings_key" not in tables["results"] and len(tables["results"]) == len(report.runs)
    assert 'href="tables/results.csv"' in html


def test_text_table_is_left_aligned_two_spaces_apart_under_a_rule():
    assert text_table(["host", "runs"], [["pi-a", 12], ["raspberry", None]]).splitlines() == [
        "host       runs",
        "---------  ----",
        "pi-a       12  ",
        "raspberry  None",
    ]
    assert text_table(["a"], []) == "a\n-"


def test_every_provider_of_the_vocabulary_has_its_own_fixed_colour():
    from edgebench.report.figures import PROVIDER_COLORS
    from edgebench_runtime.vocabulary import PRECISIONS, PROVIDER_FAMILIES, provider_names

    names = provider_names(PROVIDER_FAMILIES, list(PRECISIONS))
    assert set(names) <= set(PROVIDER_COLORS)
    assert len({PROVIDER_COLORS[name] for name in names}) == len(names)

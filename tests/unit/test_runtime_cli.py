"""cli.py: help text with exit codes, probe on fake roots and overrides."""

import json

from edgebench_runtime import cli, probe


def test_help_documents_exit_codes(capsys):
    parser = cli.build_parser()
    text = parser.format_help() + parser._subparsers._group_actions[0].choices["run"].format_help()
    for code in ("0 ", "1 ", "2 ", "3 ", "4 ", "130"):
        assert code in cli.EXIT_CODES_HELP
    assert "Exit codes of ``run``" in text
    assert "--count" in text and "--cooldown" in text


def test_probe_reads_a_jetson_like_root(tmp_path, monkeypatch):
    (tmp_path / "proc/device-tree").mkdir(parents=True)
    (tmp_path / "proc/device-tree/model").write_bytes(b"NVIDIA Jetson Nano Developer Kit\x00")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/nv_tegra_release").write_text(
        "# R32 (release), REVISION: 7.1, GCID: 29818004, BOARD: t210ref\n"
    )
    (tmp_path / "etc/os-release").write_text('PRETTY_NAME="Ubuntu 18.04.6 LTS"\n')
    zone = tmp_path / "sys/class/thermal/thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "type").write_text("CPU-therm")
    (zone / "temp").write_text("39500")
    data = probe.probe(root=str(tmp_path))
    assert data["board_model"] == "NVIDIA Jetson Nano Developer Kit"
    assert data["jetson"] == {"l4t_release": "32.7.1", "jetpack": "4.6.x"}
    assert data["os"] == "Ubuntu 18.04.6 LTS"
    assert data["thermal_zones"] == [{"name": "cpu_therm", "temp_c": 39.5}]
    assert data["cpu_governor"] is None and data["memory_total_mb"] is None
    override = tmp_path / "override.json"
    override.write_text(json.dumps({"board_model": "Raspberry Pi 4 Model B Rev 1.4"}))
    monkeypatch.setenv("EDGEBENCH_PROBE_OVERRIDE", str(override))
    assert probe.probe(root=str(tmp_path))["board_model"] == "Raspberry Pi 4 Model B Rev 1.4"


def test_probe_main_prints_json(capsys, tmp_path):
    assert cli.main(["probe", "--output", str(tmp_path / "env.json")]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["schema_version"] == 1
    assert json.loads((tmp_path / "env.json").read_text())["hostname"] == printed["hostname"]

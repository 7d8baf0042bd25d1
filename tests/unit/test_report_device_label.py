"""A device type is what the user says it is: three look-alike hosts (one CPU model, no board
model, as on a simulated fleet) labelled in the inventory are reported per label, never averaged
as one type; without labels the board model, then DMI, then the CPU decide."""

from __future__ import annotations

import json

from synthetic_results import synthetic_env, synthetic_run

from edgebench.report.load import load_results
from edgebench.report.tables import device_tables
from edgebench.results import device_type

LABELS = {"rpi4-sim": "Raspberry Pi 4", "nano-sim": "Jetson Nano", "xavier-sim": "Jetson Xavier"}


def _lookalike(host):
    env = synthetic_env(host, None)
    env.update({"board_model": None, "cpu_model": "AMD EPYC 7B13", "arch": "x86_64"})
    return env


def test_labelled_hosts_are_reported_per_label(tmp_path):
    root = tmp_path / "run1"
    hosts = {
        name: {**_lookalike(name), "_speed": speed}
        for name, speed in zip(LABELS, (1.0, 2.0, 4.0), strict=True)
    }
    synthetic_run(root, hosts, {"m": 10.0}, modes=("warm",), count=100)
    unlabelled = load_results(root)
    assert set(unlabelled.hosts["device_type"]) == {"AMD EPYC 7B13 (x86_64)"}  # one type, spread huge
    for host, label in LABELS.items():
        (root / host / "device.json").write_text(json.dumps({"device_label": label}))
    result = load_results(root)
    assert dict(zip(result.hosts["host"], result.hosts["device_type"], strict=True)) == LABELS
    tables = device_tables(result.runs)
    assert {key[0] for key in tables} == set(LABELS.values())
    for host, label in LABELS.items():
        row = tables[(label, "cpu", "warm")].iloc[0]
        assert row["units"] == 1 and row["unit_hosts"] == host


def test_device_type_falls_back_from_label_to_board_to_dmi_to_cpu():
    env = {"board_model": "NVIDIA Jetson Orin NX Developer Kit", "cpu_model": "ARMv8", "arch": "aarch64"}
    assert device_type(env, "Orin NX 16GB") == "Orin NX 16GB"
    assert device_type(env) == "NVIDIA Jetson Orin NX Developer Kit"
    assert device_type({"dmi_product": "Intel NUC11TNHi5", "cpu_model": "i5", "arch": "x86_64"}) == (
        "Intel NUC11TNHi5"
    )
    assert device_type({"cpu_model": "i5", "arch": "x86_64"}) == "i5 (x86_64)"

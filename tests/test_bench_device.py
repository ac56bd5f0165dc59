"""bench/device.py, the script prepared for an accelerator, runs here at tiny sizes: a GPU
machine finds it working."""

from __future__ import annotations

import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def test_device_bench_measures_every_row_and_writes_its_table(in_project, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(BENCH))
    try:
        import device

        rows = device.main(["--tiny", "--json", str(in_project / "device.json")])
    finally:
        for name in ("device", "common", "step_timer"):  # bench's modules (generic names) leave with the test
            sys.modules.pop(name, None)
    written = json.loads((in_project / "device.json").read_text())
    assert written["rows"] == rows and written["device"] == "cpu"
    assert [(r["job"], r["side"]) for r in rows] == [
        ("classifier", "visionlab, eager"), ("classifier", "plain loop, eager"),
        ("classifier", "visionlab, compiled"), ("classifier", "plain loop, compiled"),
        ("dcgan_shapes", "visionlab"), ("gan_backbone_d_shapes", "visionlab")]
    assert all(r["value"] > 0 and r["peak_memory_mb"] > 0 for r in rows)
    assert "G steps/s" in capsys.readouterr().out

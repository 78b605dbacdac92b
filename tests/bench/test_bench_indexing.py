"""The indexing benchmark runs end to end (slow: `./dev test tests/bench -m slow`)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_DIR


@pytest.mark.slow
def test_bench_indexing_runs_and_reports(tmp_path):
    out = tmp_path / "indexing.json"
    subprocess.run([sys.executable, "bench/bench_indexing.py", "--photos", "8", "--workers", "1,2",
                    "--json", str(out)], cwd=PROJECT_DIR, check=True, timeout=900)
    result = json.loads(out.read_text())
    one, two = result["service"]
    for run in (one, two):
        assert run["images"] == 8 and run["faces"] >= 8 and run["images_per_s"] > 0
        assert run["ratio_per_process"] > 0 and run["cpu_ratio"] > 0
    assert (one["workers"], two["workers"]) == (1, 2)
    assert result["bare"]["images_per_s"] > 0

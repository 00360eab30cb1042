"""Keeps `make bench` from rotting: bench/bench.py --smoke runs the
gateway (conf/nginx.conf + kserve-worker on bench/models) and drives it
with wrk for about two seconds.  Nothing from bench/setup.sh is needed
(no Triton, MLServer or perf_analyzer); speed is not asserted, only that
numbers came out and nothing failed."""

import json
import os
import shutil
import subprocess
import sys

import pytest

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed")
def test_bench_smoke(tmp_path):
    out = tmp_path / "benchmarks.md"
    res = tmp_path / "results.json"
    p = subprocess.run(
        [sys.executable, os.path.join(TOP, "bench", "bench.py"), "--smoke",
         "--out", str(out), "--json", str(res)],
        capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr

    doc = json.loads(res.read_text())
    rows = [r for r in doc["results"]
            if r["gen"] == "wrk" and r["system"] == "ngx_kserve"
            and r["fmt"] == "json"]
    assert [r["conc"] for r in rows] == [1, 4], doc
    for r in rows:
        assert "note" not in r, r
        assert r["rps"] > 0, r
        assert r["errors"] == 0, r
        assert 0 < r["p50_us"] <= r["p99_us"], r
    # binary rows are either measured cleanly or skipped with a reason
    for r in doc["results"]:
        if r["fmt"] == "binary" and "rps" in r:
            assert r["errors"] == 0, r
    assert not [n for n in doc["notes"] if "error.log" in n], doc["notes"]

    md = out.read_text()
    assert "| 1 | ngx_kserve |" in md and "| 4 | ngx_kserve |" in md

"""A tiny run of bench/bench_quantized_gallery.py, so the benchmark code stays working.

The figures come from the real run (docs/BENCHMARKS.md, "Vector search");
here only that every tier builds and searches, and that its numbers make sense.
"""

from __future__ import annotations

import pytest

from bench import bench_quantized_gallery


@pytest.mark.pure
def test_every_tier_runs_and_reports_sane_figures(tmp_path, capsys):
    out = tmp_path / "rows.json"
    rows = bench_quantized_gallery.main([
        "--faces", "3000", "--dim", "64", "--queries", "20", "--flat-queries", "20",
        "--candidates", "20,40", "--nlist", "32", "--nprobe", "4,32", "--pq-bytes", "16",
        "--shortlist", "100,3000", "--json", str(out),
    ])
    methods = {r.method for r in rows}
    assert methods == {"exact float32", "fp16 flat (today)", "SQ8 flat", "sign bits + SQ8", "IVF-SQ8", "IVF-PQ16"}
    by_name = {(r.method, r.setting.split(";")[0]): r for r in rows}
    assert by_name[("exact float32", "-")].recall[40] == 1.0
    # Flat scans with an exact re-rank of 40 candidates lose nothing at this size.
    assert by_name[("fp16 flat (today)", "-")].recall[40] == 1.0
    assert by_name[("SQ8 flat", "-")].recall[40] >= 0.99
    # Bytes per face: codes + a 16-byte UUID (+ FAISS's 8-byte list id and the centroids for IVF).
    assert by_name[("fp16 flat (today)", "-")].bytes_per_face == 2 * 64 + 16
    assert by_name[("SQ8 flat", "-")].bytes_per_face == 64 + 16
    # A shortlist of every face is the SQ8 flat scan again; sign bits (8 bytes) + SQ8 codes + UUID.
    assert by_name[("sign bits + SQ8", "shortlist 3000")].recall[40] >= 0.99
    assert by_name[("sign bits + SQ8", "shortlist 100")].bytes_per_face == 8 + 64 + 16
    ivf = [r for r in rows if r.method.startswith("IVF")]
    assert all(r.bytes_per_face > 8 + 16 for r in ivf)
    assert by_name[("IVF-SQ8", "nlist 32, nprobe 4")].bytes_per_face >= 64 + 8 + 16
    # Probing every list (32 of 32) is an exhaustive scan: the re-rank then finds what the flat scan finds.
    assert all(r.recall[40] >= 0.95 for r in ivf if "nprobe 32" in r.setting)
    assert all(r.wall_p99 >= r.wall_p50 > 0 and r.cpu_p50 > 0 for r in rows)
    assert out.exists() and "| 3,000 | IVF-SQ8 |" in capsys.readouterr().out

"""examples/robust_comparison.py in its tiny configuration: runs, caches, tables, plots."""
import json

import pytest

pytest.importorskip("tensorflow_federated")

from examples import robust_comparison  # noqa: E402


def test_quick_grid_writes_tables_plots_and_cached_runs(tmp_path, capfd):
    out = tmp_path / "robust"
    assert robust_comparison.main(["--quick", "--out", str(out), "--sweep-f", "0", "1", "2"]) == 0
    runs = sorted(p.name for p in (out / "runs").glob("*.json"))
    assert runs == sorted(
        ["alpha1-none-D-SGD_f0.json", "alpha1-alie-MoNNA.json", "alpha1-alie-D-SGD.json",
         "alpha1-sign_flipping-MoNNA.json", "alpha1-sign_flipping-D-SGD.json", "alpha1-alie-MoNNA-f1.json"]
    )
    record = json.loads((out / "runs" / "alpha1-alie-MoNNA.json").read_text())
    assert [p["step"] for p in record["curve"]] == [0, 3, 6]
    assert record["honest_gradients_per_step"] == 1.0
    assert 0.0 <= record["final"]["worst_accuracy"] <= record["final"]["mean_accuracy"] <= 1.0
    assert record["mean_attack_factor"] > 0  # the line search ran
    text = (out / "results.md").read_text()
    assert "| ALIE |" in text and "D-SGD ceiling" in text and "| 1 | 0.14 |" in text
    for name in ("robust_alpha1.png", "robust_final_worst.png", "robust_overhead_vs_f.png"):
        assert (out / name).stat().st_size > 1000
    # a second call only redraws: every run is cached
    capfd.readouterr()
    robust_comparison.main(["--quick", "--out", str(out), "--sweep-f", "0", "1", "2"])
    assert "alpha1-alie-MoNNA:" not in capfd.readouterr().out

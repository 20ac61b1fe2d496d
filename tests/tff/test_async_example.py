"""examples/async_fl_comparison.py in its tiny configuration: runs, caches, summary and plots."""
import json
import os

import pytest

pytest.importorskip("tensorflow_federated")

from examples import async_fl_comparison  # noqa: E402


def test_tiny_comparison(tmp_path):
    runs = async_fl_comparison.main(["--tiny", "--out", str(tmp_path)])
    names = sorted(f"{r['scheme']}-{r['policy']}" for r in runs)
    assert names == ["Async-identical", "Async-weight", "FedAvg-weight"]
    by_name = {f"{r['scheme']}-{r['policy']}": r for r in runs}
    assert by_name["FedAvg-weight"]["server_steps"] == 2  # rounds of the slowest client (tau = 1)
    assert by_name["FedAvg-weight"]["mean_staleness"] == 0
    assert by_name["Async-weight"]["mean_staleness"] > 0
    for run in runs:
        times = [row["time"] for row in run["rows"]]
        assert times[0] == 0.0 and times == sorted(times) and times[-1] <= 2.0
        assert all(0.0 <= row["test_accuracy"] <= 1.0 for row in run["rows"])
        assert run["rows"][-1]["federated_loss"] < run["rows"][0]["federated_loss"]  # it learns
    # The identical policy gives the fastest client (last) the largest share of the weight.
    shares = by_name["Async-identical"]["effective_importance"]
    assert shares[-1] == max(shares)
    summary = json.loads((tmp_path / "summary_digits.json").read_text())
    assert {(row["scheme"], row["policy"]) for row in summary} == {
        ("FedAvg", "weight"), ("Async", "weight"), ("Async", "identical")}
    for png in ("async_digits_M4.png", "async_digits_M4_policy.png"):
        assert os.path.getsize(tmp_path / png) > 10_000

    again = async_fl_comparison.main(["--tiny", "--out", str(tmp_path)])  # all cached: no rerun
    assert [r["wall_seconds"] for r in again] == [r["wall_seconds"] for r in runs]

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


def test_mnist_grid_runs_the_authors_mnist_setting():
    args = robust_comparison.parse_args(["--dataset", "mnist", "--alphas", "1", "--attacks", "alie", "--steps", "100",
                                         "--rules", "MoNNA", "MoKrum", "SCC", "D-SGD", "--curve", "worst"])
    runs = dict(robust_comparison.grid(args))
    assert sorted(runs) == sorted(["alpha1-none-D-SGD_f0", "alpha1-alie-MoNNA", "alpha1-alie-MoKrum",
                                   "alpha1-alie-SCC", "alpha1-alie-D-SGD"])
    for settings in runs.values():
        assert (settings.dataset, settings.partition, settings.alpha) == ("mnist", "monna-dirichlet", 1.0)
        assert (settings.num_machines, settings.batch_size, settings.steps, settings.learning_rate) == (26, 25, 100, 0.75)
    assert (runs["alpha1-alie-MoKrum"].rule, runs["alpha1-alie-MoKrum"].momentum) == ("krum", 0.99)
    assert (runs["alpha1-alie-SCC"].rule, runs["alpha1-alie-SCC"].momentum) == ("centered_clipping", 0.9)
    assert runs["alpha1-none-D-SGD_f0"].num_byzantine == 0 and runs["alpha1-alie-MoNNA"].num_byzantine == 5
    # the digits grid of the docs is unchanged: Krum only when asked for
    assert "MoKrum" not in robust_comparison.parse_args([]).rules
    extreme = robust_comparison.parse_args(["--dataset", "mnist", "--partition", "extreme", "--attacks", "alie"])
    assert {s.partition for _, s in robust_comparison.grid(extreme)} == {"extreme"}


def test_worst_curve_plots_the_worst_honest_machine(tmp_path, monkeypatch):
    import matplotlib.axes

    drawn = []
    original = matplotlib.axes.Axes.plot
    monkeypatch.setattr(matplotlib.axes.Axes, "plot",
                        lambda self, *a, **k: drawn.append((k.get("label"), list(a[1]))) or original(self, *a, **k))
    curve = [dict(step=0, mean_accuracy=0.5, worst_accuracy=0.25), dict(step=10, mean_accuracy=0.75, worst_accuracy=0.5)]
    records = {"run": dict(settings=dict(alpha=1.0, attack="alie", rule="nna", momentum=0.99, num_byzantine=5,
                                         num_machines=26),
                           curve=curve, final=dict(mean_accuracy=0.75, worst_accuracy=0.5))}
    robust_comparison.plot(records, [1.0], ["alie"], ["MoNNA"], str(tmp_path), "x_", curve="worst", dataset="mnist")
    assert ("MoNNA", [0.25, 0.5]) in drawn
    drawn.clear()
    robust_comparison.plot(records, [1.0], ["alie"], ["MoNNA"], str(tmp_path), "x_")
    assert ("MoNNA", [0.5, 0.75]) in drawn

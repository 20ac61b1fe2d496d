"""examples/async_synthetic_comparison.py without running TFF: the command lines it runs are the
command line's own flags, and the summary and figure it draws from run folders (metrics.csv,
updates.csv, run.json as the command line writes them)."""
import csv
import json
import os

import pytest

from examples import async_synthetic_comparison as comparison


def write_run(folder, algorithm, lr, rows, staleness):
    os.makedirs(folder)
    with open(os.path.join(folder, "metrics.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, ["step", "federated_accuracy", "federated_loss", "test_accuracy", "time"])
        writer.writeheader()
        for step, (time, acc, loss) in enumerate(rows):
            writer.writerow(dict(step=step, federated_accuracy=acc, federated_loss=loss, test_accuracy=acc,
                                 time=time))
    with open(os.path.join(folder, "updates.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, ["step", "time", "client", "sent_version", "staleness", "weight"])
        writer.writeheader()
        for step, stale in enumerate(staleness, start=1):
            for client, s in enumerate(stale):
                writer.writerow(dict(step=step, time=step, client=client, sent_version=step - 1 - s, staleness=s,
                                     weight=0.5))
    with open(os.path.join(folder, "run.json"), "w") as f:
        json.dump(dict(config=dict(algorithm=algorithm, client_lr=lr, horizon=rows[-1][0]),
                       server_steps=len(staleness)), f)


def test_commands_use_the_command_lines_flags():
    pytest.importorskip("tensorflow_federated")
    from tff_experiments.asynchronous.cli import build_parser

    args = comparison.build_args(["--clients", "100", "--horizon", "20", "--lr", "FedBuff=0.001"])
    assert args.schemes == ["FedAvg", "Async", "FedFix-0.5", "FedBuff-10"]
    for label in args.schemes:
        cmd = comparison.command(args, 100, "F-80", label, args.lr[comparison.family(label)], "/tmp/x")
        assert cmd[1:3] == ["-m", "tff_experiments.asynchronous"]
        settings = build_parser().parse_args(cmd[3:])  # exits on a flag the command line lacks
        assert (settings.clients, settings.scenario, settings.horizon, settings.eval_every) == (100, "F-80", 20, 0.4)
        assert settings.dataset == "synthetic" and settings.synthetic_alpha == settings.synthetic_beta == 1
    assert settings.algorithm == "fedbuff" and settings.buffer_size == 10 and settings.client_lr == 0.001


def test_summary_and_figure_from_run_folders(tmp_path):
    # FedAvg climbs steadily; async is faster but goes back and forth.
    write_run(tmp_path / "M4-F-80-FedAvg", "fedavg", 0.03,
              [(0, 0.1, 3.0), (1, 0.3, 2.5), (2, 0.5, 2.0), (3, 0.6, 1.8), (4, 0.8, 1.5)], [[0, 0]] * 4)
    write_run(tmp_path / "M4-F-80-Async", "async", 0.0001,
              [(0, 0.1, 3.0), (1, 0.8, 1.0), (2, 0.6, 2.0), (3, 0.9, 0.9), (4, 0.7, 1.2)], [[1, 3], [2, 4]])
    markdown = comparison.main(["--clients", "4", "--horizon", "4", "--scenarios", "F-80", "--schemes", "FedAvg",
                                "Async", "--out", str(tmp_path), "--plots-only"])
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in markdown.splitlines() if line.startswith("| FedAvg") or line.startswith("| Async")}
    # client lr, server steps, mean staleness, final/best fed. acc, final test acc, time to target,
    # oscillation, final/max fed. loss
    assert rows["FedAvg"][:10] == ["0.03", "4", "0.0", "0.800", "0.800", "0.800", "4.00", "0.0000", "1.500", "3"]
    assert rows["Async"][:10] == ["0.0001", "2", "2.5", "0.700", "0.900", "0.700", "1.00", "0.2000", "1.200",
                                  "3"]
    assert "target: federated accuracy 0.760" in markdown
    assert os.path.getsize(tmp_path / "async_synthetic_M4.png") > 10_000
    assert (tmp_path / "summary_M4.md").read_text() == markdown


def test_oscillation_ignores_steady_progress():
    run = dict(horizon=4, rows=[dict(time=t, federated_accuracy=a) for t, a in enumerate([0.1, 0.2, 0.4, 0.7, 0.9])])
    assert comparison.oscillation(run) == 0.0
    run["rows"][3]["federated_accuracy"] = 0.2  # 0.4 -> 0.2 -> 0.9: 0.2 of back and forth over 2 intervals
    assert comparison.oscillation(run) == pytest.approx(0.2)


def test_bad_learning_rate_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        comparison.main(["--clients", "4", "--horizon", "1", "--lr", "Fedavg=0.1", "--plots-only"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith("error: --lr takes SCHEME=VALUE")


def test_mnist_commands_policies_and_learning_rates_per_scheme():
    pytest.importorskip("tensorflow_federated")
    from tff_experiments.asynchronous.cli import build_parser

    args = comparison.build_args(["--dataset", "mnist", "--seed", "42", "--clients", "20", "--horizon", "20",
                                  "--schemes", "FedAvg", "Async-identical", "FedFix-0.2", "FedFix-0.8",
                                  "FedBuff-5-identical", "--lr", "FedAvg=0.05", "Async=0.001", "FedFix=0.04",
                                  "FedFix-0.2=0.01", "FedBuff-5=0.006"])
    parsed = {}
    for label in args.schemes:
        cmd = comparison.command(args, 20, "F-0", label, comparison.learning_rate(args, label), "/tmp/x")
        parsed[label] = build_parser().parse_args(cmd[3:])
    for settings in parsed.values():
        assert (settings.dataset, settings.alpha, settings.seed, settings.partition) == ("mnist", 0.1, 42, None)
    expected = {"FedAvg": ("fedavg", "weight", 0.05), "Async-identical": ("async", "identical", 0.001),
                "FedFix-0.2": ("fedfix", "weight", 0.01), "FedFix-0.8": ("fedfix", "weight", 0.04),
                "FedBuff-5-identical": ("fedbuff", "identical", 0.006)}
    assert {k: (s.algorithm, s.policy, s.client_lr) for k, s in parsed.items()} == expected
    assert (parsed["FedFix-0.2"].delta_t, parsed["FedFix-0.8"].delta_t, parsed["FedBuff-5-identical"].buffer_size) \
        == (0.2, 0.8, 5)
    assert args.name == "async_mnist"


def test_identical_policy_adds_the_surrogate_loss_row(tmp_path):
    write_run(tmp_path / "M4-F-80-Async", "async", 0.001, [(0, 0.1, 3.0), (1, 0.5, 2.0)], [[0, 1]])
    write_run(tmp_path / "M4-F-80-Async-identical", "async", 0.001, [(0, 0.1, 3.0), (1, 0.6, 1.5)], [[0, 1]])
    markdown = comparison.main(["--dataset", "mnist", "--clients", "4", "--horizon", "1", "--scenarios", "F-80",
                                "--schemes", "Async", "Async-identical", "--out", str(tmp_path), "--plots-only"])
    assert "| Async-identical | 0.001 |" in markdown
    assert os.path.getsize(tmp_path / "async_mnist_M4.png") > 10_000

"""Synchronous FedAvg against FedBuff and FedFix on Flower's deployment engine, on this machine:
``python -m flower_async local`` with nodes of different speeds (``--sleep``), one run per
scheme, then the held-out loss against wall-clock time and the time each run takes to reach a
target loss (printed, and plotted into ``--figure``).

    python benchmarks/flower_async_comparison.py --out /tmp/flower_cmp --figure docs/img/flower_async_comparison.png

A run's clock starts when its server has all nodes (``metrics.csv``'s ``time``). The figures
depend on the machine and its load: print them with the machine's load, compare only within
one invocation.
"""
import argparse
import csv
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, required=True)
    parser.add_argument("--figure", type=pathlib.Path, default=None)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--sleep", type=float, nargs="+", default=[0.0, 0.0, 30.0])
    parser.add_argument("--model", default="logistic")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--fedavg-rounds", type=int, default=6)
    parser.add_argument("--fedbuff-steps", type=int, default=14)
    parser.add_argument("--buffer-size", type=int, default=2)
    parser.add_argument("--fedfix-steps", type=int, default=12)
    parser.add_argument("--delta-t", type=float, default=25.0)
    parser.add_argument("--target-loss", type=float, default=None,
                        help="default: the highest final loss of the runs")
    parser.add_argument("--set", action="append", default=[], help="passed to every run")
    return parser.parse_args()


def run(args, name, algorithm, aggregations, extra):
    out = args.out / name
    if (out / "server" / "metrics.csv").exists():
        print(f"[{name}] already done: {out}", flush=True)
        return out
    command = [sys.executable, "-m", "flower_async", "local", "--algorithm", algorithm, "--nodes", str(args.nodes),
               "--aggregations", str(aggregations), "--model", args.model, "--dataset", args.dataset,
               "--sleep", *map(str, args.sleep), "--out", str(out), "--set", "export=false", *extra]
    for item in args.set:
        command += ["--set", item]
    print(f"[{name}] {' '.join(command[1:])}", flush=True)
    subprocess.run(command, cwd=ROOT, check=True)
    return out


def curve(out):
    with open(out / "server" / "metrics.csv", newline="") as f:
        return [(float(r["time"]), float(r["loss"]), float(r["accuracy"])) for r in csv.DictReader(f)]


def main():
    args = parse_args()
    runs = {
        "FedAvg (sync)": run(args, "fedavg", "fedavg", args.fedavg_rounds, []),
        f"FedBuff (c={args.buffer_size})": run(args, "fedbuff", "fedbuff", args.fedbuff_steps,
                                               ["--set", f"buffer-size={args.buffer_size}"]),
        f"FedFix (Δt={args.delta_t:g} s)": run(args, "fedfix", "fedfix", args.fedfix_steps,
                                              ["--set", f"delta-t={args.delta_t}"]),
    }
    curves = {name: curve(out) for name, out in runs.items()}
    target = args.target_loss or max(c[-1][1] for c in curves.values())
    print(f"load average: {os.getloadavg()[0]:.1f}; nodes sleep {args.sleep} s; target loss {target:.4f}")
    print(f"{'scheme':<22} {'steps':>5} {'last time s':>11} {'final loss':>10} {'accuracy':>8} {'to target s':>11}")
    for name, points in curves.items():
        reached = next((t for t, loss, _ in points if loss <= target), float("nan"))
        t, loss, accuracy = points[-1]
        print(f"{name:<22} {len(points):>5} {t:>11.1f} {loss:>10.4f} {accuracy:>8.3f} {reached:>11.1f}")
    if args.figure:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.5, 4))
        for name, points in curves.items():
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", markersize=3, label=name)
        ax.axhline(target, color="grey", linestyle=":", linewidth=1, label=f"target {target:.3f}")
        ax.set_xlabel("wall-clock seconds (server clock)")
        ax.set_ylabel("held-out loss")
        ax.set_title(f"{args.nodes} Flower nodes on loopback, extra sleep {args.sleep} s")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.figure, dpi=120)
        print(f"figure: {args.figure}")


if __name__ == "__main__":
    main()

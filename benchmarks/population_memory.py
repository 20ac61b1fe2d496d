"""Peak memory and time per update of the asynchronous command line against the number of
clients: 10^3, 10^4, 10^5 and 342,477 (TFF's Stack Overflow population, the FedBuff paper's).

Each row runs ``python -m tff_experiments.asynchronous`` (what users run: data, schedule,
evaluation, checkpoints and export included) in its own process on Synthetic(1, 1), logistic
model, scenario F-80, one local step of SGD on a batch of 10, and samples the resident memory
of the whole process tree (the command line, its private namespace's run and TFF's
``worker_binary``) every 0.1 s. "peak MB": the largest sum over the tree; "wall s", "CPU s": the
whole run; "updates": the local works it aggregated (``updates.csv``); "CPU ms/upd": CPU seconds
of the tree per update, the figure a shared machine's load does not inflate.

Default setting: FedFix, delta-t 0.5, horizon 1, every client training;
``--concurrency C`` runs a population of which at most C train at once (the FedBuff paper's
P = 342,477, C = 1,000). ``--results FILE`` adds the rows to a JSON file of rows (one series per
setting), ``--plot`` draws peak memory and time per update against the clients, one line per
series of the file (or of this run).

    .venv-tff/bin/python benchmarks/population_memory.py
    .venv-tff/bin/python benchmarks/population_memory.py --clients 1000 10000 --plot ''
    .venv-tff/bin/python benchmarks/population_memory.py --clients 1000 10000 100000 --results rows.json
    .venv-tff/bin/python benchmarks/population_memory.py --clients 342477 --algorithm fedbuff-keep-training \\
        --concurrency 1000 --horizon 5 --extra="--buffer-size 10 --policy staleness --server-lr 0.1" \\
        --results rows.json
    .venv-tff/bin/python benchmarks/population_memory.py --clients --results rows.json   # plot only
"""
import argparse
import csv
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time

import psutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLIENTS = (1000, 10000, 100000, 342477)
SETTING = ["--dataset", "synthetic", "--scenario", "F-80", "--local-steps", "1", "--batch-size", "10",
           "--client-optimizer", "sgd"]


def run_command_line(arguments, out, every=0.1):
    """Runs the command line with ``arguments`` into ``out``; returns ``(exit status, wall s, CPU s
    of the process tree, peak resident bytes of the tree, its output)``."""
    command = [sys.executable, "-m", "tff_experiments.asynchronous", *arguments, "--out", out]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    log_path = os.path.join(out + ".log")
    start = time.perf_counter()
    with open(log_path, "w") as log:
        child = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT)
        root, peak, cpu = psutil.Process(child.pid), 0, {}
        try:
            while child.poll() is None:
                total = 0
                try:
                    tree = [root] + root.children(recursive=True)
                except psutil.Error:
                    tree = [root]
                for process in tree:
                    try:
                        with process.oneshot():
                            total += process.memory_info().rss
                            times = process.cpu_times()
                            cpu[process.pid] = times.user + times.system
                    except psutil.Error:
                        pass
                peak = max(peak, total)
                time.sleep(every)
        finally:
            if child.poll() is None:  # Ctrl-C: the command line ends its own namespace
                child.terminate()
            status = child.wait()
    wall = time.perf_counter() - start
    with open(log_path) as log:
        output = log.read()
    return status, wall, sum(cpu.values()), peak, output


def count_updates(out):
    with open(os.path.join(out, "updates.csv"), newline="") as f:
        return sum(1 for _ in csv.DictReader(f))


def plot(rows, path):
    """Peak memory and CPU time per update against the clients, a line per setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (memory, cost) = plt.subplots(1, 2, figsize=(11, 4.6))
    for setting in dict.fromkeys(r["setting"] for r in rows):
        series = sorted((r for r in rows if r["setting"] == setting), key=lambda r: r["clients"])
        clients = [r["clients"] for r in series]
        memory.plot(clients, [r["peak_mb"] for r in series], "o-", label=setting)
        cost.plot(clients, [r["cpu_ms"] for r in series], "o-")
    memory.set(xscale="log", xlabel="clients", ylabel="peak memory of the run (MB)", ylim=(0, None))
    cost.set(xscale="log", xlabel="clients", ylabel="CPU ms per client update (whole run)", ylim=(0, None))
    for axes in (memory, cost):
        axes.grid(True, which="both", alpha=0.3)
    fig.suptitle("python -m tff_experiments.asynchronous on Synthetic(1, 1), logistic, F-80, 1 SGD step on 10 "
                 "examples", fontsize=10)
    fig.legend(loc="lower center", fontsize=8, ncol=1, frameon=False)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="*", default=list(CLIENTS),
                        help="populations to run, a row each (none: only plot --results)")
    parser.add_argument("--algorithm", default="fedfix")
    parser.add_argument("--delta-t", type=float, default=0.5, help="FedFix's (default 0.5)")
    parser.add_argument("--horizon", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, help="at most this many clients train at once (default: all)")
    parser.add_argument("--extra", default="", help="more flags of the command line, one string")
    parser.add_argument("--results", help="a JSON file of rows to add this run's rows to (and to plot)")
    parser.add_argument("--plot", default=os.path.join(ROOT, "docs", "img", "population_memory.png"),
                        help="where to write the plot ('' for none)")
    args = parser.parse_args()

    flags = ["--algorithm", args.algorithm, "--horizon", str(args.horizon), *SETTING, *shlex.split(args.extra)]
    if args.algorithm == "fedfix":
        flags += ["--delta-t", str(args.delta_t)]
    if args.concurrency:
        flags += ["--concurrency", str(args.concurrency)]
    setting = (f"{args.algorithm}" + (f", at most {args.concurrency} training" if args.concurrency else ", all training")
               + f", horizon {args.horizon:g}" + (f", {args.extra}" if args.extra else ""))
    print(".venv-tff/bin/python -m tff_experiments.asynchronous " + " ".join(flags) + " --clients M", flush=True)
    print(f"{'clients':>8s} {'updates':>8s} {'wall s':>7s} {'CPU s':>7s} {'updates/s':>9s} {'CPU ms/upd':>10s} "
          f"{'peak MB':>8s}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="population_memory_") as folder:
        for m in args.clients:
            out = os.path.join(folder, f"m{m}")
            status, wall, cpu, peak, output = run_command_line(flags + ["--clients", str(m)], out)
            if status != 0:
                print(f"{m:8d} failed (exit status {status}):\n{output[-2000:]}", flush=True)
                continue
            updates = count_updates(out)
            row = dict(setting=setting, clients=m, updates=updates, wall=wall, cpu=cpu, peak_mb=peak / 2**20,
                       cpu_ms=1000 * cpu / updates, wall_ms=1000 * wall / updates)
            rows.append(row)
            ending = [line for line in output.splitlines() if "federated loss" in line]
            row["ending"] = ending[-1].strip() if ending else ""
            print(f"{m:8d} {updates:8d} {wall:7.1f} {cpu:7.1f} {updates / wall:9.1f} {row['cpu_ms']:10.2f} "
                  f"{row['peak_mb']:8.0f}  {row['ending']}", flush=True)
    if len(rows) > 1:
        low, high = rows[0], rows[-1]
        print(f"from {low['clients']} to {high['clients']} clients: peak memory {high['peak_mb'] / low['peak_mb']:.2f}x, "
              f"CPU per update {high['cpu_ms'] / low['cpu_ms']:.2f}x")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    done = len(rows)
    if args.results:
        kept = []
        if os.path.exists(args.results):
            with open(args.results) as f:
                kept = [r for r in json.load(f) if (r["setting"], r["clients"]) not in
                        {(n["setting"], n["clients"]) for n in rows}]
        rows = kept + rows
        with open(args.results, "w") as f:
            json.dump(rows, f, indent=1)
    if args.plot and rows:
        plot(rows, args.plot)
        print(f"plot: {os.path.relpath(args.plot, ROOT)}")
    return 0 if done == len(args.clients) else 1


if __name__ == "__main__":
    sys.exit(main())

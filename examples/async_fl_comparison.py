r"""Synchronous FedAvg, async FedAvg, FedFix and FedBuff against virtual time (run in .venv-tff).

Fraboni, Vidal, Kameni, Lorenzi, "A General Theory for Federated Optimization with Asynchronous
and Heterogeneous Clients Updates" (JMLR 2023, arXiv 2206.10189), Section 6 at this machine's
scale: FedAvg, Async, FedFix (Delta t = 0.2, 0.5, 0.8) and FedBuff (c = 5, 10) with the
``weight`` policy, on scikit-learn digits split by Dirichlet(alpha = 0.1) and on Shakespeare (one
client per role), M clients, scenarios F-0 (identical clients) and F-80 (the fastest 80%
faster), local work K steps of SGD with momentum 0.9, batch 64, eta_g = 1. The ``identical``
policy is run too, on F-80, for async, FedFix and FedBuff: with it the fast clients weigh more.

For every run it records, every ``--eval-every`` of virtual time, the held-out loss and
accuracy, the federated objective :math:`\sum_i p_i F_i` (uniform :math:`p_i`, the clients'
training data) and the surrogate objective :math:`\sum_i r_i F_i` (:math:`r_i`: the client's
share of the aggregation weight over the run).

    .venv-tff/bin/python examples/async_fl_comparison.py --dataset digits --clients 20 50
    .venv-tff/bin/python examples/async_fl_comparison.py --dataset shakespeare --clients 20 \
        --horizon 12 --local-steps 5 --eval-every 1
    .venv-tff/bin/python examples/async_fl_comparison.py --tiny --out /tmp/x     # seconds

Every run is cached in ``OUT/runs/<name>.json`` (an interrupted grid continues); the summary
(``OUT/summary.md``, ``OUT/summary.json``) and the PNG plots (``--figures``, the docs use
``docs/img``) are redrawn from whatever runs are there.
"""
import argparse
import json
import math
import os
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)
if __name__ == "__main__":  # a command line (importing the module changes nothing in the process)
    from tff_experiments.command_line.launch import start_command_line

    start_command_line()  # reaps TFF's worker_binary at exit, quiet TensorFlow; before it is imported

import numpy as np  # noqa: E402

# label -> (algorithm, schedule keyword arguments)
SCHEMES = {
    "FedAvg": ("fedavg", {}),
    "Async": ("async", {}),
    "FedFix-0.2": ("fedfix", dict(delta_t=0.2)),
    "FedFix-0.5": ("fedfix", dict(delta_t=0.5)),
    "FedFix-0.8": ("fedfix", dict(delta_t=0.8)),
    "FedBuff-5": ("fedbuff", dict(buffer_size=5)),
    "FedBuff-10": ("fedbuff", dict(buffer_size=10)),
    # Nguyen et al.'s FedBuff: a client restarts as soon as it hands in its update.
    "FedBuff-5-KT": ("fedbuff-keep-training", dict(buffer_size=5)),
}
IDENTICAL_SCHEMES = ("Async", "FedFix-0.5", "FedBuff-5")
COLORS = {"FedAvg": "black", "Async": "tab:red", "FedFix-0.2": "tab:blue", "FedFix-0.5": "tab:cyan",
          "FedFix-0.8": "tab:purple", "FedBuff-5": "tab:orange", "FedBuff-10": "tab:brown",
          "FedBuff-5-KT": "tab:olive"}


def run_name(dataset, clients, scenario, scheme, policy):
    return f"{dataset}-M{clients}-{scenario}-{scheme}-{policy}"


class Setting:
    """Data, model and the TFF process of one (dataset, M): shared by all its runs."""

    def __init__(self, args, dataset, clients):
        import tensorflow_federated as tff

        from tff_experiments import models
        from tff_experiments.asynchronous import LocalBatches, build_stale_model_process, client_importance

        if dataset == "digits":
            from tff_experiments.data.digits import digits_client_data

            client_data, self.test = digits_client_data(clients, args.alpha, seed=args.seed)
            self.builder = models.digits_logistic if args.model == "logistic" else models.digits_cnn
        else:
            from tff_experiments.data.shakespeare import shakespeare_client_data

            client_data, self.test = shakespeare_client_data(max_clients=clients, seed=args.seed)
            if len(client_data.client_ids) < clients:
                raise SystemExit(f"Shakespeare has only {len(client_data.client_ids)} roles")
            self.builder = models.char_rnn
        self.local = LocalBatches(client_data, args.local_steps, args.batch_size, seed=args.seed)
        self.importance = client_importance("uniform", [1] * clients)
        lr = args.client_lr if args.client_lr is not None else (0.05 if dataset == "digits" else 0.5)
        self.process = build_stale_model_process(
            models.tff_model_fn(self.builder, client_data.element_type_structure, seed=args.seed),
            tff.learning.optimizers.build_sgdm(lr, momentum=0.9),
            tff.learning.optimizers.build_sgdm(args.server_lr),
        )
        self.large = dataset != "digits"


def run_one(args, setting, scenario, scheme, policy):
    from tff_experiments.asynchronous import AsynchronousDriver, ClientTimes, build_schedule
    from tff_experiments.asynchronous.evaluation import GlobalEvaluator
    from tff_experiments.program.progress import VirtualTimeProgress

    algorithm, kwargs = SCHEMES[scheme]
    clients = setting.local.num_clients
    times = ClientTimes.from_scenario(clients, scenario)
    kwargs = dict(kwargs)
    if "buffer_size" in kwargs and kwargs["buffer_size"] > clients:
        return None
    schedule = build_schedule(algorithm, times, args.horizon, setting.importance, policy, **kwargs)
    driver = AsynchronousDriver(setting.process, schedule, setting.local)
    evaluate = GlobalEvaluator(
        setting.builder, [setting.local.arrays(i) for i in range(clients)], setting.importance, setting.test,
        surrogate=schedule.effective_importance(), seed=args.seed,
        max_test_examples=2000 if setting.large else None,
        max_examples_per_client=50 if setting.large else None, per_client=True)
    start = time.perf_counter()
    state = driver.initial_state()
    rows = [dict(step=0, time=0.0, **evaluate(driver.model_weights(state)))]
    next_eval = args.eval_every
    staleness = []
    with VirtualTimeProgress(args.horizon, desc=f"{scheme} {policy} M={clients} {scenario}") as bar:
        while state.next_step < len(schedule):
            state, record = driver.run_step(state)
            staleness.extend(record.step.staleness())
            now = record.step.time
            if now >= next_eval - 1e-9 or state.next_step == len(schedule):
                rows.append(dict(step=state.next_step, time=now, **evaluate(driver.model_weights(state))))
                while next_eval <= now + 1e-9:
                    next_eval += args.eval_every
                bar.advance_to(now, acc=f"{rows[-1]['test_accuracy']:.3f}")
    return {
        "dataset": args.dataset, "clients": clients, "scenario": scenario, "scheme": scheme,
        "policy": policy, "horizon": args.horizon, "server_steps": len(schedule),
        "client_works": int(schedule.participation_counts().sum()),
        "mean_staleness": float(np.mean(staleness)) if staleness else 0.0,
        "max_staleness": int(max(staleness, default=0)),
        "effective_importance": schedule.effective_importance().tolist(),
        "mean_times": times.mean_times.tolist(),
        "wall_seconds": time.perf_counter() - start,
        "rows": rows,
    }


# --- summaries ------------------------------------------------------------------------------


def time_to_reach(run, threshold):
    for row in run["rows"]:
        if row.get("test_accuracy", -1) >= threshold:
            return row["time"]
    return math.inf


def instability(run, last_fraction=0.5):
    """Mean absolute change of the test accuracy between consecutive evaluations, over the
    last half of the virtual time: 0 for a smooth curve."""
    rows = [r for r in run["rows"] if r["time"] >= (1 - last_fraction) * run["horizon"]]
    acc = np.array([r["test_accuracy"] for r in rows])
    return float(np.mean(np.abs(np.diff(acc)))) if len(acc) > 1 else 0.0


def slow_fast_ratio(run):
    """Mean loss :math:`F_i` of the slowest half of the clients over that of the fastest half
    (client 0 is the slowest), averaged over the evaluations of the second half of the run:
    about 1 when the model serves all clients alike, above 1 when it favours the fast ones."""
    rows = [r for r in run["rows"] if r["time"] >= run["horizon"] / 2 and "client_loss" in r]
    if not rows:
        return None
    losses = np.mean([r["client_loss"] for r in rows], axis=0)
    half = len(losses) // 2
    return float(losses[:half].mean() / losses[-half:].mean())


def summarize(runs):
    """A markdown table per (dataset, M, scenario), and the data for the JSON summary."""
    lines, table = [], []
    groups = sorted({(r["dataset"], r["clients"], r["scenario"]) for r in runs})
    for dataset, clients, scenario in groups:
        group = [r for r in runs if (r["dataset"], r["clients"], r["scenario"]) == (dataset, clients, scenario)]
        fedavg = next((r for r in group if r["scheme"] == "FedAvg"), None)
        target = 0.95 * fedavg["rows"][-1]["test_accuracy"] if fedavg else None
        lines += [f"### {dataset}, M = {clients}, {scenario}", "",
                  f"Time to reach {'95% of FedAvg final accuracy' if target else '-'}"
                  + (f" ({target:.3f})" if target else ""), "",
                  "| scheme | policy | server steps | mean staleness | final test acc | best test acc "
                  "| time to target | instability | final federated loss | final surrogate loss "
                  "| slow/fast loss |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        order = list(SCHEMES)
        for run in sorted(group, key=lambda r: (r["policy"] != "weight", order.index(r["scheme"]))):
            last = run["rows"][-1]
            reach = time_to_reach(run, target) if target else math.inf
            entry = dict(dataset=dataset, clients=clients, scenario=scenario, scheme=run["scheme"],
                         policy=run["policy"], server_steps=run["server_steps"],
                         mean_staleness=run["mean_staleness"], final_test_accuracy=last["test_accuracy"],
                         best_test_accuracy=max(r["test_accuracy"] for r in run["rows"]),
                         time_to_target=reach, instability=instability(run),
                         final_federated_loss=last["federated_loss"],
                         final_surrogate_loss=last.get("surrogate_loss"),
                         slow_fast_loss_ratio=slow_fast_ratio(run))
            table.append(entry)
            lines.append(
                f"| {run['scheme']} | {run['policy']} | {run['server_steps']} | {run['mean_staleness']:.2f} "
                f"| {entry['final_test_accuracy']:.3f} | {entry['best_test_accuracy']:.3f} "
                f"| {'never' if math.isinf(reach) else f'{reach:.1f}'} | {entry['instability']:.4f} "
                f"| {entry['final_federated_loss']:.3f} | {entry['final_surrogate_loss']:.3f} "
                f"| {'-' if entry['slow_fast_loss_ratio'] is None else format(entry['slow_fast_loss_ratio'], '.2f')} |")
        lines.append("")
    return "\n".join(lines), table


def plot(runs, figures, prefix):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(figures, exist_ok=True)
    written = []
    for dataset in sorted({r["dataset"] for r in runs}):
        for clients in sorted({r["clients"] for r in runs if r["dataset"] == dataset}):
            group = [r for r in runs if r["dataset"] == dataset and r["clients"] == clients]
            scenarios = sorted({r["scenario"] for r in group})
            fig, axes = plt.subplots(2, len(scenarios), figsize=(5.5 * len(scenarios), 7.5), squeeze=False,
                                     sharex=True)
            for col, scenario in enumerate(scenarios):
                for run in sorted(group, key=lambda r: list(SCHEMES).index(r["scheme"])):
                    if run["scenario"] != scenario or run["policy"] != "weight":
                        continue
                    t = [r["time"] for r in run["rows"]]
                    style = dict(color=COLORS[run["scheme"]], label=run["scheme"], lw=1.4)
                    axes[0, col].plot(t, [r["test_accuracy"] for r in run["rows"]], **style)
                    axes[1, col].plot(t, [r["federated_loss"] for r in run["rows"]], **style)
                axes[0, col].set_title(f"{dataset}, M = {clients}, {scenario}")
                axes[0, col].set_ylabel("test accuracy")
                axes[1, col].set_ylabel(r"federated loss $\sum_i p_i F_i$")
                axes[1, col].set_xlabel("virtual time")
                axes[1, col].set_yscale("log")
                for ax in axes[:, col]:
                    ax.grid(alpha=0.3)
            axes[0, 0].legend(fontsize=8)
            fig.tight_layout()
            path = os.path.join(figures, f"{prefix}{dataset}_M{clients}.png")
            fig.savefig(path, dpi=110)
            plt.close(fig)
            written.append(path)

            drift = [r for r in group if r["scheme"] in IDENTICAL_SCHEMES and r["scenario"] == "F-80"]
            if {r["policy"] for r in drift} == {"weight", "identical"}:
                schemes = [s for s in IDENTICAL_SCHEMES if any(r["scheme"] == s for r in drift)]
                fig, axes = plt.subplots(1, len(schemes) + 2, figsize=(4.2 * (len(schemes) + 2), 3.8))
                axes = list(axes)
                for ax, scheme in zip(axes, schemes):
                    for run in drift:
                        if run["scheme"] != scheme:
                            continue
                        t = [r["time"] for r in run["rows"]]
                        ls = "-" if run["policy"] == "weight" else "--"
                        ax.plot(t, [r["federated_loss"] for r in run["rows"]], ls, color="tab:blue",
                                label=f"{run['policy']}: federated")
                        ax.plot(t, [r["surrogate_loss"] for r in run["rows"]], ls, color="tab:orange",
                                label=f"{run['policy']}: surrogate")
                    ax.set_title(f"{scheme}, F-80")
                    ax.set_xlabel("virtual time")
                    ax.set_yscale("log")
                    ax.grid(alpha=0.3)
                axes[0].set_ylabel("loss on the clients' data")
                axes[0].legend(fontsize=7)
                speed = 1 / np.array(drift[0]["mean_times"])
                ax = axes[-2]
                for run in drift:
                    ls = "-" if run["policy"] == "weight" else "--"
                    ax.plot(speed, run["effective_importance"], ls, marker="o", ms=3,
                            color=COLORS[run["scheme"]], label=f"{run['scheme']} {run['policy']}")
                ax.axhline(1 / clients, color="black", lw=0.8, label="p_i (uniform)")
                ax.set_xlabel(r"client speed $1/\tau_i$")
                ax.set_ylabel(r"share of aggregation weight $r_i$")
                ax.legend(fontsize=6)
                ax.grid(alpha=0.3)
                ax = axes[-1]
                bars = [(run["scheme"], run["policy"], slow_fast_ratio(run)) for run in drift]
                bars = sorted((b for b in bars if b[2] is not None),
                              key=lambda b: (list(SCHEMES).index(b[0]), b[1] != "weight"))
                for k, (scheme, policy, ratio) in enumerate(bars):
                    ax.bar(k, ratio, color=COLORS[scheme], hatch="" if policy == "weight" else "//",
                           edgecolor="black", lw=0.5)
                ax.set_xticks(range(len(bars)), [f"{b[0]}\n{b[1]}" for b in bars], fontsize=6)
                ax.axhline(1.0, color="black", lw=0.8)
                ax.set_ylabel("loss of the slowest half / fastest half")
                ax.set_title("who the model serves", fontsize=9)
                fig.tight_layout()
                path = os.path.join(figures, f"{prefix}{dataset}_M{clients}_policy.png")
                fig.savefig(path, dpi=110)
                plt.close(fig)
                written.append(path)
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=("digits", "shakespeare"), default="digits")
    parser.add_argument("--clients", type=int, nargs="+", default=[20, 50])
    parser.add_argument("--scenarios", nargs="+", default=["F-0", "F-80"])
    parser.add_argument("--schemes", nargs="+", default=list(SCHEMES), choices=list(SCHEMES))
    parser.add_argument("--no-identical", action="store_true", help="skip the identical-policy runs")
    parser.add_argument("--horizon", type=float, default=40.0)
    parser.add_argument("--eval-every", type=float, default=1.0)
    parser.add_argument("--local-steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--client-lr", type=float, default=None, help="default 0.05 (digits), 0.5 (Shakespeare)")
    parser.add_argument("--server-lr", type=float, default=1.0)
    parser.add_argument("--alpha", type=float, default=0.1)
    parser.add_argument("--model", choices=("cnn", "logistic"), default="cnn", help="digits model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.path.join(REPO_ROOT, "examples", "output", "async_fl"))
    parser.add_argument("--figures", default=None, help="where the PNGs go (default OUT)")
    parser.add_argument("--plots-only", action="store_true")
    parser.add_argument("--tiny", action="store_true", help="seconds: 4 digits clients, 2 schemes, horizon 2")
    args = parser.parse_args(argv)
    if args.tiny:
        args.dataset, args.clients, args.scenarios = "digits", [4], ["F-80"]
        args.schemes, args.horizon, args.eval_every = ["FedAvg", "Async"], 2.0, 0.5
        args.local_steps, args.batch_size, args.model = 2, 16, "logistic"
    figures = args.figures or args.out
    runs_dir = os.path.join(args.out, "runs")
    os.makedirs(runs_dir, exist_ok=True)

    if not args.plots_only:
        for clients in args.clients:
            setting = None
            for scenario in args.scenarios:
                plan = [(s, "weight") for s in args.schemes]
                if not args.no_identical and scenario != "F-0":
                    plan += [(s, "identical") for s in args.schemes if s in IDENTICAL_SCHEMES]
                for scheme, policy in plan:
                    path = os.path.join(runs_dir, run_name(args.dataset, clients, scenario, scheme, policy) + ".json")
                    if os.path.exists(path):
                        continue
                    setting = setting or Setting(args, args.dataset, clients)
                    result = run_one(args, setting, scenario, scheme, policy)
                    if result is None:
                        continue
                    with open(path + ".tmp", "w") as f:
                        json.dump(result, f)
                    os.replace(path + ".tmp", path)
                    last = result["rows"][-1]
                    print(f"{os.path.basename(path)[:-5]}: {result['server_steps']} steps, final test acc "
                          f"{last['test_accuracy']:.3f}, federated loss {last['federated_loss']:.3f} "
                          f"({result['wall_seconds']:.0f} s)", flush=True)

    runs = []
    for name in sorted(os.listdir(runs_dir)):
        if name.endswith(".json"):
            with open(os.path.join(runs_dir, name)) as f:
                runs.append(json.load(f))
    runs = [r for r in runs if r["dataset"] == args.dataset]
    markdown, table = summarize(runs)
    with open(os.path.join(args.out, f"summary_{args.dataset}.md"), "w") as f:
        f.write(markdown)
    with open(os.path.join(args.out, f"summary_{args.dataset}.json"), "w") as f:
        json.dump(table, f, indent=1, default=lambda v: None if isinstance(v, float) and math.isinf(v) else v)
    written = plot(runs, figures, "async_")
    print(markdown)
    print("figures:", ", ".join(written))
    return runs


if __name__ == "__main__":
    main()

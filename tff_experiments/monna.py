r"""Byzantine-robust peer-to-peer learning from the command line: MoNNA and its baselines.

    python -m tff_experiments.monna --machines 26 --byzantine 5 --rule nna --momentum 0.99 \
        --attack alie --alpha 1 --steps 600 --out runs/monna-alie

Farhadkhani, Guerraoui, Gupta, Hoang, Pinot, Stephan, "Robust Collaborative Learning with Linear
Gradient Overhead", ICML 2023, as the authors' ``peerToPeer.py`` runs it: every honest machine
takes a momentum half step :math:`\theta_j - \gamma_t m_j` on its own data, the machines
exchange models, the :math:`f` Byzantine machines send what the attack says, and each honest
machine mixes what it received with the rule (``nna``: average of the nearest ones, MoNNA with
``--momentum 0.99``, NNA with 0). The honest machines are TFF clients with their own state
(``tff_experiments.robust``).

The output folder holds ``metrics.csv`` and ``tensorboard/`` (mean and worst honest test
accuracy, spread between honest models, wall seconds and gradients per step),
``checkpoints/``, ``model/`` (one honest machine's ``model.keras`` and SavedModel) and
``summary.json``. Run the same command again after a crash or kill: it resumes from the last
checkpoint and ends exactly where an uninterrupted run ends.
"""
import json
import math

from tff_experiments.program.errors import CliArgumentParser, UsageError, run_cli

RULES = ("nna", "average", "trimmed_mean", "median", "geometric_median", "centered_clipping", "krum")
ATTACKS = ("none", "sign_flipping", "alie", "foe", "label_flipping", "mimic")
RECEPTIONS = ("authors", "all")
MODELS = ("logistic", "cnn")


def build_parser():
    parser = CliArgumentParser(
        prog="python -m tff_experiments.monna",
        description="MoNNA and Byzantine-robust peer-to-peer learning (Farhadkhani et al., ICML 2023) "
        "in TensorFlow Federated, on scikit-learn digits.",
        epilog="Re-running the same command with the same --out resumes a killed run exactly.",
    )
    machines = parser.add_argument_group("machines and attack")
    machines.add_argument("--machines", type=int, default=26, help="n, all machines (default 26, the authors' MNIST)")
    machines.add_argument("--byzantine", type=int, default=5,
                          help="f, Byzantine machines among them, 0 <= f < n/2; the rule tolerates as many (default 5)")
    machines.add_argument("--attack", default=None, choices=ATTACKS,
                          help="what the Byzantine machines send, knowing the honest models: sign_flipping (-mean), "
                               "alie (mean + z std), foe (mean - z mean), label_flipping (a step on labels 9-y), "
                               "mimic (a copy of one honest machine); none when f = 0 (default: alie, or none if f = 0)")
    machines.add_argument("--attack-factor", type=float, default=None,
                          help="z of alie/foe (default: the authors' line search of the z that hurts the rule most, "
                               "every step)")
    machines.add_argument("--mimic-target", type=int, default=0, help="honest machine copied by mimic (default 0)")

    rule = parser.add_argument_group("mixing rule")
    rule.add_argument("--rule", default="nna", choices=RULES,
                      help="nna: mean of the nearest received models (MoNNA/NNA); average: D-SGD; trimmed_mean: "
                           "MoCWTM/BRIDGE; median: coordinate-wise; geometric_median: MoGM; centered_clipping: SCC; "
                           "krum (default nna)")
    rule.add_argument("--reception", default="authors", choices=RECEPTIONS,
                      help="authors: each machine receives n-f models (its own, n-2f-1 random honest, the f "
                           "Byzantine) and nna keeps n-2f; all: it receives all n and nna keeps n-f, as byzfl's "
                           "MoNNA (default authors)")
    rule.add_argument("--clip-threshold", type=float, default=2.0, help="centered_clipping tau (default 2, the authors')")
    rule.add_argument("--clip-iterations", type=int, default=3, help="centered_clipping L (default 3, the authors')")
    rule.add_argument("--krum-plain-distances", action="store_true",
                      help="krum scores with plain distances, as the MoNNA authors' code (default: squared, as the paper)")

    optim = parser.add_argument_group("local steps")
    optim.add_argument("--momentum", type=float, default=0.99,
                       help="beta of m <- beta m + (1-beta) g (default 0.99: MoNNA; 0: NNA; the authors' SCC uses 0.9)")
    optim.add_argument("--lr", type=float, default=0.75, help="gamma_0 (default 0.75, the authors' MNIST)")
    optim.add_argument("--lr-decay", type=float, default=50.0,
                       help="tau of gamma_t = gamma_0/(t/tau + 1); 0 keeps gamma constant (default 50)")
    optim.add_argument("--lr-decay-delta", type=int, default=50, help="update gamma_t every this many steps (default 50)")
    optim.add_argument("--l2", type=float, default=1e-4, help="lambda of lambda ||theta||_2 in the loss (default 1e-4)")
    optim.add_argument("--batch-size", type=int, default=25, help="examples per machine per step (default 25)")
    optim.add_argument("--steps", type=int, default=600, help="training steps (default 600)")

    data = parser.add_argument_group("data and model")
    data.add_argument("--alpha", type=float, default=1.0,
                      help="Dirichlet concentration of the digits label split over the honest machines, >= 0 "
                           "(default 1)")
    data.add_argument("--model", default="logistic", choices=MODELS, help="digits model (default logistic)")
    data.add_argument("--seed", type=int, default=0, help="seeds the split, model, batches and receptions")

    run = parser.add_argument_group("run")
    run.add_argument("--out", required=True, help="output folder (resumes the run found there)")
    run.add_argument("--eval-every", type=int, default=10, help="evaluate every honest model every N steps (default 10)")
    run.add_argument("--checkpoint-every", type=int, default=50, help="checkpoint every N steps (default 50)")
    run.add_argument("--export-machine", type=int, default=0, help="honest machine whose model is exported (default 0)")
    run.add_argument("--progress", dest="progress", action="store_true", default=None,
                     help="force the progress bar (default: shown on a terminal)")
    run.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")
    return parser


def check_arguments(args):
    """Raises ``UsageError`` (one line) for input the run cannot use; fills the default attack."""
    n, f = args.machines, args.byzantine
    if n < 1:
        raise UsageError(f"--machines must be >= 1, got {n}")
    if f < 0 or 2 * f >= n:
        raise UsageError(f"--byzantine must satisfy 0 <= f < n/2 (n = {n}): got f = {f}; no rule tolerates a "
                         "Byzantine half")
    if args.attack is None:
        args.attack = "alie" if f > 0 else "none"
    if f > 0 and args.attack == "none":
        raise UsageError(f"f = {f} Byzantine machines need an --attack ({', '.join(ATTACKS[1:])})")
    if f == 0 and args.attack != "none":
        raise UsageError(f"--attack {args.attack} needs Byzantine machines: set --byzantine > 0")
    if args.attack_factor is not None and args.attack not in ("alie", "foe"):
        raise UsageError(f"--attack-factor is for alie and foe, not {args.attack}")
    if not 0 <= args.mimic_target < n - f:
        raise UsageError(f"--mimic-target must be a honest machine, 0 <= target < {n - f}")
    if not 0 <= args.export_machine < n - f:
        raise UsageError(f"--export-machine must be a honest machine, 0 <= machine < {n - f}")
    for name in ("lr",):
        value = getattr(args, name)
        if not (value > 0 and math.isfinite(value)):
            raise UsageError(f"--{name} must be > 0, got {value}")
    if not 0 <= args.momentum < 1:
        raise UsageError(f"--momentum must be in [0, 1), got {args.momentum}")
    if args.lr_decay < 0 or args.lr_decay_delta < 1:
        raise UsageError("--lr-decay must be >= 0 and --lr-decay-delta >= 1")
    for name in ("steps", "batch_size", "eval_every", "checkpoint_every"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not (args.alpha >= 0 and math.isfinite(args.alpha)):
        raise UsageError(f"--alpha must be >= 0, got {args.alpha}")
    if args.l2 < 0 or args.clip_threshold < 0 or args.clip_iterations < 0:
        raise UsageError("--l2, --clip-threshold and --clip-iterations must be >= 0")


def settings_from(args):
    from tff_experiments.robust.driver import RunSettings

    return RunSettings(
        num_machines=args.machines,
        num_byzantine=args.byzantine,
        rule=args.rule,
        attack=args.attack,
        momentum=args.momentum,
        reception=args.reception,
        attack_factor=args.attack_factor,
        learning_rate=args.lr,
        decay=args.lr_decay,
        decay_delta=args.lr_decay_delta,
        l2_regularization=args.l2,
        batch_size=args.batch_size,
        steps=args.steps,
        alpha=args.alpha,
        model=args.model,
        seed=args.seed,
        clip_threshold=args.clip_threshold,
        clip_iterations=args.clip_iterations,
        krum_squared=not args.krum_plain_distances,
        mimic_target=args.mimic_target,
    )


def main(argv=None):
    args = build_parser().parse_args(argv)
    check_arguments(args)
    import tff_experiments  # noqa: F401  (reaps TFF's worker_binary at exit)
    from tff_experiments.robust.driver import run_monna

    settings = settings_from(args)
    settings.config()  # rule/reception combinations the run cannot use fail here, in one line
    summary = run_monna(
        settings,
        args.out,
        eval_every=args.eval_every,
        checkpoint_every=args.checkpoint_every,
        export_machine=args.export_machine,
        progress=args.progress,
    )
    final = summary["final"]
    print(json.dumps({"out": args.out, "step": summary["steps"], **{k: round(v, 4) for k, v in final.items()}}))
    return 0


if __name__ == "__main__":
    run_cli(main)

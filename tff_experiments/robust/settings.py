"""The settings of a robust peer-to-peer run, and the names of the rules, attacks and receptions.

``RunSettings`` is checked once, when built, with one-line ``UsageError``s that name the flag of
``python -m tff_experiments.robust`` (the command line maps its flags onto the fields).
Nothing here imports TensorFlow, so the command line's checks are fast.
"""
import dataclasses
from typing import Optional

from tff_experiments.program.cli import check_number
from tff_experiments.program.errors import UsageError

RULE_NAMES = ("nna", "average", "trimmed_mean", "median", "geometric_median", "centered_clipping", "krum")
ATTACK_NAMES = ("none", "sign_flipping", "alie", "foe", "label_flipping", "mimic")
# Attacks whose factor z is searched by line_maximize unless given.
SCALED_ATTACKS = frozenset({"alie", "foe"})
RECEPTIONS = ("authors", "all")
MODELS = ("logistic", "cnn")
# Settings of how a run is run, not of its result: a resume may change them.
RUN_ONLY = ("out", "eval_every", "checkpoint_every", "export_machine", "progress")


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """Every setting of a robust peer-to-peer run, checked once, here (one-line ``UsageError``s
    that name the command line's flag). ``as_dict()`` holds those that determine the result."""

    num_machines: int = 26
    num_byzantine: int = 5
    rule: str = "nna"
    attack: Optional[str] = None  # default: alie, or none when num_byzantine is 0
    momentum: float = 0.99
    reception: str = "authors"
    attack_factor: Optional[float] = None
    learning_rate: float = 0.75
    decay: float = 50.0
    decay_delta: int = 50
    l2_regularization: float = 1e-4
    batch_size: int = 25
    steps: int = 600
    alpha: float = 1.0
    model: str = "logistic"
    seed: int = 0
    clip_threshold: float = 2.0
    clip_iterations: int = 3
    krum_squared: bool = True
    mimic_target: int = 0
    out: Optional[str] = None
    eval_every: int = 10
    checkpoint_every: int = 50
    export_machine: int = 0
    progress: Optional[bool] = None

    def __post_init__(self):
        if self.model not in MODELS:
            raise UsageError(f"--model must be one of {', '.join(MODELS)}, got {self.model!r}")
        if self.attack is None:
            object.__setattr__(self, "attack", "alie" if self.num_byzantine > 0 else "none")
        for field in ("batch_size", "steps", "eval_every", "checkpoint_every"):
            check_number(field, getattr(self, field), low=1, integer=True)
        for field in ("clip_iterations", "export_machine"):
            check_number(field, getattr(self, field), low=0, integer=True)
        for field in ("alpha", "clip_threshold"):
            check_number(field, getattr(self, field), low=0)
        check_peer_to_peer(self.num_machines, self.num_byzantine, self.rule, self.attack, reception=self.reception,
                           momentum=self.momentum, learning_rate=self.learning_rate, decay=self.decay,
                           decay_delta=self.decay_delta, l2_regularization=self.l2_regularization,
                           attack_factor=self.attack_factor, mimic_target=self.mimic_target, seed=self.seed)
        if self.export_machine >= self.num_honest:
            raise UsageError(f"--export-machine must be a honest machine, 0 <= machine < {self.num_honest}")

    @property
    def num_honest(self):
        return self.num_machines - self.num_byzantine

    def mixing_rule(self):
        from tff_experiments.robust.rules import MixingRule

        return MixingRule(self.rule, f=self.num_byzantine, clip_threshold=self.clip_threshold,
                          clip_iterations=self.clip_iterations, krum_squared=self.krum_squared)

    def config(self):
        """The ``MonnaConfig`` of the process."""
        from tff_experiments.robust.process import MonnaConfig

        return MonnaConfig(
            num_machines=self.num_machines,
            num_byzantine=self.num_byzantine,
            rule=self.mixing_rule(),
            attack=self.attack,
            momentum=self.momentum,
            learning_rate=self.learning_rate,
            decay=self.decay,
            decay_delta=self.decay_delta,
            l2_regularization=self.l2_regularization,
            reception=self.reception,
            attack_factor=self.attack_factor,
            mimic_target=self.mimic_target,
            seed=self.seed,
        )

    def as_dict(self):
        """The settings that determine the result (a resume must use the same)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in RUN_ONLY}


def check_rule_input(rule, num_received, f):
    """Raises ``ValueError`` when ``rule`` cannot mix ``num_received`` vectors tolerating ``f``."""
    k, f = int(num_received), int(f)
    if k < 1:
        raise ValueError("a machine must receive at least its own vector")
    if rule == "nna" and k - f < 1:
        raise ValueError(f"nna keeps k - f vectors: it needs more than f = {f} of them, got k = {k}")
    if rule == "trimmed_mean" and k - 2 * f < 1:
        raise ValueError(f"trimmed_mean drops 2f = {2 * f} of the {k} received vectors: it needs k > 2f")
    if rule == "krum" and k - f - 1 < 1:
        raise ValueError(f"krum scores over k - f - 1 neighbours: it needs k > f + 1, got k = {k}, f = {f}")


def check_peer_to_peer(num_machines, num_byzantine, rule, attack, *, reception, momentum, learning_rate, decay,
                       decay_delta, l2_regularization, attack_factor, mimic_target, seed):
    """Raises ``UsageError`` (a ``ValueError``; one line naming the flag) unless the settings make a
    run; ``RunSettings`` and the process' ``MonnaConfig`` both check through it."""
    n, f = num_machines, num_byzantine
    for field, value, choices in (("rule", rule, RULE_NAMES), ("attack", attack, ATTACK_NAMES),
                                  ("reception", reception, RECEPTIONS)):
        if value not in choices:
            raise UsageError(f"--{field} must be one of {', '.join(choices)}, got {value!r}")
    check_number("machines", n, low=1, integer=True)
    check_number("byzantine", f, low=0, integer=True)
    check_number("lr-decay-delta", decay_delta, low=1, integer=True)
    check_number("mimic-target", mimic_target, low=0, integer=True)
    check_number("seed", seed, low=0, high=2**32 - 1, integer=True)
    check_number("lr", learning_rate, low=0, low_open=True)
    check_number("momentum", momentum, low=0, high=1, high_open=True)
    check_number("lr-decay", decay, low=0)
    check_number("l2", l2_regularization, low=0)
    check_number("attack-factor", attack_factor)
    if 2 * f >= n:
        raise UsageError(f"--byzantine must satisfy 0 <= f < n/2 (n = {n}): got f = {f}; no rule tolerates a "
                         "Byzantine half")
    if f > 0 and attack == "none":
        raise UsageError(f"f = {f} Byzantine machines need an --attack ({', '.join(ATTACK_NAMES[1:])})")
    if f == 0 and attack != "none":
        raise UsageError(f"--attack {attack} needs Byzantine machines: set --byzantine > 0")
    if attack_factor is not None and attack not in SCALED_ATTACKS:
        raise UsageError(f"--attack-factor is for alie and foe, not {attack}")
    if mimic_target >= n - f:
        raise UsageError(f"--mimic-target must be a honest machine, 0 <= machine < {n - f}")
    try:  # the rule's needs (krum: k > f + 1, ...) for what each machine receives
        check_rule_input(rule, n - f if reception == "authors" else n, f)
    except ValueError as error:
        raise UsageError(f"--rule {rule}: {error}") from None

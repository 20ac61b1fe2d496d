"""The names of a robust run's choices (rules, attacks, receptions, models) and what each rule
needs of its input. Nothing here imports TensorFlow: the settings check names against these,
the rules and attacks define themselves by them.
"""

RULE_NAMES = ("nna", "average", "trimmed_mean", "median", "geometric_median", "centered_clipping", "krum")
ATTACK_NAMES = ("none", "sign_flipping", "alie", "foe", "label_flipping", "mimic")
# Attacks whose factor z is searched by line_maximize unless given.
SCALED_ATTACKS = frozenset({"alie", "foe"})
RECEPTIONS = ("authors", "all")
MODELS = ("logistic", "cnn")


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

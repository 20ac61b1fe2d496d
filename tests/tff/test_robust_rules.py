"""The robust mixing rules and attacks (plain TF) against the authors' code, byzfl and NumPy ports.

Fixtures: tests/fixtures/robust/robust_reference.json, made by make_robust_fixtures.py from the
authors' code (LPD-EPFL/robust-collaborative-learning) and byzfl.
"""
import json
import os

import numpy as np
import pytest

pytest.importorskip("tensorflow_federated")
import tensorflow as tf  # noqa: E402

from tests.tff import robust_numpy_ports as ports  # noqa: E402
from tff_experiments.robust import attacks  # noqa: E402
from tff_experiments.robust.centered_clipping import centered_clipping  # noqa: E402
from tff_experiments.robust.coordinatewise import coordinate_median, trimmed_mean  # noqa: E402
from tff_experiments.robust.geometric_median import geometric_median  # noqa: E402
from tff_experiments.robust.krum import krum  # noqa: E402
from tff_experiments.robust.nna import nearest_neighbor_average, nearest_neighbor_mixing  # noqa: E402
from tff_experiments.robust.rules import RULE_NAMES, MixingRule  # noqa: E402

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "robust", "robust_reference.json")
with open(FIXTURE) as _fh:
    REFERENCE = json.load(_fh)
TAU = REFERENCE["about"]["clip_threshold"]
CLIP_STEPS = REFERENCE["about"]["clip_iterations"]
RULE_CASES = REFERENCE["rules"]
ATTACK_CASES = REFERENCE["attacks"]


def close(actual, expected, tol=2e-5):
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    scale = max(1.0, float(np.max(np.abs(expected))))
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol * scale)


def f32(x):
    return tf.constant(np.asarray(x, np.float32))


def case_id(case):
    return f"k{case['k']}-d{case['d']}-f{case['f']}"


# --- the rules against the authors' aggregators and byzfl -------------------------------------


@pytest.mark.parametrize("case", RULE_CASES, ids=case_id)
def test_nna_equals_authors_cva_and_byzfl_monna(case):
    x, k, f = case["vectors"], case["k"], case["f"]
    close(nearest_neighbor_average(f32(x), f32(x)[0], k - f), case["authors"]["nna_own0"])
    own = k - f - 1  # the authors' honest_index of the own vector, last of the honest ones
    close(nearest_neighbor_average(f32(x), f32(x)[own], k - f), case["authors"]["nna_own_last"])
    if "monna_idx0" in case["byzfl"]:
        close(nearest_neighbor_average(f32(x), f32(x)[0], k - f), case["byzfl"]["monna_idx0"])
        close(nearest_neighbor_average(f32(x), f32(x)[2], k - f), case["byzfl"]["monna_idx2"])


@pytest.mark.parametrize("case", RULE_CASES, ids=case_id)
def test_nnm_equals_byzfl(case):
    close(nearest_neighbor_mixing(f32(case["vectors"]), case["f"]), case["byzfl"]["nnm"])


@pytest.mark.parametrize("case", RULE_CASES, ids=case_id)
def test_coordinatewise_rules_equal_authors_and_byzfl(case):
    x, f = f32(case["vectors"]), case["f"]
    close(trimmed_mean(x, f), case["authors"]["trimmed_mean"])
    close(coordinate_median(x), case["authors"]["median"])
    close(coordinate_median(x), case["byzfl"]["median"])
    if "trimmed_mean" in case["byzfl"]:
        close(trimmed_mean(x, f), case["byzfl"]["trimmed_mean"])


@pytest.mark.parametrize("case", RULE_CASES, ids=case_id)
def test_geometric_median_equals_authors_rfa_and_byzfl(case):
    x = f32(case["vectors"])
    close(geometric_median(x, 0.1, 3), case["authors"]["geometric_median"])
    close(geometric_median(x, 0.1, 3), case["byzfl"]["geometric_median"])


@pytest.mark.parametrize("case", RULE_CASES, ids=case_id)
def test_centered_clipping_equals_authors_scc_and_byzfl(case):
    x = f32(case["vectors"])
    close(centered_clipping(x, x[0], TAU, CLIP_STEPS), case["authors"]["centered_clipping_own0"])
    close(centered_clipping(x, tf.zeros_like(x[0]), TAU, CLIP_STEPS), case["byzfl"]["centered_clipping_zero"])


@pytest.mark.parametrize("case", RULE_CASES, ids=case_id)
def test_krum_equals_authors_and_byzfl(case):
    x, f = f32(case["vectors"]), case["f"]
    if case["authors"]["krum_unsquared"] is not None:
        close(krum(x, f, squared=False), case["authors"]["krum_unsquared"])
    if "krum" in case["byzfl"]:
        close(krum(x, f), case["byzfl"]["krum"])


@pytest.mark.parametrize("case", RULE_CASES, ids=case_id)
def test_average_equals_authors(case):
    close(MixingRule("average")(f32(case["vectors"])), case["authors"]["average"])


# --- the rules against the NumPy ports, on fresh draws ------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_rules_equal_numpy_ports(seed):
    rng = np.random.default_rng(100 + seed)
    k, d = int(rng.integers(5, 30)), int(rng.integers(1, 40))
    f = int(rng.integers(0, (k - 1) // 2 + 1))
    x = rng.standard_t(df=2, size=(k, d)).astype(np.float32)  # heavy tails: outliers
    tx = f32(x)
    close(MixingRule("nna", f=f)(tx), ports.nna(x, 0, k - f))
    close(nearest_neighbor_mixing(tx, f), ports.nnm(x, f))
    close(MixingRule("trimmed_mean", f=f)(tx), ports.trimmed_mean(x, f))
    close(MixingRule("median")(tx), ports.median(x))
    close(MixingRule("geometric_median", smoothing=0.05, weiszfeld_iterations=5)(tx), ports.geometric_median(x, 0.05, 5))
    close(
        MixingRule("centered_clipping", clip_threshold=0.7, clip_iterations=2)(tx),
        ports.centered_clipping(x, x[0], 0.7, 2),
    )
    if k - f - 1 >= 1:
        close(MixingRule("krum", f=f)(tx), ports.krum(x, f))
        close(MixingRule("krum", f=f, krum_squared=False)(tx), ports.krum(x, f, squared=False))


def test_rules_keep_honest_side_when_outvoted_and_average_does_not():
    """A sanity property of the paper: f far-away vectors move NNA little, the average a lot."""
    rng = np.random.default_rng(7)
    honest = rng.normal(size=(16, 10))
    byzantine = np.repeat(np.full((1, 10), 1e3), 5, axis=0)
    x = f32(np.concatenate([honest, byzantine]))
    spread = np.max(np.linalg.norm(honest - honest.mean(0), axis=1))
    for name in ("nna", "trimmed_mean", "median", "geometric_median", "krum", "centered_clipping"):
        mixed = MixingRule(name, f=5)(x).numpy()
        assert np.linalg.norm(mixed - honest.mean(0)) < 2 * spread, name
    assert np.linalg.norm(MixingRule("average", f=5)(x).numpy() - honest.mean(0)) > 100


def test_mix_each_applies_the_rule_per_machine():
    rng = np.random.default_rng(3)
    received = rng.normal(size=(4, 7, 3)).astype(np.float32)
    mixed = MixingRule("nna", f=2).mix_each(f32(received)).numpy()
    for j in range(4):
        close(mixed[j], ports.nna(received[j], 0, 5))


def test_ties_go_to_the_lower_index_like_a_stable_sort():
    x = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [5.0, 5.0]], np.float32)
    close(nearest_neighbor_average(f32(x), f32(x)[0], 3), ports.nna(x, 0, 3))  # [0,1,2] not [0,3]


def test_rule_arguments_are_checked():
    with pytest.raises(ValueError, match="unknown mixing rule"):
        MixingRule("bulyan")
    with pytest.raises(ValueError, match="k > 2f"):
        MixingRule("trimmed_mean", f=3).check(6)
    with pytest.raises(ValueError, match="krum"):
        MixingRule("krum", f=3).check(4)
    MixingRule("nna", f=5).check(21)
    assert set(RULE_NAMES) >= {"nna", "average", "trimmed_mean", "median", "geometric_median"}


# --- attacks ------------------------------------------------------------------------------------


def attack_id(case):
    return f"h{case['h']}-f{case['f']}-d{case['d']}"


@pytest.mark.parametrize("case", ATTACK_CASES, ids=attack_id)
def test_fixed_attacks_equal_authors_and_byzfl(case):
    honest, flipped = f32(case["honest"]), f32(case["flipped_gradients"])
    a, b = case["authors"], case["byzfl"]
    close(attacks.sign_flipping(honest), a["sign_flipping"])
    close(attacks.sign_flipping(honest), b["sign_flipping"])
    close(attacks.mimic(honest, 0), a["mimic"])
    close(attacks.mimic(honest, 0), b["mimic_0"])
    for factor in (1.5, 0.25, 3.0):
        close(attacks.a_little_is_enough(honest, factor), a[f"alie_factor_{factor}"])
        close(attacks.fall_of_empires(honest, factor), a[f"foe_factor_{factor}"])
    close(attacks.a_little_is_enough(honest, 1.5), b["alie_tau_1.5"])
    # byzfl's inner-product manipulation -tau * mean is FOE with z = 1 + tau.
    close(attacks.fall_of_empires(honest, 3.0), b["ipm_tau_2.0"])
    # The authors' label-flipping Byzantine model: mean of honest models - lr * mean flipped grad.
    lr = 0.375
    expected = np.mean(case["honest"], axis=0) - lr * np.asarray(a["label_flipping_gradient"])
    close(attacks.label_flipping(honest, flipped, lr), expected)


@pytest.mark.parametrize("item", REFERENCE["line_maximize"], ids=lambda c: c["name"])
def test_line_maximize_equals_authors(item):
    functions = {
        "peak_at_3.3": lambda x: -((x - 3.3) ** 2),
        "increasing": lambda x: x,
        "peak_at_0.2": lambda x: -tf.abs(x - 0.2),
        "bumpy": lambda x: tf.sin(3 * x) - 0.1 * x,
        "flat": lambda x: tf.zeros_like(x),
        "single": lambda x: -x,
    }
    found = attacks.line_maximize(functions[item["name"]], evaluations=item["evaluations"])
    np.testing.assert_allclose(float(found), item["argmax"], rtol=1e-9, atol=1e-12)
    np_functions = {
        "peak_at_3.3": lambda x: -((x - 3.3) ** 2),
        "increasing": lambda x: x,
        "peak_at_0.2": lambda x: -abs(x - 0.2),
        "bumpy": lambda x: np.sin(3 * x) - 0.1 * x,
        "flat": lambda x: 0.0,
        "single": lambda x: -x,
    }
    assert ports.line_maximize(np_functions[item["name"]], item["evaluations"]) == pytest.approx(item["argmax"])


AUTHORS_RULES = {
    # authors' GAR name -> our rule (krum is left out of the fixture, see its script)
    "cva": lambda f: MixingRule("nna", f=f),
    "trmean": lambda f: MixingRule("trimmed_mean", f=f),
    "median": lambda f: MixingRule("median", f=f),
    "rfa": lambda f: MixingRule("geometric_median", f=f),
    "centeredclip": lambda f: MixingRule("centered_clipping", f=f, clip_threshold=TAU, clip_iterations=3),
    "average": lambda f: MixingRule("average", f=f),
}
PORTS = {
    "nna": lambda f: (lambda x, j: ports.nna(x, j, len(x) - f)),
    "trimmed_mean": lambda f: (lambda x, j: ports.trimmed_mean(x, f)),
    "median": lambda f: (lambda x, j: ports.median(x)),
    "geometric_median": lambda f: (lambda x, j: ports.geometric_median(x)),
    "centered_clipping": lambda f: (lambda x, j: ports.centered_clipping(x, x[j], TAU, 3)),
    "average": lambda f: (lambda x, j: np.mean(x, axis=0)),
    "krum": lambda f: (lambda x, j: ports.krum(x, f)),
}


def searched_attack(kind, rule, honest, f):
    """Our ALIE/FOE with the factor searched against ``rule``, in graph mode as in TFF."""
    h = honest.shape[0]

    def mix_all(everything):
        n = everything.shape[0]
        rows = [[j] + [i for i in range(n) if i != j] for j in range(h)]
        return rule.mix_each(tf.gather(everything, rows))

    return tf.function(lambda x: attacks.byzantine_vector(kind, x, mix_all=mix_all, num_byzantine=f))(honest).numpy()


def damage(kind, honest, sent, f, mix_one):
    """The authors' objective at the factor z that produced ``sent`` (float64 NumPy)."""
    honest = np.asarray(honest, np.float64)
    everything = np.concatenate([honest, np.repeat(np.asarray(sent, np.float64)[None], f, axis=0)])
    mixed = np.mean([mix_one(everything, j) for j in range(len(honest))], axis=0)
    return float(np.sum((mixed - honest.mean(axis=0)) ** 2))


@pytest.mark.parametrize("gar", sorted(AUTHORS_RULES))
@pytest.mark.parametrize("kind", ["alie", "foe"])
def test_searched_attacks_equal_authors(kind, gar):
    """ALIE/FOE with the factor line-searched against each rule, as the authors' attack does."""
    for case in ATTACK_CASES:
        honest, f = f32(case["honest"]), case["f"]
        rule = AUTHORS_RULES[gar](f)
        sent = searched_attack(kind, rule, honest, f)
        expected = np.asarray(case["authors"][f"{kind}_search_{gar}"])
        if gar == "centeredclip":
            # Far enough, every Byzantine vector is clipped to tau: the damage is flat in z and
            # float rounding steers the search. Hold the damage reached, not the factor.
            mix_one = PORTS[rule.name](f)
            ours = damage(kind, case["honest"], sent, f, mix_one)
            theirs = damage(kind, case["honest"], expected, f, mix_one)
            assert ours == pytest.approx(theirs, rel=1e-3), (case["h"], ours, theirs)
            continue
        scale = max(1.0, float(np.max(np.abs(expected))))
        np.testing.assert_allclose(sent, expected, rtol=1e-4, atol=1e-4 * scale, err_msg=f"{gar} {case['h']}")


@pytest.mark.parametrize("name", ["trimmed_mean", "nna", "krum"])
def test_searched_attack_equals_numpy_port(name):
    rng = np.random.default_rng(5)
    honest = (rng.normal(size=(8, 6)) + 2.0).astype(np.float32)
    f = 3
    rule = MixingRule(name, f=f)
    for kind in ("alie", "foe"):
        sent = searched_attack(kind, rule, f32(honest), f)
        expected, _ = ports.searched_attack(kind, honest, f, PORTS[name](f))
        if name == "krum":  # piecewise-constant damage: compare what the attack achieves
            ours = damage(kind, honest, sent, f, PORTS[name](f))
            assert ours == pytest.approx(damage(kind, honest, expected, f, PORTS[name](f)), rel=1e-6)
        else:
            close(sent, expected, tol=1e-4)


def test_attack_names_are_checked():
    with pytest.raises(ValueError, match="unknown attack"):
        attacks.byzantine_vector("gaussian", f32(np.zeros((3, 2))), factor=1.0)
    with pytest.raises(ValueError, match="flipped gradients"):
        attacks.byzantine_vector("label_flipping", f32(np.zeros((3, 2))))


@pytest.mark.parametrize("name", RULE_NAMES)
def test_batched_rules_equal_one_machine_at_a_time(name):
    """Leading dimensions of [..., k, d] are independent machines (what mix_each relies on)."""
    rng = np.random.default_rng(11)
    received = rng.normal(size=(2, 3, 7, 4)).astype(np.float32)
    rule = MixingRule(name, f=2, clip_threshold=0.5)
    batched = rule(f32(received)).numpy()
    assert batched.shape == (2, 3, 4)
    for a in range(2):
        for b in range(3):
            close(batched[a, b], rule(f32(received[a, b])))

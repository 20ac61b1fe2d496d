r"""Attacks: the vectors that the :math:`f` Byzantine machines send, from the honest ones.

The Byzantine machines are omniscient (as in the paper): they see the :math:`h = n - f` honest
vectors :math:`x_1, \dots, x_h` of the step (in MoNNA, the honest models after their local half
step), with mean :math:`\bar x` and coordinate-wise standard deviation :math:`\sigma` (unbiased,
``torch.var``'s default), and all send the same vector :math:`b`:

- sign flipping: :math:`b = -\bar x`;
- a little is enough (ALIE; Baruch, Baruch, Goldberg, NeurIPS 2019): :math:`b = \bar x + z\,\sigma`;
- fall of empires (FOE; Xie, Koyejo, Gupta, UAI 2019): :math:`b = \bar x - z\,\bar x`;
- label flipping: :math:`b = \bar x - \gamma_t\,\bar g^{\text{flip}}`, with
  :math:`\bar g^{\text{flip}}` the mean of the honest gradients computed at the same points and
  batches with labels :math:`y \mapsto K - 1 - y`;
- mimic (Karimireddy, He, Jaggi, ICLR 2022): :math:`b = x_{1}`, a copy of one honest machine.

For ALIE and FOE the factor :math:`z \ge 0` is, by default, the one that best hurts the rule in
use: the authors' ``tools.line_maximize`` (16 evaluations, an expansion then a contraction
search) of

.. math::

    \phi(z) = \Big\lVert \frac{1}{h} \sum_{j=1}^{h} R_j(x_1, \dots, x_h, b(z), \dots, b(z))
        - \bar x \Big\rVert_2^2,

where :math:`R_j` is honest machine :math:`j`'s mixing rule applied to all :math:`n` vectors
(``attacks/identical.py`` of LPD-EPFL/robust-collaborative-learning).
"""
import tensorflow as tf

from tff_experiments.robust.choices import ATTACK_NAMES, SCALED_ATTACKS  # noqa: F401  (re-exported)


def sign_flipping(honest):
    """:math:`-\\bar x` for the honest vectors ``honest`` ``[h, d]``."""
    return -tf.reduce_mean(honest, axis=0)


def alie_direction(honest):
    """The coordinate-wise standard deviation :math:`\\sigma` (unbiased; 0 when h = 1)."""
    honest = tf.convert_to_tensor(honest)
    count = tf.cast(tf.shape(honest)[0], honest.dtype)
    deviations = honest - tf.reduce_mean(honest, axis=0, keepdims=True)
    return tf.sqrt(tf.reduce_sum(tf.square(deviations), axis=0) / tf.maximum(count - 1.0, 1.0))


def a_little_is_enough(honest, factor):
    """ALIE: :math:`\\bar x + z\\,\\sigma`."""
    honest = tf.convert_to_tensor(honest)
    return tf.reduce_mean(honest, axis=0) + tf.cast(factor, honest.dtype) * alie_direction(honest)


def fall_of_empires(honest, factor):
    """FOE: :math:`\\bar x - z\\,\\bar x`."""
    mean = tf.reduce_mean(honest, axis=0)
    return mean - tf.cast(factor, mean.dtype) * mean


def mimic(honest, target=0):
    """A copy of honest vector ``target``."""
    return tf.convert_to_tensor(honest)[target]


def label_flipping(honest, flipped_gradients, learning_rate):
    """:math:`\\bar x - \\gamma\\,\\bar g^{\\text{flip}}` (the authors' ``peerToPeer.py``)."""
    mean = tf.reduce_mean(honest, axis=0)
    step = tf.cast(learning_rate, mean.dtype) * tf.reduce_mean(flipped_gradients, axis=0)
    return mean - step


def attack_base_and_direction(attack, honest):
    """``(base, direction)`` with :math:`b(z) = \\text{base} + z\\,\\text{direction}` (ALIE, FOE)."""
    mean = tf.reduce_mean(honest, axis=0)
    if attack == "alie":
        return mean, alie_direction(honest)
    if attack == "foe":
        return mean, -mean
    raise ValueError(f"attack {attack!r} has no factor")


def line_maximize(objective, evaluations=16, start=0.0, delta=1.0, ratio=0.8):
    r"""Best-effort :math:`\arg\max_{x \ge 0} \phi(x)` in ``evaluations`` calls (graph-friendly).

    The authors' ``tools/misc.py:line_maximize``: from ``x = start``, an expansion phase tries
    ``best + delta`` and doubles ``delta`` while that improves; on the first failure ``delta``
    shrinks by ``ratio`` and a contraction phase moves the last proposal by ``delta`` towards
    the best point (halving back towards it whenever the move would go below 0), shrinking
    ``delta`` by ``ratio`` after every evaluation.

    Args:
      objective: callable from a float64 scalar tensor to a scalar tensor.
      evaluations: number of calls of ``objective``, >= 1.
      start, delta, ratio: as in the authors' code (``start >= 0``, ``delta > 0``,
        ``0.5 < ratio < 1``).

    Returns:
      float64 scalar tensor, the best point evaluated.
    """
    if int(evaluations) < 1:
        raise ValueError(f"line_maximize needs at least one evaluation, got {evaluations}")
    f64 = tf.float64
    start = tf.constant(start, f64)
    ratio = tf.constant(ratio, f64)
    best_y0 = tf.cast(objective(start), f64)

    def halve_up_to_zero(x, towards):
        return tf.while_loop(
            lambda x: x < 0.0, lambda x: [(x + towards) / 2.0], [x], maximum_iterations=4096
        )[0]

    def body(left, best_x, best_y, proposal, step, expanding):
        contracted = tf.where(
            proposal < best_x, proposal + step, halve_up_to_zero(proposal - step, proposal)
        )
        x = tf.where(expanding, best_x + step, contracted)
        y = tf.cast(objective(x), f64)
        better = y > best_y
        step = tf.where(expanding & better, step * 2.0, step * ratio)
        return (
            left - 1,
            tf.where(better, x, best_x),
            tf.where(better, y, best_y),
            x,
            step,
            expanding & better,
        )

    loop = tf.while_loop(
        lambda left, *_: left > 0,
        body,
        (tf.constant(int(evaluations) - 1), start, best_y0, start, tf.constant(delta, f64), tf.constant(True)),
    )
    return loop[1]


def byzantine_vector(
    attack,
    honest,
    mix_all=None,
    factor=None,
    evaluations=16,
    flipped_gradients=None,
    learning_rate=None,
    mimic_target=0,
    num_byzantine=None,
):
    r"""The vector :math:`b` that every Byzantine machine sends this step.

    Args:
      attack: one of ``ATTACK_NAMES`` except ``"none"``.
      honest: honest vectors ``[h, d]``.
      mix_all: for the line search of ALIE/FOE: callable from all ``n`` vectors ``[n, d]``
        (honest first) to the ``h`` honest machines' mixing results ``[h, d]``.
      factor: fixed :math:`z` for ALIE/FOE; ``None`` searches it with ``line_maximize``.
      evaluations: line-search budget.
      flipped_gradients: ``[h, d]`` honest gradients on flipped labels (label flipping).
      learning_rate: :math:`\gamma_t` (label flipping).
      mimic_target: index of the honest vector copied by mimic.
      num_byzantine: :math:`f`, needed by the line search.

    Returns:
      Float tensor ``[d]``.
    """
    honest = tf.convert_to_tensor(honest)
    if attack == "sign_flipping":
        return sign_flipping(honest)
    if attack == "mimic":
        return mimic(honest, mimic_target)
    if attack == "label_flipping":
        if flipped_gradients is None or learning_rate is None:
            raise ValueError("label flipping needs the flipped gradients and the learning rate")
        return label_flipping(honest, flipped_gradients, learning_rate)
    if attack not in SCALED_ATTACKS:
        raise ValueError(f"unknown attack {attack!r}; choose one of {', '.join(ATTACK_NAMES)}")
    base, direction = attack_base_and_direction(attack, honest)
    if factor is None:
        if mix_all is None or num_byzantine is None:
            raise ValueError("the line search of the attack factor needs mix_all and num_byzantine")
        mean = tf.reduce_mean(honest, axis=0)

        def damage(z):
            sent = base + tf.cast(z, honest.dtype) * direction
            byzantine = tf.repeat(sent[tf.newaxis, :], num_byzantine, axis=0)
            mixed = mix_all(tf.concat([honest, byzantine], axis=0))
            gap = tf.reduce_mean(mixed, axis=0) - mean
            return tf.reduce_sum(tf.square(gap))

        factor = line_maximize(damage, evaluations=evaluations)
    return base + tf.cast(factor, honest.dtype) * direction

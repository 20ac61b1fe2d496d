r"""Coordinate-wise clipping of the top coordinates: Pan & Li, "Toward Understanding Why Adam
Converges Faster Than SGD for Transformers" (OPT 2022, arXiv 2306.00204), with the semantics
of the authors' code (github.com/panyan7/adam-vs-sgd, ``torch_optimizer/{sgd,adam}_clip.py``,
multi-tensor path).

One threshold per step, global over **all** coordinates of all trainable variables. With
:math:`N` coordinates in total, the magnitudes sorted in descending order
:math:`|g|_{(0)} \ge |g|_{(1)} \ge \dots \ge |g|_{(N-1)}`, a clipped ``fraction`` :math:`p`
and a ``threshold_scale`` :math:`c`:

.. math::

    k &= \lfloor N p \rfloor \\
    \tau &= c \, |g|_{(k)} \quad (\tau = 0 \text{ when } p = 1) \\
    \operatorname{clip}_\tau(g)_i &= \operatorname{sign}(g_i) \min(|g_i|, \tau)

so the :math:`k` largest coordinates (about a fraction :math:`p`) are cut down to the
magnitude of the next one. The optimizers decide where the clipped gradient goes (Pan & Li:
SGD's momentum; Adam's first moment only, the second moment sees the raw gradient).

Two ways to find :math:`|g|_{(k)}`, neither of which sorts (a sort of 10M values under XLA on
CPU costs about 100 optimizer updates):

- ``exact_threshold``: ``select_descending`` over all :math:`N` magnitudes (counted in place,
  variable by variable): a bracketing search on the value that counts the magnitudes above one
  probe per pass (secant steps on the counts, bisection as the safeguard), started from two
  order statistics of the sample below. Exact, about 5 to 10 counting passes over the
  gradient (about 4-5x an Adam update at 10M on CPU; see
  ``benchmarks/coordinate_clip_step_time.py`` and ``docs/coordinate_clipping.md``).
- ``sampled_threshold`` (the "fast" mode): the same order statistic of a sample of
  ``sample_size`` magnitudes, :math:`\hat\tau = c\,|s|_{(\lfloor S p \rfloor)}`. The sample is
  stratified (each variable contributes in proportion to its size) and, inside a variable of
  :math:`n` coordinates, a rank-1 lattice :math:`\{(o_t + q j) \bmod n : j < S_v\}` with a
  stride :math:`q \approx 0.618\,n` coprime to :math:`n` (evenly spread points, every row and
  column visited) and an offset :math:`o_t` that moves with the step (different coordinates
  every step, no random-number state: every replica of a distributed step picks the same
  sample). The number of
  coordinates that :math:`\hat\tau` actually clips, :math:`\hat k`, has for a random sample a
  relative error of about :math:`\sqrt{(1-p)/(pS)}`; :math:`S` = ``fast_sample_size(p)``
  keeps that at 5% or less (1.6% at :math:`p=0.5` and 4.7% at :math:`p=0.1` with
  :math:`S=4096`; :math:`S` grows to 65536 for small :math:`p`);
  ``docs/coordinate_clipping.md`` reports what it is on real gradients. When :math:`N \le S` the sample is every coordinate and the fast mode is exact.
"""
import math

import numpy as np

from keras_optim import validation
from keras_optim.backend import KERAS3, dtype_name, ops

# Tensors are compared with ops.equal / ops.not_equal, never == / !=: in TF's legacy graph mode
# (where TFF traces) `tensor == k` is Python identity and gives a bool, not an element-wise test.

MODES = ("exact", "fast")
# The ``coordinate_clip=`` option of every adapter (Keras classes, TFF builders): off by default.
CLIP_DEFAULTS = dict(coordinate_clip=0.0, clip_threshold_scale=1.0, clip_mode="exact")
MIN_SAMPLE_SIZE, MAX_SAMPLE_SIZE = 4096, 65536
TARGET_RANK_ERROR = 0.05
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0
_SILVER = math.sqrt(2.0) - 1.0


def check_fraction(name, value):
    """The clipped fraction :math:`p`, in [0, 1] (0: no clipping)."""
    return validation.check_real(name, value, low=0.0, high=1.0)


def check_threshold_scale(name, value):
    return validation.check_real(name, value, low=0.0, low_open=True)


def check_mode(name, value):
    if value not in MODES:
        raise ValueError(f"`{name}` must be one of {MODES}, got {value!r}.")
    return value


def fast_sample_size(fraction):
    r"""The fast mode's sample size :math:`S` for a fraction :math:`p`: the smallest for which a
    random sample's relative rank error :math:`\sqrt{(1-p)/(pS)}` is at most 5%, within
    [4096, 65536] (4096 for :math:`p \ge 0.09`; the cap binds below :math:`p = 0.006`)."""
    if not 0.0 < fraction < 1.0:
        return MIN_SAMPLE_SIZE
    needed = math.ceil((1.0 - fraction) / (fraction * TARGET_RANK_ERROR**2))
    return int(min(MAX_SAMPLE_SIZE, max(MIN_SAMPLE_SIZE, needed)))


def threshold_rank(total_size, fraction):
    r""":math:`k = \lfloor N p \rfloor`, computed as the authors' ``int(N * fraction)``."""
    return int(total_size * fraction)


def threshold_dtype(gradients):
    """float64 if any gradient is float64, else float32 (half precision is counted in float32)."""
    return "float64" if any(dtype_name(g.dtype) == "float64" for g in gradients) else "float32"


def static_size(tensor):
    shape = tuple(tensor.shape)
    if any(d is None for d in shape):
        raise ValueError(
            "Coordinate clipping needs gradients of static shape (the threshold's rank "
            f"floor(N * fraction) is fixed when the step is traced); got shape {shape}."
        )
    return int(np.prod(shape, dtype=np.int64))


def _magnitudes(gradient, dtype):
    return ops.reshape(ops.abs(ops.cast(gradient, dtype)), (-1,))


_ROW = 1024


def _sum_rows(terms, dtype):
    """The row sums of a 1-D tensor cut in rows of 1024 (a ``(rows, 1)`` tensor), and the sum of
    the remaining tail. A product with a vector of ones: XLA's CPU backend runs it about ten
    times faster than one reduction over an element-wise expression, which it does not
    vectorize."""
    size = static_size(terms)
    rows, split = size // _ROW, size // _ROW * _ROW
    if not KERAS3:  # TF 2.14's XLA runs the product as a slower matrix-vector call: one sum
        rows, split = 0, 0
    tail = ops.sum(ops.cast(terms[split:], dtype))
    if not rows:
        return None, tail
    body = ops.reshape(terms[:split] if split < size else terms, (rows, _ROW))
    return ops.matmul(ops.cast(body, dtype), ops.ones((_ROW, 1), dtype=dtype)), tail


def _count(mask, count_dtype):
    """The number of True in a 1-D boolean tensor: each row's count (at most 1024) is exact in
    float32, and the row counts are added as integers."""
    per_row, tail = _sum_rows(mask, "float32" if KERAS3 else count_dtype)
    total = ops.cast(tail, count_dtype)
    if per_row is not None:
        total = total + ops.sum(ops.cast(per_row, count_dtype))
    # Cast back: a sum of int32 is int64 under JAX's 64-bit mode (`jax_enable_x64`), and the
    # search loop's counts must keep one dtype.
    return ops.cast(total, count_dtype)


def _count_above(pieces, threshold, count_dtype):
    counts = [_count(values > threshold, count_dtype) for values in pieces]
    return sum(counts[1:], counts[0])


def _only_value(pieces, lo, hi):
    """The value in ``(lo, hi]``, for pieces holding exactly one there: a sum of that value and
    zeros, exact in any order."""
    total = None
    for values in pieces:
        dtype = dtype_name(values.dtype)
        inside = ops.logical_and(values > lo, values <= hi)
        per_row, tail = _sum_rows(ops.where(inside, values, ops.cast(0.0, dtype)), dtype)
        piece = tail if per_row is None else tail + ops.sum(per_row)
        total = piece if total is None else total + piece
    return total


def _next_probe(lo, hi):
    """A value strictly inside (lo, hi) unless none exists (then lo or hi): 0 first, then
    2^-32 of the top while lo is 0, geometric halving while hi > 4 lo, arithmetic after."""
    zero = lo * 0.0
    down = hi * 2.0**-32
    from_zero = ops.where(down > zero, down, hi * 0.5)
    geometric = ops.sqrt(lo) * ops.sqrt(hi)
    arithmetic = lo + (hi - lo) * 0.5
    inside = ops.where(hi > 4.0 * lo, geometric, arithmetic)
    return ops.where(lo < zero, zero, ops.where(ops.equal(lo, zero), from_zero, inside))


def select_descending(values, rank, guesses=()):
    r"""``sorted(values, descending)[rank]`` for a 1-D tensor of non-negative values (or a list
    of them, taken as their concatenation, which is never built), exactly, without sorting.

    A bracket ``lo < hi`` keeps :math:`c_{lo} = \#\{v > lo\} > k \ge c_{hi} = \#\{v > hi\}`
    (:math:`k` = ``rank``); each step counts the values above one probe, in one fused pass, and
    moves an end there. The probe interpolates the counts linearly between the ends (a
    secant step on the empirical distribution, aimed between :math:`k` and :math:`k+1`), or
    bisects (geometrically across orders of magnitude) when the last interpolation did not
    halve :math:`c_{lo} - c_{hi}`. It starts from the largest finite number and stops when one
    value lies in ``(lo, hi]`` (:math:`c_{lo} - c_{hi} = 1`, so :math:`c_{hi} = k`: that value
    is the answer, read off by one masked sum) or when no number lies between ``lo`` and ``hi``
    (the answer is ``hi``). ``guesses`` (e.g. order statistics of a sample around the target)
    tighten the bracket before the search. Counts and the masked sum are products with a
    vector of ones (``_sum_rows``), the fastest full pass XLA's CPU backend offers.

    A NaN or an infinity among the values gives an infinite result (clipping at it changes
    nothing), the same eagerly and under XLA (whose max would skip NaN).
    """
    pieces = list(values) if isinstance(values, (list, tuple)) else [values]
    dtype = dtype_name(pieces[0].dtype)
    size = sum(static_size(v) for v in pieces)
    count_dtype = "int32" if size < 2**31 else "int64"
    k = ops.cast(rank, count_dtype)
    largest = np.finfo(dtype).max
    # NaN and infinities fail `v <= largest` (XLA's max would skip NaN): counted, not searched.
    non_finite = sum(_count(ops.logical_not(v <= largest), count_dtype) for v in pieces)
    hi = ops.cast(largest, dtype)
    lo = hi * 0.0 - 1.0
    c_lo, c_hi = ops.cast(size, count_dtype), ops.cast(0, count_dtype)
    for guess in guesses:
        count = _count_above(pieces, guess, count_dtype)
        high = count <= k
        to_hi = ops.logical_and(high, guess < hi)
        to_lo = ops.logical_and(ops.logical_not(high), guess > lo)
        hi, c_hi = ops.where(to_hi, guess, hi), ops.where(to_hi, count, c_hi)
        lo, c_lo = ops.where(to_lo, guess, lo), ops.where(to_lo, count, c_lo)

    def searching(lo, hi, c_lo, c_hi, interpolate):
        probe = _next_probe(lo, hi)
        room = ops.logical_and(probe > lo, probe < hi)
        return ops.logical_and(room, ops.not_equal(c_lo - c_hi, 1))

    def step(lo, hi, c_lo, c_hi, interpolate):
        base = ops.maximum(lo, lo * 0.0)
        share = (ops.cast(c_lo - k, lo.dtype) - 0.5) / ops.cast(c_lo - c_hi, lo.dtype)
        secant = base + (hi - base) * share
        usable = ops.logical_and(interpolate, ops.logical_and(secant > lo, secant < hi))
        probe = ops.where(usable, secant, _next_probe(lo, hi))
        count = _count_above(pieces, probe, count_dtype)
        high = count <= k
        new_lo, new_c_lo = ops.where(high, lo, probe), ops.where(high, c_lo, count)
        new_hi, new_c_hi = ops.where(high, probe, hi), ops.where(high, count, c_hi)
        halved = 2 * (new_c_lo - new_c_hi) <= c_lo - c_hi
        return new_lo, new_hi, new_c_lo, new_c_hi, ops.logical_or(ops.logical_not(usable), halved)

    lo, hi, c_lo, c_hi, _ = ops.while_loop(
        searching, step, (lo, hi, c_lo, c_hi, c_lo > 0), maximum_iterations=512
    )
    # One value in (lo, hi] (then c_hi = k: it is the answer), or none strictly between lo and
    # hi (every value in (lo, hi] equals hi).
    answer = ops.where(ops.equal(c_lo - c_hi, 1), _only_value(pieces, lo, hi), hi)
    return ops.where(non_finite > 0, hi * 0.0 + float("inf"), answer)  # non-finite in: no clipping


def _sample_guesses(gradients, fraction, step, sample_size, dtype):
    r"""Two order statistics of the lattice sample, about 3 standard deviations of the sample
    rank on either side of :math:`\lfloor Sp \rfloor`: the exact search starts inside them."""
    sample, sampled = _lattice_sample(gradients, step, sample_size, dtype)
    rank = threshold_rank(sampled, fraction)
    spread = int(math.ceil(3.0 * math.sqrt(sampled * fraction * (1.0 - fraction)))) + 1
    upper, lower = max(rank - spread, 0), min(rank + spread, sampled - 1)
    return select_descending(sample, lower), select_descending(sample, upper)


def exact_threshold(gradients, fraction, threshold_scale=1.0, step=0, sample_size=None):
    r""":math:`\tau = c\,|g|_{(\lfloor Np \rfloor)}` over every coordinate of ``gradients``.

    Args:
      gradients: list of dense tensors (all trainable variables' gradients).
      fraction: :math:`p \in (0, 1]`, the fraction of coordinates to clip.
      threshold_scale: :math:`c > 0`.
      step, sample_size: the lattice sample (see ``sampled_threshold``; ``None``:
        ``fast_sample_size(fraction)``) whose order statistics start the search; the result
        does not depend on them.

    Returns:
      A scalar tensor, float64 if any gradient is float64, else float32.
    """
    dtype = threshold_dtype(gradients)
    if fraction >= 1.0:  # as the authors: everything is clipped to zero
        return ops.cast(0.0, dtype)
    sizes = [static_size(g) for g in gradients]
    total = sum(sizes)
    magnitudes = [_magnitudes(g, dtype) for g in gradients]  # counted in place, not concatenated
    guesses = ()
    sample_size = sample_size or fast_sample_size(fraction)
    if total > sample_size:
        guesses = _sample_guesses(gradients, fraction, step, sample_size, dtype)
    tau = select_descending(magnitudes, threshold_rank(total, fraction), guesses)
    return tau * ops.cast(threshold_scale, dtype)


def _coprime_near(size, share):
    """The smallest integer >= ``share * size`` that is coprime to ``size``."""
    number = max(1, int(round(share * size)))
    while math.gcd(number, size) != 1:
        number += 1
    return number


def sample_plan(sizes, sample_size):
    r"""Per variable ``(count, stride)``: counts proportional to the sizes (largest
    remainders), adding up to ``min(sample_size, N)``; ``stride`` 0 means "take every
    coordinate". The stride :math:`q \approx 0.618\,n` is coprime to :math:`n`: the points
    :math:`j q \bmod n,\ j < S_v` are distinct and, by the three-gap theorem, split the variable
    into gaps of at most three lengths whatever :math:`S_v / n`; as :math:`n` is the product of
    the dimensions, :math:`q` is coprime to each and the columns are visited evenly too."""
    total = sum(sizes)
    if total <= sample_size:
        return [(n, 0) for n in sizes]
    quotas = [n * sample_size / total for n in sizes]
    counts = [int(q) for q in quotas]
    by_remainder = sorted(range(len(sizes)), key=lambda i: counts[i] - quotas[i])
    for i in by_remainder[: sample_size - sum(counts)]:
        counts[i] += 1
    plan = []
    for n, c in zip(sizes, counts):
        plan.append((n, 0) if c >= n else (c, _coprime_near(n, _GOLDEN) if c else 0))
    return plan


def _lattice_offset(step, size):
    r""":math:`o_t = t\,m \bmod n` with :math:`m \approx (\sqrt 2 - 1)\,n` (an irrational
    other than the stride's, so that successive steps' lattices do not overlap), in int64."""
    multiplier = _coprime_near(size, _SILVER)
    t = ops.mod(ops.cast(step, "int64"), size)
    return ops.mod(t * multiplier, size)


def _lattice_sample(gradients, step, sample_size, dtype):
    """The stratified lattice sample of the magnitudes and its size."""
    sizes = [static_size(g) for g in gradients]
    plan = sample_plan(sizes, sample_size)
    pieces = []
    for gradient, size, (count, stride) in zip(gradients, sizes, plan):
        if count == 0:
            continue
        magnitudes = _magnitudes(gradient, dtype)
        if stride == 0:
            pieces.append(magnitudes)
            continue
        lattice = ops.arange(0, count * stride, stride, dtype="int64")
        indices = ops.mod(lattice + _lattice_offset(step, size), size)
        pieces.append(ops.take(magnitudes, indices, axis=0))
    sample = ops.concatenate(pieces, axis=0) if len(pieces) > 1 else pieces[0]
    return sample, sum(c for c, _ in plan)


def sampled_threshold(gradients, fraction, threshold_scale=1.0, step=0, sample_size=None):
    r"""The fast mode: :math:`\hat\tau = c\,|s|_{(\lfloor Sp \rfloor)}` over a stratified
    lattice sample :math:`s` of ``sample_size`` magnitudes (``None``:
    ``fast_sample_size(fraction)``; see the module docstring).

    ``step`` (an integer tensor, e.g. the optimizer's iteration count) moves the lattice; every
    replica that sees the same step and gradients gets the same threshold.
    """
    dtype = threshold_dtype(gradients)
    if fraction >= 1.0:
        return ops.cast(0.0, dtype)
    sample, sampled = _lattice_sample(
        gradients, step, sample_size or fast_sample_size(fraction), dtype
    )
    tau = select_descending(sample, threshold_rank(sampled, fraction))
    return tau * ops.cast(threshold_scale, dtype)


def global_threshold(gradients, fraction, threshold_scale=1.0, mode="exact", step=0,
                     sample_size=None):
    """The step's threshold by ``mode``: ``"exact"`` or ``"fast"`` (sampled)."""
    if mode == "exact":
        return exact_threshold(gradients, fraction, threshold_scale, step, sample_size)
    if mode == "fast":
        return sampled_threshold(gradients, fraction, threshold_scale, step, sample_size)
    raise ValueError(f"`mode` must be one of {MODES}, got {mode!r}.")


def clip_by_threshold(gradient, threshold):
    r""":math:`\operatorname{sign}(g_i)\min(|g_i|, \tau)`.

    Written as a selection so that coordinates at or under the threshold pass unchanged, a NaN
    coordinate stays NaN (only there) and an infinite threshold changes nothing; the authors'
    ``g*(|g|<t) + sign(g)*(|g|>=t)*t`` gives the same for every finite gradient. (A NaN or
    infinite gradient coordinate makes the exact threshold infinite: that step is not clipped,
    and the non-finite value reaches the update as it would without clipping.)
    """
    tau = ops.cast(threshold, gradient.dtype)
    return ops.where(ops.abs(gradient) > tau, ops.sign(gradient) * tau, gradient)


def clip_coordinates(gradients, fraction, threshold_scale=1.0, mode="exact", step=0,
                     sample_size=None):
    """Clips a list of gradients with one global threshold; returns ``(clipped, threshold)``.

    ``fraction == 0`` returns the gradients unchanged (and a threshold of ``None``).
    """
    if fraction == 0:
        return list(gradients), None
    tau = global_threshold(gradients, fraction, threshold_scale, mode, step, sample_size)
    return [clip_by_threshold(g, tau) for g in gradients], tau

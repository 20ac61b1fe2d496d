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

- ``exact_threshold``: up to ``SORTED_SIZE`` (4096) coordinates, a sort (256 on JAX's CPU,
  ``_sorted_size``); beyond,
  ``search_descending`` over all :math:`N` magnitudes (counted in place, variable by
  variable): a bracketing search on the value that counts the magnitudes above four probes
  per pass (packed in 6-bit fields of one float32 per row of 32), started from four order
  statistics of a lattice sample of 4096 about the target and then placing its probes around
  the interpolated crossing of the counts. Exact, about 5 to 7 passes over the gradient at
  10M (``benchmarks/coordinate_clip_step_time.py`` and ``docs/coordinate_clipping.md``).
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
import functools
import math

import numpy as np

from keras_optim import validation
from keras_optim.backend import KERAS3, dtype_name, jax_on_cpu, ops

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


# Arrays of at most this many values are selected from by sorting them (a sort of 4096 floats
# under XLA on CPU costs about a third of one counting pass over 10M).
SORTED_SIZE = 4096
_ROW = 1024
# Four probes are counted in one pass: per row of 32 values, each count (0 to 32) takes 6 bits
# of one float32 (24 bits), and the row sums are exact.
_PROBES, _PACKED_ROW, _FIELD = 4, 32, 64


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


def _row_sums(matrix):
    """The row sums of a float32 ``(rows, 32)`` matrix. On JAX's XLA-CPU, as a product with a
    vector of ones: a row reduction over an element-wise expression runs there about four
    times slower (one 10M counting pass: 140 against 35 ms of CPU); TensorFlow's XLA runs both
    alike (6-7 ms), and a GPU reduces rows well."""
    if jax_on_cpu():
        return ops.matmul(matrix, ops.ones((matrix.shape[1], 1), dtype="float32"))[:, 0]
    return ops.sum(matrix, axis=1)


def _counts_above(pieces, probes, count_dtype):
    r"""``[#{v > p} for p in probes]`` (at most four probes) in one pass over each piece: every
    value adds :math:`\sum_j [v > p_j]\,64^j` to its row of 32, so that a row's sum (below
    :math:`2^{24}`, exact in float32 in any order) holds the row's four counts in 6-bit fields.
    One element-wise expression summed by rows: the four counts cost about one pass."""
    totals = [None] * len(probes)

    def add(j, count):
        count = ops.cast(count, count_dtype)
        totals[j] = count if totals[j] is None else totals[j] + count

    for values in pieces:
        size = static_size(values)
        rows = size // _PACKED_ROW
        split = rows * _PACKED_ROW
        if rows:
            body = values[:split] if split < size else values
            packed = None
            for j, probe in enumerate(probes):
                term = ops.cast(body > probe, "float32") * float(_FIELD**j)
                packed = term if packed is None else packed + term
            per_row = ops.cast(_row_sums(ops.reshape(packed, (rows, _PACKED_ROW))), "int32")
            for j in range(len(probes)):
                add(j, ops.sum((per_row // _FIELD**j) % _FIELD))
        if split < size:
            for j, probe in enumerate(probes):
                add(j, ops.sum(ops.cast(values[split:] > probe, count_dtype)))
    # A sum of int32 is int64 under JAX's 64-bit mode: the search loop's counts keep one dtype.
    return [ops.cast(total, count_dtype) for total in totals]


def _only_value(pieces, lo, hi, single):
    """The value in ``(lo, hi]`` when ``single`` (the pieces hold exactly one there: a sum of
    that value and zeros, exact in any order), else 0; plus every NaN and infinity, so that the
    result is non-finite when any value is (XLA's max would skip NaN)."""
    total = None
    for values in pieces:
        dtype = dtype_name(values.dtype)
        values = ops.abs(values)
        inside = ops.logical_and(single, ops.logical_and(values > lo, values <= hi))
        non_finite = ops.logical_not(values <= np.finfo(dtype).max)
        keep = ops.logical_or(inside, non_finite)
        per_row, tail = _sum_rows(ops.where(keep, values, ops.cast(0.0, dtype)), dtype)
        piece = tail if per_row is None else tail + ops.sum(per_row)
        total = piece if total is None else total + piece
    return total


def _unit(lo, hi):
    """A power of two that takes ``hi`` above the square root of the smallest normal number:
    probes are computed on values multiplied by it, so that no difference of two nearby tiny
    values is flushed to zero (as CPUs do with subnormal numbers); dividing back is exact."""
    tiny = np.finfo(dtype_name(hi.dtype))
    half = 2.0 ** (-(int(np.log2(tiny.tiny)) // 2))
    return ops.where(hi < 1.0 / half, hi * 0.0 + half, hi * 0.0 + 1.0)


def _next_probe(lo, hi):
    """A value strictly inside (lo, hi) unless none exists (then lo or hi): 0 first, then
    2^-32 of the top while lo is 0, geometric halving while hi > 4 lo, arithmetic after."""
    zero = lo * 0.0
    down = hi * 2.0**-32
    from_zero = ops.where(down > zero, down, hi * 0.5)
    unit = _unit(lo, hi)
    scaled_lo, scaled_hi = lo * unit, hi * unit
    geometric = ops.sqrt(scaled_lo) * ops.sqrt(scaled_hi)
    arithmetic = scaled_lo + (scaled_hi - scaled_lo) * 0.5
    inside = ops.where(scaled_hi > 4.0 * scaled_lo, geometric, arithmetic) / unit
    return ops.where(lo < zero, zero, ops.where(ops.equal(lo, zero), from_zero, inside))


def _below(value):
    """The largest number below a positive normal ``value`` (``value`` times 1 - eps/2 rounds
    there)."""
    unit = _unit(value, value)
    return value * unit * (1.0 - float(np.finfo(dtype_name(value.dtype)).epsneg)) / unit


# Where the secant pass puts its four probes around the interpolated value, in standard
# deviations of the interpolation's error in rank: five intervals of 1.8 sd, 0.7% outside.
_SPREAD = (-2.7, -0.9, 0.9, 2.7)


def _probes(lo, hi, c_lo, c_hi, k, interpolate):
    r"""Four probes in ``(lo, hi)``. Interpolating: where the count function, drawn between the
    ends, crosses :math:`k + \tfrac12 + z\sigma` for :math:`z = \pm 0.9, \pm 2.7`, with
    :math:`\sigma = \sqrt{m t (1-t)} + \tfrac12` values (:math:`m = c_{lo} - c_{hi}` values in
    the bracket, :math:`t` the share of them above the target): the counts of values scattered
    at random in a narrow bracket deviate from the line like a Brownian bridge. The line is
    drawn in log-log coordinates (exact for a power-law tail, and the same as a straight line
    in a narrow bracket) when both ``lo`` and :math:`c_{hi}` are positive, straight otherwise;
    with 16 values or fewer left, the probes cut the bracket evenly. Otherwise (the last
    interpolation missed: an end did not move) the bracket is cut in three
    (``_next_probe``: across orders of magnitude while they are many) and ``hi`` is tried
    against the number below it."""
    dtype = dtype_name(lo.dtype)
    unit = _unit(lo, hi)
    base, top = ops.maximum(lo, lo * 0.0) * unit, hi * unit
    width = top - base
    f_lo, f_hi = ops.cast(c_lo, dtype), ops.cast(c_hi, dtype)
    m = f_lo - f_hi
    target = ops.cast(k, dtype) + 0.5
    share = (f_lo - target) / m
    sd = ops.sqrt(m * share * (1.0 - share)) + 0.5
    logarithmic = ops.logical_and(base > 0.0, f_hi > 0.0)
    safe_base = ops.where(logarithmic, base, top)
    safe_hi = ops.where(logarithmic, f_hi, f_lo)
    log_width = ops.log1p(width / safe_base)
    log_counts = ops.log1p(m / safe_hi)
    few = m <= 4.0 * _PROBES

    def at(count):  # the value where the drawn count function equals `count`
        count = ops.minimum(ops.maximum(count, f_hi), f_lo)
        linear = base + width * ((f_lo - count) / m)
        log_share = ops.log1p((f_lo - count) / ops.maximum(count, safe_hi * 0.0 + 0.5)) / log_counts
        power = base + base * ops.expm1(log_share * log_width)
        return ops.where(logarithmic, power, linear) / unit

    secant = at(target)
    usable = ops.logical_and(interpolate, ops.logical_and(secant > lo, secant < hi))
    middle = _next_probe(lo, hi)
    # Cut in four, the last probe just below hi: it ends the search at once when hi is a
    # value held by many coordinates (ties) and the target is among them.
    quarters = (_next_probe(lo, middle), middle, _next_probe(middle, hi), _below(hi))
    probes = []
    for j, (z, quarter) in enumerate(zip(_SPREAD, quarters)):
        even = (base + width * ((j + 1) / (_PROBES + 1))) / unit
        spread = ops.where(few, even, at(target - z * sd))
        near = ops.minimum(ops.maximum(spread, lo), hi)
        probes.append(ops.where(usable, near, quarter))
    return probes, usable


def _narrow(lo, hi, c_lo, c_hi, probes, counts, k):
    """The bracket tightened by counted probes: the highest probe with more than ``k`` values
    above it becomes ``lo``, the lowest with at most ``k`` becomes ``hi``."""
    for probe, count in zip(probes, counts):
        high = count <= k
        to_hi = ops.logical_and(high, probe < hi)
        to_lo = ops.logical_and(ops.logical_not(high), probe > lo)
        hi, c_hi = ops.where(to_hi, probe, hi), ops.where(to_hi, count, c_hi)
        lo, c_lo = ops.where(to_lo, probe, lo), ops.where(to_lo, count, c_lo)
    return lo, hi, c_lo, c_hi


def _maximum(scalars):
    return functools.reduce(ops.maximum, scalars)


def _minimum(scalars):
    return functools.reduce(ops.minimum, scalars)


def _pieces(values):
    return list(values) if isinstance(values, (list, tuple)) else [values]


def _select_by_sort(pieces, rank):
    everything = ops.concatenate(pieces, axis=0) if len(pieces) > 1 else pieces[0]
    size = static_size(everything)
    answer = ops.take(ops.sort(everything), size - 1 - rank, axis=0)
    dtype = dtype_name(everything.dtype)
    non_finite = ops.sum(ops.cast(ops.logical_not(everything <= np.finfo(dtype).max), "int32"))
    return ops.where(non_finite > 0, answer * 0.0 + float("inf"), answer)


def _sorted_size():
    """Up to how many values ``select_descending`` sorts. On JAX's CPU, 256: its sort of
    4096 floats takes 0.9 ms where a 256-value sort and the counting search over the 4096 take
    0.46 (the fast mode's sample), and JAX runs the search's loop compiled even eagerly;
    elsewhere ``SORTED_SIZE`` (TensorFlow runs the loop op by op eagerly and in TFF's graphs)."""
    return 256 if jax_on_cpu() else SORTED_SIZE


def select_descending(values, rank):
    r"""``sorted(values, descending)[rank]`` for a 1-D tensor of non-negative values (or a list
    of them, taken as their concatenation), exactly: up to ``_sorted_size()`` values are
    sorted; beyond, ``search_descending`` counts, started from order statistics of an evenly
    strided sample of that many values. A NaN or an infinity among the values gives an
    infinite result (clipping at it changes nothing), the same eagerly and under XLA."""
    pieces = _pieces(values)
    size = sum(static_size(v) for v in pieces)
    sorted_size = _sorted_size()
    if size <= sorted_size:
        return _select_by_sort(pieces, rank)
    everything = ops.concatenate(pieces, axis=0) if len(pieces) > 1 else pieces[0]
    stride = size // sorted_size
    sample = ops.take(everything, ops.arange(0, stride * sorted_size, stride), axis=0)
    return search_descending(pieces, rank, *sample_order_statistics(sample, size, rank))


def sample_order_statistics(sample, size, rank):
    r"""Order statistics of a ``sample`` of values drawn from ``size`` values, about the sample
    rank matching ``rank``, in sample standard deviations of that rank (binomial):

    - four at :math:`\pm 0.9` and :math:`\pm 2.7`, so that the first pass leaves the target in
      a bracket of about 1.8 standard deviations of the population's rank
      (:math:`\sqrt{p(1-p)/S}\,N`);
    - four above (at -5 and -15, the sample's maximum and 8 times it) and four below (+5,
      +15, the minimum and 0), counted only if the target lies beyond the first four.

    Returns ``(near, (above, below))``, the arguments of ``search_descending``."""
    sampled = static_size(sample)
    share = min(max(int(rank) / size, 0.0), 1.0)
    centre = share * sampled
    sd = math.sqrt(sampled * share * (1.0 - share)) + 1.0
    ascending = ops.sort(sample)

    def at(z):  # the sample's order statistic z standard deviations below the target's rank
        return ascending[sampled - 1 - min(max(int(round(centre + z * sd)), 0), sampled - 1)]

    top, bottom = ascending[sampled - 1], ascending[0]
    above = [at(-5.0), at(-15.0), top, top * 8.0]
    below = [at(5.0), at(15.0), bottom, bottom * 0.0]
    return [at(z) for z in _SPREAD], (above, below)


def search_descending(values, rank, guesses=(), fallback=None):
    r"""``sorted(|values|, descending)[rank]`` by counting, for any number of values (a 1-D
    tensor or a list of them, counted in place: their concatenation is never built).

    A bracket ``lo < hi`` keeps :math:`c_{lo} = \#\{v > lo\} > k \ge c_{hi} = \#\{v > hi\}`
    (:math:`k` = ``rank``). Each pass counts the values above four probes at once
    (``_counts_above``) and moves the ends to the tightest of them. The first pass counts the
    ``guesses`` (e.g. order statistics of a sample around the target); the next put the probes
    around the secant estimate (``_probes``), or cut the bracket in four when the last secant
    pass missed (the target outside its probes); while the target is beyond all the guesses,
    the ``fallback`` probes (four above, four below) come first. It starts from ``(-1, largest
    finite number)`` and stops when one value lies in ``(lo, hi]`` (:math:`c_{lo} - c_{hi} = 1`,
    so :math:`c_{hi} = k`: that value is the answer, read off by one masked sum) or when no
    number lies between ``lo`` and ``hi`` (the answer is ``hi``). A NaN or an infinity among
    the values gives an infinite result, found by the same masked sum.
    """
    pieces = _pieces(values)
    dtype = dtype_name(pieces[0].dtype)
    size = sum(static_size(v) for v in pieces)
    count_dtype = "int32" if size < 2**31 else "int64"
    k = ops.cast(rank, count_dtype)
    largest = ops.cast(np.finfo(dtype).max, dtype)
    hi, lo = largest, largest * 0.0 - 1.0
    c_lo, c_hi = ops.cast(size, count_dtype), ops.cast(0, count_dtype)
    # Up to four guesses, counted in the loop's first pass (where the counts run fastest).
    guesses = [ops.cast(g, dtype) for g in guesses][:_PROBES]
    guesses += guesses[-1:] * (_PROBES - len(guesses))

    def searching(lo, hi, c_lo, c_hi, interpolate):
        probe = _next_probe(lo, hi)
        room = ops.logical_and(probe > lo, probe < hi)
        return ops.logical_and(room, ops.not_equal(c_lo - c_hi, 1))

    def step(lo, hi, c_lo, c_hi, interpolate):
        probes, usable = _probes(lo, hi, c_lo, c_hi, k, interpolate)
        open_above, open_below = hi >= largest, lo < 0.0
        if fallback is not None:  # the target beyond the guesses: farther ones first
            above, below = ([ops.cast(g, dtype) for g in side] for side in fallback)
            use_above = ops.logical_and(open_above, _maximum(above) > lo)
            use_below = ops.logical_and(open_below, _minimum(below) < hi)
            probes = [ops.where(use_above, a, ops.where(use_below, b, p))
                      for a, b, p in zip(above, below, probes)]
            usable = ops.logical_or(usable, ops.logical_or(use_above, use_below))
        if guesses:  # the first pass
            first = ops.logical_and(open_above, open_below)
            probes = [ops.where(first, g, p) for g, p in zip(guesses, probes)]
            usable = ops.logical_or(usable, first)
        # |v| times a 1 that depends on the loop: XLA would hoist |v|, an invariant, out of the
        # loop and write it to memory (a copy of the gradient, which cost more than the
        # counting passes at 10M); so it is fused into each pass instead.
        one = ops.where(ops.equal(c_lo, c_lo), lo * 0.0 + 1.0, lo)
        counts = _counts_above([ops.abs(v * one) for v in pieces], probes, count_dtype)
        new = _narrow(lo, hi, c_lo, c_hi, probes, counts, k)
        # A secant pass that kept an old end missed the target: cut in four next time.
        hit = ops.logical_and(ops.not_equal(new[0], lo), ops.not_equal(new[1], hi))
        return (*new, ops.logical_or(ops.logical_not(usable), hit))

    lo, hi, c_lo, c_hi, _ = ops.while_loop(
        searching, step, (lo, hi, c_lo, c_hi, c_lo > 0), maximum_iterations=256
    )
    # One value in (lo, hi] (then c_hi = k: it is the answer), or none strictly between lo and
    # hi (every value in (lo, hi] equals hi).
    single = ops.equal(c_lo - c_hi, 1)
    read = _only_value(pieces, lo, hi, single)
    answer = ops.where(single, read, hi)
    finite = read <= np.finfo(dtype).max
    return ops.where(finite, answer, hi * 0.0 + float("inf"))  # non-finite in: no clipping


def exact_threshold(gradients, fraction, threshold_scale=1.0, step=0, sample_size=None):
    r""":math:`\tau = c\,|g|_{(\lfloor Np \rfloor)}` over every coordinate of ``gradients``.

    Args:
      gradients: list of dense tensors (all trainable variables' gradients).
      fraction: :math:`p \in (0, 1]`, the fraction of coordinates to clip.
      threshold_scale: :math:`c > 0`.
      step, sample_size: the lattice sample (see ``sampled_threshold``; ``None``:
        ``SORTED_SIZE`` values) whose order statistics start the search; the result does not
        depend on them.

    Returns:
      A scalar tensor, float64 if any gradient is float64, else float32.
    """
    dtype = threshold_dtype(gradients)
    if fraction >= 1.0:  # as the authors: everything is clipped to zero
        return ops.cast(0.0, dtype)
    total = sum(static_size(g) for g in gradients)
    # Counted in place by magnitude (see `search_descending`), not concatenated.
    flat = [ops.reshape(ops.cast(g, dtype), (-1,)) for g in gradients]
    rank = threshold_rank(total, fraction)
    if total <= SORTED_SIZE:
        tau = select_descending([ops.abs(g) for g in flat], rank)
    else:
        sample, _ = _lattice_sample(gradients, step, sample_size or SORTED_SIZE, dtype)
        tau = search_descending(flat, rank, *sample_order_statistics(sample, total, rank))
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

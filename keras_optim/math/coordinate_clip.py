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

Two ways to find :math:`|g|_{(k)}`:

- ``exact_threshold``: a selection (``top_k``) over the concatenation of all :math:`N`
  magnitudes, from whichever end of the order is nearer. Cost grows like a sort of :math:`N`
  values; on CPU under XLA it is far slower than the optimizer update itself at 10M.
- ``sampled_threshold`` (the "fast" mode): the same order statistic of a sample of
  ``sample_size`` magnitudes, :math:`\hat\tau = c\,|s|_{(\lfloor S p \rfloor)}`. The sample is
  stratified (each variable contributes in proportion to its size) and, inside a variable, a
  lattice :math:`\{(o_t + q j) \bmod n\}` with a stride :math:`q \approx n / S_v` coprime to
  :math:`n` (so every row and column is visited evenly) and an offset :math:`o_t` that moves
  with the step by the golden ratio (different coordinates every step, no random-number
  state: every replica of a distributed step picks the same sample). The number of
  coordinates that :math:`\hat\tau` actually clips, :math:`\hat k`, has for a random sample a
  relative error of about :math:`\sqrt{(1-p)/(pS)}` (1.6% at :math:`p=0.5`, 4.7% at
  :math:`p=0.1` with :math:`S=4096`); ``docs/coordinate_clipping.md`` reports what it is on real
  gradients. When :math:`N \le S` the sample is every coordinate and the fast mode is exact.
"""
import math

import numpy as np

from keras_optim.backend import dtype_name, ops

MODES = ("exact", "fast")
FAST_SAMPLE_SIZE = 4096
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


def threshold_rank(total_size, fraction):
    """:math:`k = \\lfloor N p \\rfloor`, computed as the authors' ``int(N * fraction)``."""
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


def _count_above(values, threshold, count_dtype):
    return ops.sum(ops.cast(values > threshold, count_dtype))


def _next_probe(lo, hi):
    """A value strictly inside (lo, hi) unless none exists (then lo or hi): 0 first, then
    2^-32 of the top while lo is 0, geometric halving while hi > 4 lo, arithmetic after."""
    zero = lo * 0.0
    down = hi * 2.0**-32
    from_zero = ops.where(down > zero, down, hi * 0.5)
    geometric = ops.sqrt(lo) * ops.sqrt(hi)
    arithmetic = lo + (hi - lo) * 0.5
    inside = ops.where(hi > 4.0 * lo, geometric, arithmetic)
    return ops.where(lo < zero, zero, ops.where(lo == zero, from_zero, inside))


def select_descending(values, rank):
    """``sorted(values, descending)[rank]`` for a 1-D tensor of non-negative values, exactly,
    without sorting: bisection on the value keeping
    :math:`\#\{v > lo\} > \text{rank} \ge \#\{v > hi\}` until no representable number lies
    between ``lo`` and ``hi``; then ``hi`` is a value of the tensor and the answer. Each step is
    one fused compare-and-count pass over the values (about 35 in float32, 65 in float64),
    which under XLA on CPU costs a small fraction of a sort.
    """
    size = static_size(values)
    count_dtype = "int32" if size < 2**31 else "int64"
    hi = ops.max(values)
    lo = hi * 0.0 - 1.0

    def not_done(lo, hi):
        probe = _next_probe(lo, hi)
        return ops.logical_and(probe > lo, probe < hi)

    def bisect(lo, hi):
        probe = _next_probe(lo, hi)
        probe_is_high = _count_above(values, probe, count_dtype) <= rank
        return ops.where(probe_is_high, lo, probe), ops.where(probe_is_high, probe, hi)

    _, hi = ops.while_loop(not_done, bisect, (lo, hi), maximum_iterations=256)
    return hi


def exact_threshold(gradients, fraction, threshold_scale=1.0):
    """:math:`\\tau = c\\,|g|_{(\\lfloor Np \\rfloor)}` over every coordinate of ``gradients``.

    Args:
      gradients: list of dense tensors (all trainable variables' gradients).
      fraction: :math:`p \\in (0, 1]`, the fraction of coordinates to clip.
      threshold_scale: :math:`c > 0`.

    Returns:
      A scalar tensor, float64 if any gradient is float64, else float32.
    """
    dtype = threshold_dtype(gradients)
    if fraction >= 1.0:  # as the authors: everything is clipped to zero
        return ops.cast(0.0, dtype)
    sizes = [static_size(g) for g in gradients]
    total = sum(sizes)
    magnitudes = ops.concatenate([_magnitudes(g, dtype) for g in gradients], axis=0)
    tau = select_descending(magnitudes, threshold_rank(total, fraction))
    return tau * ops.cast(threshold_scale, dtype)


def _coprime_stride(size, count):
    """The smallest stride >= size / count that is coprime to ``size`` (so the lattice visits
    ``count`` distinct coordinates and, as ``size`` is the product of the dimensions, every
    row and column of a matrix evenly)."""
    stride = max(1, size // count)
    while math.gcd(stride, size) != 1:
        stride += 1
    return stride


def sample_plan(sizes, sample_size=FAST_SAMPLE_SIZE):
    """Per variable ``(count, stride)``: counts proportional to the sizes (largest remainders),
    adding up to ``min(sample_size, N)``; ``stride`` 0 means "take every coordinate"."""
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
        plan.append((n, 0) if c >= n else (c, _coprime_stride(n, c) if c else 0))
    return plan


def _lattice_offset(step, size):
    """:math:`o_t = \\lfloor t\\,\\phi\\,n \\rfloor \\bmod n` in int64 arithmetic: successive
    steps' offsets spread evenly (golden-ratio sequence) over the variable."""
    multiplier = max(1, int(round(_GOLDEN * size)))
    while math.gcd(multiplier, size) != 1:
        multiplier += 1
    t = ops.mod(ops.cast(step, "int64"), size)
    return ops.mod(t * multiplier, size)


def sampled_threshold(gradients, fraction, threshold_scale=1.0, step=0,
                      sample_size=FAST_SAMPLE_SIZE):
    """The fast mode: :math:`\\hat\\tau = c\\,|s|_{(\\lfloor Sp \\rfloor)}` over a stratified
    lattice sample :math:`s` of ``sample_size`` magnitudes (see the module docstring).

    ``step`` (an integer tensor, e.g. the optimizer's iteration count) moves the lattice; every
    replica that sees the same step and gradients gets the same threshold.
    """
    dtype = threshold_dtype(gradients)
    if fraction >= 1.0:
        return ops.cast(0.0, dtype)
    sizes = [static_size(g) for g in gradients]
    pieces = []
    for gradient, size, (count, stride) in zip(gradients, sizes, sample_plan(sizes, sample_size)):
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
    sampled = sum(c for c, _ in sample_plan(sizes, sample_size))
    tau = select_descending(sample, threshold_rank(sampled, fraction))
    return tau * ops.cast(threshold_scale, dtype)


def global_threshold(gradients, fraction, threshold_scale=1.0, mode="exact", step=0,
                     sample_size=FAST_SAMPLE_SIZE):
    """The step's threshold by ``mode``: ``"exact"`` or ``"fast"`` (sampled)."""
    if mode == "exact":
        return exact_threshold(gradients, fraction, threshold_scale)
    if mode == "fast":
        return sampled_threshold(gradients, fraction, threshold_scale, step, sample_size)
    raise ValueError(f"`mode` must be one of {MODES}, got {mode!r}.")


def clip_by_threshold(gradient, threshold):
    """:math:`\\operatorname{sign}(g_i)\\min(|g_i|, \\tau)`.

    Written as a selection so that coordinates at or under the threshold pass unchanged, a NaN
    coordinate stays NaN (only there) and an infinite one is cut to :math:`\\pm\\tau`; the
    authors' ``g*(|g|<t) + sign(g)*(|g|>=t)*t`` gives the same for every finite gradient.
    """
    tau = ops.cast(threshold, gradient.dtype)
    return ops.where(ops.abs(gradient) > tau, ops.sign(gradient) * tau, gradient)


def clip_coordinates(gradients, fraction, threshold_scale=1.0, mode="exact", step=0,
                     sample_size=FAST_SAMPLE_SIZE):
    """Clips a list of gradients with one global threshold; returns ``(clipped, threshold)``.

    ``fraction == 0`` returns the gradients unchanged (and a threshold of ``None``).
    """
    if fraction == 0:
        return list(gradients), None
    tau = global_threshold(gradients, fraction, threshold_scale, mode, step, sample_size)
    return [clip_by_threshold(g, tau) for g in gradients], tau

r"""Coordinate-wise rules: trimmed mean (CWTM; MoCWTM with momentum, BRIDGE without) and median.

Trimmed mean (Yin, Chen, Kannan, Bartlett, ICML 2018; in peer-to-peer form BRIDGE, Yang & Bajwa
2019): per coordinate :math:`c`, sort the :math:`k` received values
:math:`x_{(1)}[c] \le \dots \le x_{(k)}[c]`, drop the :math:`f` smallest and :math:`f` largest,
average the rest:

.. math::

    \mathrm{CWTM}_f(x_1, \dots, x_k)[c] = \frac{1}{k - 2f} \sum_{i=f+1}^{k-f} x_{(i)}[c].

Coordinate-wise median: the middle value per coordinate, the mean of the two middle values when
:math:`k` is even (``torch.quantile(q=0.5)`` in the authors' ``aggregators/median.py``,
``numpy.median`` in byzfl).
"""
import tensorflow as tf


def trimmed_mean(vectors, f):
    r"""Coordinate-wise mean of ``vectors`` ``[..., k, d]`` without the ``f`` lowest and ``f`` highest.

    Requires :math:`2f < k`. Returns a ``[..., d]`` tensor.
    """
    vectors = tf.convert_to_tensor(vectors)
    ordered = tf.sort(vectors, axis=-2)
    count = tf.shape(vectors)[-2]
    return tf.reduce_mean(ordered[..., f : count - f, :], axis=-2)


def coordinate_median(vectors):
    """Coordinate-wise median of ``vectors`` ``[..., k, d]`` (mean of the two middle values for even k)."""
    vectors = tf.convert_to_tensor(vectors)
    ordered = tf.sort(vectors, axis=-2)
    count = tf.shape(vectors)[-2]
    low = tf.gather(ordered, (count - 1) // 2, axis=-2)
    high = tf.gather(ordered, count // 2, axis=-2)
    return low + 0.5 * (high - low)  # torch.quantile's linear interpolation at q = 0.5

r"""Geometric median by the smoothed Weiszfeld algorithm (RFA; MoGM with momentum).

Pillutla, Kakade, Harchaoui, "Robust Aggregation for Federated Learning" (IEEE TSP 2022). The
geometric median :math:`\arg\min_z \sum_i \lVert z - x_i \rVert_2` is approximated by
:math:`T` smoothed Weiszfeld steps from :math:`z_0 = 0`, as in the authors' ``aggregators/rfa.py``
and ``byzfl.GeometricMedian``:

.. math::

    \beta_i^{(t)} = \frac{1}{\max(\lVert z_t - x_i \rVert_2, \nu)}, \qquad
    z_{t+1} = \frac{\sum_i \beta_i^{(t)} x_i}{\sum_i \beta_i^{(t)}}.

(The authors weigh every vector by :math:`\alpha_i = 1/k`, which cancels.) Vectors with a
non-finite distance get weight 0, as the authors' code does for NaN.
"""
import tensorflow as tf


def geometric_median(vectors, smoothing=0.1, iterations=3):
    r"""Smoothed Weiszfeld approximation of the geometric median of ``vectors`` ``[..., k, d]``.

    Args:
      vectors: float tensor ``[..., k, d]``.
      smoothing: :math:`\nu > 0`, the floor on the distances.
      iterations: :math:`T`, number of Weiszfeld steps from :math:`z_0 = 0`.

    Returns:
      Float tensor ``[..., d]``.
    """
    vectors = tf.convert_to_tensor(vectors)
    smoothing = tf.cast(smoothing, vectors.dtype)
    estimate = tf.zeros_like(vectors[..., 0, :])
    for _ in range(iterations):
        distances = tf.norm(vectors - estimate[..., tf.newaxis, :], axis=-1)
        finite = tf.math.is_finite(distances)
        weights = tf.where(finite, 1.0 / tf.maximum(distances, smoothing), tf.zeros_like(distances))
        usable = tf.where(finite[..., tf.newaxis], vectors, tf.zeros_like(vectors))
        total = tf.reduce_sum(weights[..., tf.newaxis] * usable, axis=-2)
        estimate = total / tf.reduce_sum(weights, axis=-1, keepdims=True)
    return estimate

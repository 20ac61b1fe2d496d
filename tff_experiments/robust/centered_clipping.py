r"""Centered clipping (CC; self-centered clipping, SCC, in the peer-to-peer setting).

Karimireddy, He, Jaggi, "Learning from History for Byzantine Robust Optimization", ICML 2021;
peer-to-peer SCC: He, Karimireddy, Jaggi, "Byzantine-robust decentralized learning via
ClippedGossip" (2022). From a center :math:`v_0` (in SCC the machine's own vector), :math:`L`
times:

.. math::

    v_{l+1} = v_l + \frac{1}{k} \sum_{i=1}^{k} (x_i - v_l)
        \min\!\left(1, \frac{\tau}{\lVert x_i - v_l \rVert_2}\right).

The authors' MoNNA experiments run SCC with :math:`\tau = 2`, :math:`L = 3` and momentum 0.9
(``aggregators/centeredclip.py``, ``reproduce.py``); byzfl's defaults are :math:`\tau = 100`,
:math:`L = 1`, :math:`v_0 = 0`.
"""
import tensorflow as tf


def centered_clipping(vectors, center, clip_threshold=2.0, iterations=3):
    r"""``iterations`` centered-clipping steps on ``vectors`` ``[..., k, d]`` from ``center`` ``[..., d]``.

    Args:
      vectors: float tensor ``[..., k, d]``.
      center: :math:`v_0`, float tensor ``[..., d]``.
      clip_threshold: :math:`\tau \ge 0`.
      iterations: :math:`L \ge 0`.

    Returns:
      Float tensor ``[..., d]``.
    """
    vectors = tf.convert_to_tensor(vectors)
    threshold = tf.cast(clip_threshold, vectors.dtype)
    estimate = tf.convert_to_tensor(center, vectors.dtype)
    for _ in range(iterations):
        differences = vectors - estimate[..., tf.newaxis, :]
        norms = tf.norm(differences, axis=-1, keepdims=True)
        # min(1, tau / norm) without dividing by a zero norm.
        scale = tf.where(norms > threshold, threshold / tf.maximum(norms, 1e-30), tf.ones_like(norms))
        estimate = estimate + tf.reduce_mean(differences * scale, axis=-2)
    return estimate

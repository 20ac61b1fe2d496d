r"""Krum (Blanchard, El Mhamdi, Guerraoui, Stainer, NeurIPS 2017).

Each of the :math:`k` vectors gets the score

.. math::

    s(i) = \sum_{j \in \mathcal{N}_i} \lVert x_i - x_j \rVert_2^2,

with :math:`\mathcal{N}_i` its :math:`k - f - 1` nearest other vectors; Krum returns the vector of
lowest score (the lowest index among equal scores). ``byzfl.Krum`` scores with squared distances,
as the paper does; the MoNNA authors' ``aggregators/krum.py`` sums plain distances
(``squared=False`` here).
"""
import tensorflow as tf

from tff_experiments.robust.nna import pairwise_squared_distances


def krum(vectors, f, squared=True):
    r"""The row of ``vectors`` ``[..., k, d]`` with the lowest Krum score; needs :math:`k - f - 1 \ge 1`.

    Args:
      vectors: float tensor ``[..., k, d]``.
      f: number of Byzantine vectors tolerated.
      squared: score with squared distances (the paper, byzfl) or plain ones (the MoNNA code).

    Returns:
      Float tensor ``[..., d]``, one of the rows (per leading index).
    """
    vectors = tf.convert_to_tensor(vectors)
    if vectors.shape.rank > 2:  # one problem at a time: the distances take k x k x d memory each
        flat = tf.reshape(vectors, tf.concat([[-1], tf.shape(vectors)[-2:]], axis=0))
        picked = tf.map_fn(
            lambda one: krum(one, f, squared), flat, fn_output_signature=tf.TensorSpec(vectors.shape[-1:], vectors.dtype)
        )
        return tf.reshape(picked, tf.concat([tf.shape(vectors)[:-2], tf.shape(vectors)[-1:]], axis=0))
    distances = pairwise_squared_distances(vectors)
    if not squared:
        distances = tf.sqrt(distances)
    count = tf.shape(vectors)[0]
    # Row-sorted distances start with the 0 to itself; the next k - f - 1 are the neighbours.
    ordered = tf.sort(distances, axis=1)
    scores = tf.reduce_sum(ordered[:, 1 : count - f], axis=1)
    return tf.gather(vectors, tf.argmin(scores, output_type=tf.int32))

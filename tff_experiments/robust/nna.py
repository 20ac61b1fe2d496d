r"""Nearest-neighbor averaging (NNA), the mixing rule of MoNNA, and nearest-neighbor mixing (NNM).

Farhadkhani, Guerraoui, Gupta, Hoang, Pinot, Stephan, "Robust Collaborative Learning with Linear
Gradient Overhead", ICML 2023 (arXiv:2209.10931), Algorithm 1. A machine that holds
:math:`x_0` and receives :math:`x_0, x_1, \dots, x_{k-1}` (its own vector included) keeps the
:math:`k - f` received vectors nearest to its own and averages them:

.. math::

    \mathrm{NNA}_f(x_0; x_0, \dots, x_{k-1}) = \frac{1}{k - f} \sum_{i \in N_{k-f}(x_0)} x_i,

where :math:`N_m(c)` is the set of the :math:`m` indices with the smallest
:math:`\lVert x_i - c \rVert_2` (ties go to the lower index, as the stable sort of the authors'
``aggregators/cva.py`` does). With the authors' reception (``k = n - f`` vectors received) this
keeps :math:`n - 2f`; with byzfl's (all ``k = n``) it keeps :math:`n - f`.

Nearest-neighbor *mixing* (Allouah et al., AISTATS 2023; ``byzfl.NNM``) replaces every vector by
the average of its :math:`k - f` nearest neighbours, :math:`y_j = \mathrm{NNA}_f(x_j; x)`, before
a server-side rule aggregates the :math:`y_j`.
"""
import tensorflow as tf


def nearest_neighbor_average(vectors, center, num_kept):
    r"""Average of the ``num_kept`` rows of ``vectors`` nearest (L2) to ``center``.

    Args:
      vectors: float tensor ``[..., k, d]`` (leading dimensions are independent problems, e.g.
        one per machine).
      center: float tensor ``[..., d]`` (for NNA, the machine's own vector, one of the rows).
      num_kept: number of rows averaged, :math:`1 \le` ``num_kept`` :math:`\le k`.

    Returns:
      Float tensor ``[..., d]``.
    """
    vectors = tf.convert_to_tensor(vectors)
    center = tf.convert_to_tensor(center, vectors.dtype)
    distances = tf.norm(vectors - center[..., tf.newaxis, :], axis=-1)
    # top_k of the negated distances: the nearest first, lower index first among equals.
    _, nearest = tf.math.top_k(-distances, k=num_kept, sorted=True)
    kept = tf.gather(vectors, nearest, batch_dims=vectors.shape.rank - 2)
    return tf.reduce_mean(kept, axis=-2)


def pairwise_squared_distances(vectors):
    r""":math:`D_{ij} = \lVert x_i - x_j \rVert_2^2` for the rows of ``vectors`` ``[k, d]``.

    Computed from the differences, one row at a time (``k x d`` memory): identical vectors,
    which Byzantine machines send, are then exactly at distance 0, which the expansion
    :math:`\lVert x_i\rVert^2 + \lVert x_j\rVert^2 - 2 x_i^\top x_j` does not guarantee.
    """
    vectors = tf.convert_to_tensor(vectors)
    return tf.map_fn(
        lambda row: tf.reduce_sum(tf.square(vectors - row[tf.newaxis, :]), axis=1),
        vectors,
        fn_output_signature=tf.TensorSpec([vectors.shape[0]], vectors.dtype),
    )


def nearest_neighbor_mixing(vectors, f):
    r"""NNM: row :math:`j` becomes the average of the :math:`k - f` rows nearest to row :math:`j`.

    Args:
      vectors: float tensor ``[k, d]``.
      f: number of Byzantine vectors tolerated, :math:`0 \le f < k`.

    Returns:
      Float tensor ``[k, d]``.
    """
    vectors = tf.convert_to_tensor(vectors)
    num_kept = tf.shape(vectors)[0] - f
    _, nearest = tf.math.top_k(-pairwise_squared_distances(vectors), k=num_kept, sorted=True)
    return tf.reduce_mean(tf.gather(vectors, nearest), axis=1)

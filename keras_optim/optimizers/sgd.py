"""Keras optimizer class for SGD with optional coordinate clipping; the math is
``keras_optim.math.sgd`` and ``keras_optim.math.coordinate_clip``."""
from keras_optim import validation
from keras_optim.backend import KERAS3, SlotOptimizer, register_serializable
from keras_optim.math import sgd as sgd_math
from keras_optim.optimizers.coordinate_clipping import CoordinateClipMixin


# Keras' own error, in each Keras' words.
_MOMENTUM_ERROR = (
    "`momentum` must be a float between [0, 1]." if KERAS3 else "`momentum` must be between [0, 1]."
)


def _check_momentum(value):
    try:
        return validation.check_real("momentum", value, low=0.0, high=1.0)
    except ValueError:
        raise ValueError(f"{_MOMENTUM_ERROR} Received: momentum={value!r}") from None


@register_serializable(package="keras_optim")
class SGD(CoordinateClipMixin, SlotOptimizer):
    """Keras' SGD (momentum, Nesterov), with Pan & Li's coordinate-wise clipping as an option.

    With ``coordinate_clip=0`` (the default) this is ``keras.optimizers.SGD``, step for step:
    :math:`v_t = \\mu v_{t-1} - \\eta_t g_t`, ``variable += v_t`` (Nesterov:
    ``variable += mu * v_t - eta_t * g_t``). With ``coordinate_clip=p > 0``, each step first
    cuts every coordinate of the gradient to at most :math:`\\tau`, the magnitude at index
    :math:`\\lfloor Np \\rfloor` of all :math:`N` gradient coordinates of all trainable variables
    in descending order (times ``clip_threshold_scale``), and the clipped gradient is what feeds
    the momentum (Pan & Li, "Toward Understanding Why Adam Converges Faster Than SGD for
    Transformers", arXiv 2306.00204, ``SGDClip``). See ``docs/coordinate_clipping.md``.

    Args:
      learning_rate: float >= 0, schedule or callable. Defaults to 0.01.
      momentum: in [0, 1]. Defaults to 0. Without momentum, a sparse gradient
        (``tf.IndexedSlices`` from ``Embedding``) writes only its rows, as in Keras' SGD.
      nesterov: Nesterov momentum. Defaults to False.
      coordinate_clip: in [0, 1], the fraction of coordinates clipped each step; 0 disables.
      clip_threshold_scale: > 0, multiplies the threshold. Defaults to 1.
      clip_mode: ``"exact"`` (selection over all coordinates) or ``"fast"`` (a fixed-size
        stratified sample; error in rank in ``docs/coordinate_clipping.md``).
      **kwargs: the Keras base arguments (``weight_decay``, ``clipnorm``, ``clipvalue``,
        ``global_clipnorm``, ``use_ema``, ...). Keras' clipping runs before coordinate clipping.
      name: defaults to ``"sgd"`` (numbered ``sgd_1``, ... on Keras 3), ``"SGD"`` on tf.keras 2.14.
    """

    # Keras' own SGD: "sgd", "sgd_1", ... on Keras 3; "SGD" on tf.keras 2.14.
    default_name = "sgd" if KERAS3 else "SGD"

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, coordinate_clip=0.0,
                 clip_threshold_scale=1.0, clip_mode="exact", name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.momentum = _check_momentum(momentum)
        self.nesterov = validation.check_bool("nesterov", nesterov)
        self._init_coordinate_clip(coordinate_clip, clip_threshold_scale, clip_mode)

    def slot_names(self):
        return sgd_math.SLOTS if self.momentum != 0 else ()

    def _updates_sparse_rows(self):
        # As Keras' SGD: without momentum a sparse gradient moves only its rows; momentum
        # decays every row (Keras densifies there too), and the clipping threshold needs them all.
        return self.momentum == 0 and not self.coordinate_clip

    def _delta(self, gradient, slots, step, learning_rate):
        return sgd_math.sgd_delta(
            self._clipped(gradient), slots, learning_rate,
            momentum=self.momentum, nesterov=self.nesterov,
        )

    def get_config(self):
        config = super().get_config()
        config.update({"momentum": self.momentum, "nesterov": self.nesterov})
        return config

"""Keras optimizer class for SGD with optional coordinate clipping; the math is
``keras_optim.math.sgd`` and ``keras_optim.math.coordinate_clip``."""
from keras_optim import validation
from keras_optim.backend import SlotOptimizer, register_serializable
from keras_optim.math import sgd as sgd_math
from keras_optim.optimizers.coordinate_clipping import CoordinateClipMixin


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
      momentum: in [0, 1]. Defaults to 0.
      nesterov: Nesterov momentum. Defaults to False.
      coordinate_clip: in [0, 1], the fraction of coordinates clipped each step; 0 disables.
      clip_threshold_scale: > 0, multiplies the threshold. Defaults to 1.
      clip_mode: ``"exact"`` (selection over all coordinates) or ``"fast"`` (a fixed-size
        stratified sample; error in rank in ``docs/coordinate_clipping.md``).
      **kwargs: the Keras base arguments (``weight_decay``, ``clipnorm``, ``clipvalue``,
        ``global_clipnorm``, ``use_ema``, ...). Keras' clipping runs before coordinate clipping.
    """

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, coordinate_clip=0.0,
                 clip_threshold_scale=1.0, clip_mode="exact", name="SGD", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.momentum = validation.check_real("momentum", momentum, low=0.0, high=1.0)
        self.nesterov = validation.check_bool("nesterov", nesterov)
        self._init_coordinate_clip(coordinate_clip, clip_threshold_scale, clip_mode)

    def slot_names(self):
        return sgd_math.SLOTS if self.momentum != 0 else ()

    def _delta(self, gradient, slots, step, learning_rate):
        return sgd_math.sgd_delta(
            self._clipped(gradient), slots, learning_rate,
            momentum=self.momentum, nesterov=self.nesterov,
        )

    def get_config(self):
        config = super().get_config()
        config.update({"momentum": self.momentum, "nesterov": self.nesterov})
        return config

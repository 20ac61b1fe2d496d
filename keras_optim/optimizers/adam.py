"""Keras optimizer class for Adam with optional coordinate clipping; the math is
``keras_optim.math.adam`` and ``keras_optim.math.coordinate_clip``."""
from keras_optim import validation
from keras_optim.backend import SlotOptimizer, register_serializable
from keras_optim.math import adam as adam_math
from keras_optim.optimizers.coordinate_clipping import CoordinateClipMixin


@register_serializable(package="keras_optim")
class Adam(CoordinateClipMixin, SlotOptimizer):
    """Keras' Adam, with Pan & Li's coordinate-wise clipping as an option.

    With ``coordinate_clip=0`` (the default) this is ``keras.optimizers.Adam`` (same arguments,
    defaults and epsilon placement; the bias corrections are computed as
    :math:`-\\operatorname{expm1}(t \\log\\beta)`, a few ulps more accurate in float32). With
    ``coordinate_clip=p > 0``, each step computes one global threshold :math:`\\tau` (the
    magnitude at index :math:`\\lfloor Np \\rfloor` of all :math:`N` gradient coordinates of all
    trainable variables, descending, times ``clip_threshold_scale``); the first moment is fed
    :math:`\\operatorname{sign}(g)\\min(|g|, \\tau)` and the second moment the raw gradient, as in
    Pan & Li's ``AdamClip`` (arXiv 2306.00204). See ``keras_optim.math.adam`` and
    ``docs/coordinate_clipping.md``.

    Args:
      learning_rate: float >= 0, schedule or callable. Defaults to 0.001.
      beta_1: in [0, 1). Defaults to 0.9.
      beta_2: in [0, 1). Defaults to 0.999.
      epsilon: >= 0 (Keras' "epsilon hat"). Defaults to 1e-7.
      amsgrad: divide by the running maximum of :math:`v_t`. Defaults to False.
      coordinate_clip: in [0, 1], the fraction of coordinates clipped each step; 0 disables.
      clip_threshold_scale: > 0, multiplies the threshold. Defaults to 1.
      clip_mode: ``"exact"`` or ``"fast"`` (see ``SGD``).
      name: defaults to ``"adam"``, numbered on Keras 3 as Keras numbers its own optimizers
        (``adam``, ``adam_1``, ...).
      **kwargs: the Keras base arguments (``weight_decay``, ``clipnorm``, ``clipvalue``,
        ``global_clipnorm``, ``use_ema``, ...). Keras' clipping runs before coordinate clipping.
    """

    default_name = "adam"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, coordinate_clip=0.0, clip_threshold_scale=1.0,
                 clip_mode="exact", name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta_1 = validation.check_beta("beta_1", beta_1)
        self.beta_2 = validation.check_beta("beta_2", beta_2)
        self.epsilon = validation.check_real("epsilon", epsilon, low=0.0)
        self.amsgrad = validation.check_bool("amsgrad", amsgrad)
        self._init_coordinate_clip(coordinate_clip, clip_threshold_scale, clip_mode)

    def slot_names(self):
        return adam_math.AMSGRAD_SLOTS if self.amsgrad else adam_math.SLOTS

    def _step(self, gradient, slots, step):
        return adam_math.adam_step(
            gradient, slots, step, beta_1=self.beta_1, beta_2=self.beta_2,
            epsilon=self.epsilon, amsgrad=self.amsgrad,
            first_moment_gradient=self._clipped(gradient),
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "beta_1": self.beta_1,
                "beta_2": self.beta_2,
                "epsilon": self.epsilon,
                "amsgrad": self.amsgrad,
            }
        )
        return config

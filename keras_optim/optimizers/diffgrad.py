"""Keras optimizer class for diffGrad; the math is ``keras_optim.math.diffgrad``."""
from keras_optim.backend import SlotOptimizer, register_serializable
from keras_optim.math import coordinate_clip as clip_math
from keras_optim.math import diffgrad as diffgrad_math
from keras_optim.optimizers.coordinate_clipping import CoordinateClipMixin


@register_serializable(package="keras_optim")
class DiffGrad(CoordinateClipMixin, SlotOptimizer):
    """diffGrad (Dubey et al., IEEE TNNLS 2019), as the authors' official v2 code.

    Adam whose first moment is damped by the friction coefficient
    :math:`\\xi_t = \\operatorname{sigmoid}(|g_{t-1} - g_t|)`: steps shrink where the gradient
    changes little (near an optimum) and keep Adam's size where it changes fast. See
    ``keras_optim.math.diffgrad`` for the equations.

    Defaults follow the authors' code: ``learning_rate=1e-3``, ``beta_1=0.9``,
    ``beta_2=0.999``, ``epsilon=1e-8``. Keras' ``weight_decay`` is decoupled (AdamW-style,
    ``w <- w - lr * wd * w``); the authors' ``weight_decay`` is an L2 term added to the
    gradient, which you get by adding the penalty to the loss.

    Args:
      learning_rate: float >= 0, schedule or callable. Defaults to 1e-3.
      beta_1: EMA factor of the gradient, in [0, 1). Defaults to 0.9.
      beta_2: EMA factor of the squared gradient, in [0, 1). Defaults to 0.999.
      epsilon: >= 0, added to the denominator. Defaults to 1e-8.
      coordinate_clip: in [0, 1], Pan & Li's coordinate-wise clipping (arXiv 2306.00204): the
        fraction of the largest gradient coordinates, over all trainable variables, cut to the
        global threshold each step; the clipped gradient feeds the first moment only;
        :math:`v_t` and the friction keep the raw gradient
        (``docs/coordinate_clipping.md``). 0 (the default) disables it.
      clip_threshold_scale: > 0, multiplies that threshold. Defaults to 1.
      clip_mode: ``"exact"`` or ``"fast"`` (sampled threshold). Defaults to ``"exact"``.
      name: defaults to ``"diffgrad"``, numbered on Keras 3 as Keras numbers its own
        optimizers (``diffgrad``, ``diffgrad_1``, ...).
      **kwargs: the Keras base arguments (see ``AdaBelief``).
    """

    default_name = "diffgrad"

    def __init__(self, learning_rate=diffgrad_math.LEARNING_RATE,
                 beta_1=diffgrad_math.DEFAULTS["beta_1"], beta_2=diffgrad_math.DEFAULTS["beta_2"],
                 epsilon=diffgrad_math.DEFAULTS["epsilon"],
                 coordinate_clip=clip_math.CLIP_DEFAULTS["coordinate_clip"],
                 clip_threshold_scale=clip_math.CLIP_DEFAULTS["clip_threshold_scale"],
                 clip_mode=clip_math.CLIP_DEFAULTS["clip_mode"], name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        settings = diffgrad_math.check_settings(beta_1, beta_2, epsilon)
        self.beta_1, self.beta_2, self.epsilon = settings["beta_1"], settings["beta_2"], settings["epsilon"]
        self._init_coordinate_clip(coordinate_clip, clip_threshold_scale, clip_mode)

    def slot_names(self):
        return diffgrad_math.SLOTS

    def _step(self, gradient, slots, step):
        return diffgrad_math.diffgrad_step(
            gradient, slots, step, beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon,
            first_moment_gradient=self._clipped(gradient),
        )

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon})
        return config

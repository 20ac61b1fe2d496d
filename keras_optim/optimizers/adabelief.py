"""Keras optimizer class for AdaBelief; the math is ``keras_optim.math.adabelief``."""
from keras_optim.backend import SlotOptimizer, register_serializable
from keras_optim.math import adabelief as adabelief_math
from keras_optim.math import coordinate_clip as clip_math
from keras_optim.optimizers.coordinate_clipping import CoordinateClipMixin


@register_serializable(package="keras_optim")
class AdaBelief(CoordinateClipMixin, SlotOptimizer):
    """AdaBelief (Zhuang et al., NeurIPS 2020), as the authors' ``adabelief-pytorch==0.2.1``.

    The step size adapts to the "belief" in the gradient: the EMA of
    :math:`(g_t - m_t)^2` instead of Adam's :math:`g_t^2`. See
    ``keras_optim.math.adabelief`` for the equations.

    Defaults are those of the authors' latest PyTorch release (0.2.x): ``epsilon=1e-16``,
    ``rectify=True``, ``degenerated_to_sgd=True``. Keras' ``weight_decay`` is decoupled and
    scaled by the learning rate, ``w <- w - lr * wd * w``, applied before the step: the
    authors' ``weight_decouple=True, fixed_decay=False``.

    Args:
      learning_rate: float >= 0, schedule or callable. Defaults to 1e-3.
      beta_1: EMA factor of the gradient, in [0, 1). Defaults to 0.9.
      beta_2: EMA factor of the squared residual, in [0, 1). Defaults to 0.999.
      epsilon: >= 0, added to the state and to the denominator. Defaults to 1e-16.
      amsgrad: divide by the running maximum of :math:`s_t`. Defaults to False.
      rectify: RAdam-style rectification (SGD-with-momentum for the first steps, while the
        variance estimate is unreliable, :math:`\\rho_t < 5`). Defaults to True.
      degenerated_to_sgd: with ``rectify``, take SGD-with-momentum steps while
        :math:`\\rho_t < 5`; if False, take no step then. Defaults to True.
      coordinate_clip: in [0, 1], Pan & Li's coordinate-wise clipping (arXiv 2306.00204): the
        fraction of the largest gradient coordinates, over all trainable variables, cut to the
        global threshold each step; the clipped gradient feeds the first moment only;
        :math:`s_t` keeps the raw residual :math:`g_t - m_t`
        (``docs/coordinate_clipping.md``). 0 (the default) disables it.
      clip_threshold_scale: > 0, multiplies that threshold. Defaults to 1.
      clip_mode: ``"exact"`` or ``"fast"`` (sampled threshold). Defaults to ``"exact"``.
      name: defaults to ``"adabelief"``, numbered on Keras 3 as Keras numbers its own
        optimizers (``adabelief``, ``adabelief_1``, ...).
      **kwargs: the Keras base arguments: ``weight_decay``, ``clipnorm``, ``clipvalue``,
        ``global_clipnorm``, ``use_ema``, ``ema_momentum``, ``ema_overwrite_frequency``,
        ``loss_scale_factor``, ``gradient_accumulation_steps`` (Keras 3), ``jit_compile``
        (tf.keras 2).
    """

    default_name = "adabelief"

    def __init__(
        self,
        learning_rate=adabelief_math.LEARNING_RATE,
        beta_1=adabelief_math.DEFAULTS["beta_1"],
        beta_2=adabelief_math.DEFAULTS["beta_2"],
        epsilon=adabelief_math.DEFAULTS["epsilon"],
        amsgrad=adabelief_math.DEFAULTS["amsgrad"],
        rectify=adabelief_math.DEFAULTS["rectify"],
        degenerated_to_sgd=adabelief_math.DEFAULTS["degenerated_to_sgd"],
        coordinate_clip=clip_math.CLIP_DEFAULTS["coordinate_clip"],
        clip_threshold_scale=clip_math.CLIP_DEFAULTS["clip_threshold_scale"],
        clip_mode=clip_math.CLIP_DEFAULTS["clip_mode"],
        name=None,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        settings = adabelief_math.check_settings(
            beta_1, beta_2, epsilon, amsgrad, rectify, degenerated_to_sgd)
        self.beta_1, self.beta_2, self.epsilon = settings["beta_1"], settings["beta_2"], settings["epsilon"]
        self.amsgrad, self.rectify = settings["amsgrad"], settings["rectify"]
        self.degenerated_to_sgd = settings["degenerated_to_sgd"]
        self._init_coordinate_clip(coordinate_clip, clip_threshold_scale, clip_mode)

    def slot_names(self):
        return adabelief_math.AMSGRAD_SLOTS if self.amsgrad else adabelief_math.SLOTS

    def _step(self, gradient, slots, step):
        return adabelief_math.adabelief_step(
            gradient, slots, step,
            beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon,
            amsgrad=self.amsgrad, rectify=self.rectify, degenerated_to_sgd=self.degenerated_to_sgd,
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
                "rectify": self.rectify,
                "degenerated_to_sgd": self.degenerated_to_sgd,
            }
        )
        return config

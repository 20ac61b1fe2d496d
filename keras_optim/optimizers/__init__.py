"""The Keras optimizer classes: thin adapters of ``keras_optim.math``."""
from keras_optim.optimizers.adabelief import AdaBelief
from keras_optim.optimizers.diffgrad import DiffGrad

__all__ = ["AdaBelief", "DiffGrad"]

"""The Keras optimizer classes: thin adapters of ``keras_optim.math``."""
from keras_optim.optimizers.adabelief import AdaBelief
from keras_optim.optimizers.adam import Adam
from keras_optim.optimizers.coordinate_clipping import CoordinateClipping
from keras_optim.optimizers.diffgrad import DiffGrad
from keras_optim.optimizers.sgd import SGD

__all__ = ["AdaBelief", "Adam", "CoordinateClipping", "DiffGrad", "SGD"]

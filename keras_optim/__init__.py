"""keras-optim: research optimizers for Keras 3 and tf.keras 2.14.

    from keras_optim import AdaBelief, DiffGrad
    model.compile(optimizer=AdaBelief(), loss=...)

The classes subclass ``keras.optimizers.Optimizer`` on Keras 3 and
``tf.keras.optimizers.Optimizer`` on tf.keras 2.14, whichever Keras is installed.
"""
from keras_optim.backend import KERAS3
from keras_optim.optimizers import SGD, AdaBelief, Adam, CoordinateClipping, DiffGrad

__version__ = "0.1.0"
__all__ = ["AdaBelief", "Adam", "CoordinateClipping", "DiffGrad", "KERAS3", "SGD"]

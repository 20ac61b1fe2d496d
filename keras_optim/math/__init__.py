"""The algorithms' math, written once.

Pure functions of tensors through ``keras_optim.backend.ops`` (``keras.ops`` on Keras 3, the
matching TensorFlow functions on tf.keras 2). They take the gradient and the current
statistics and return the update direction and the new statistics; they never touch a
variable. The Keras optimizer classes and the TFF optimizers are adapters around them.
"""
from keras_optim.math.adabelief import adabelief_update
from keras_optim.math.diffgrad import diffgrad_update

__all__ = ["adabelief_update", "diffgrad_update"]

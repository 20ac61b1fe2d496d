"""The algorithms' math, written once.

Each step is a function of the gradient, the statistics (behind the small interface of
``keras_optim.math.slots``) and the step count, through ``keras_optim.backend.ops``
(``keras.ops`` on Keras 3, the matching TensorFlow functions on tf.keras 2); it returns the
update direction. ``*_update`` are the same steps as pure functions of a dict of tensors,
returning ``(direction, new_state)``. The Keras optimizer classes and the TFF optimizers are
adapters around them.
"""
from keras_optim.math.adabelief import adabelief_step, adabelief_update
from keras_optim.math.diffgrad import diffgrad_step, diffgrad_update

__all__ = ["adabelief_step", "adabelief_update", "diffgrad_step", "diffgrad_update"]

"""Export of a trained model: a tf.keras 2.14 ``.keras`` file and a SavedModel for serving.

``export_keras_and_savedmodel(builder, weights, out_dir)`` writes

- ``out_dir/model.keras``: the Keras model (``tf.keras.models.load_model`` reads it);
- ``out_dir/saved_model/``: a SavedModel whose ``serving_default`` signature takes ``x`` (a
  batch of inputs) and returns ``logits`` and ``probabilities`` (softmax of the logits);
  ``tf.saved_model.load(path).signatures["serving_default"](x=...)`` serves it, as does
  TensorFlow Serving.

Both are written to temporary names and renamed, so an interrupted export leaves no half
model behind.
"""
import os
import shutil
from pathlib import Path

import tensorflow as tf

from tff_experiments.models import assign_weights

KERAS_FILE = "model.keras"
SAVED_MODEL_DIR = "saved_model"
SIGNATURE = "serving_default"


def _serving_function(model):
    spec = model.inputs[0]
    input_spec = tf.TensorSpec(shape=spec.shape, dtype=spec.dtype, name="x")

    @tf.function(input_signature=[input_spec])
    def serve(x):
        logits = model(x, training=False)
        return {"logits": logits, "probabilities": tf.nn.softmax(logits, axis=-1)}

    return serve


def export_keras_and_savedmodel(keras_builder, weights, out_dir, seed=0):
    """Builds ``keras_builder(seed=seed)``, sets ``weights`` and writes both formats.

    Args:
      keras_builder: the builder the weights belong to (``tff_experiments.models``).
      weights: a ``ModelWeights``, ``{'trainable', 'non_trainable'}`` dict, or flat list
        (trainable then non-trainable).
      out_dir: the folder to write (created if needed; an older export there is replaced).
      seed: the seed the model is built with (its initial weights are replaced).

    Returns:
      ``{'keras': Path, 'saved_model': Path}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = assign_weights(keras_builder(seed=seed), weights)

    keras_path = out / KERAS_FILE
    temp_keras = out / f".tmp.{KERAS_FILE}"  # Keras wants the .keras suffix
    model.save(temp_keras)
    os.replace(temp_keras, keras_path)

    saved_path = out / SAVED_MODEL_DIR
    temp_saved = out / f".tmp.{SAVED_MODEL_DIR}"
    shutil.rmtree(temp_saved, ignore_errors=True)
    tf.saved_model.save(model, str(temp_saved), signatures={SIGNATURE: _serving_function(model)})
    shutil.rmtree(saved_path, ignore_errors=True)
    os.replace(temp_saved, saved_path)
    return {"keras": keras_path, "saved_model": saved_path}

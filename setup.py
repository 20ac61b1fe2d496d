"""keras-optim: research optimizers for Keras 3 / tf.keras 2.14, and federated-learning
algorithms for TensorFlow Federated."""
from setuptools import find_packages, setup

setup(
    name="keras-optim",
    version="0.1.0",
    description="AdaBelief, diffGrad and coordinate-wise clipping for Keras; "
    "asynchronous and Byzantine-robust federated learning for TFF.",
    long_description=open("README.md", encoding="utf-8").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    packages=find_packages(include=["keras_optim", "keras_optim.*", "tff_experiments", "tff_experiments.*",
                                    "flower_async", "flower_async.*"]),
    # the Flower app's project file, which `flwr run` packs
    package_data={"flower_async": ["app/pyproject.toml"]},
    python_requires=">=3.9",
    # The core needs Keras and NumPy only: Keras 3 on any backend it supports, or tf.keras 2.14
    # (the Keras of TensorFlow 2.14, which TFF 0.87 needs). keras_optim imports TensorFlow only
    # on tf.keras 2 or Keras 3's TensorFlow backend, so a JAX user gets no TensorFlow.
    # The extras name a backend to install with it (docs/compatibility.md).
    install_requires=["keras>=2.14", "numpy"],
    extras_require={
        "tensorflow": ["tensorflow>=2.14"],
        "jax": ["keras>=3", "jax"],
        "torch": ["keras>=3", "torch"],
        "federated": ["tensorflow==2.14.*", "tensorflow-federated==0.87.0", "tqdm"],
        # the asynchronous schemes on Flower's deployment engine (flower_async), Keras 3 clients
        "flower": ["flwr==1.42.0", "keras>=3", "tensorflow>=2.16", "scikit-learn"],
        "test": ["pytest", "scikit-learn", "matplotlib"],
        "examples": ["scikit-learn", "matplotlib", "tqdm"],
    },
    license="Apache-2.0",
)

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
    packages=find_packages(include=["keras_optim", "keras_optim.*", "tff_experiments", "tff_experiments.*"]),
    python_requires=">=3.9",
    # The core needs only TensorFlow with either Keras 3 or tf.keras 2.14; never TFF.
    install_requires=["tensorflow>=2.14", "numpy"],
    extras_require={
        "federated": ["tensorflow-federated==0.87.0", "tqdm"],
        "test": ["pytest", "scikit-learn", "matplotlib"],
        "examples": ["scikit-learn", "matplotlib", "tqdm"],
    },
    license="Apache-2.0",
)

"""Marks used by the Keras suites adapted from Keras' own tests."""


def pytest_configure(config):
    # Keras' mark for tests that need a backend with gradients (every backend here has them).
    config.addinivalue_line("markers", "requires_trainable_backend: a backend that trains")

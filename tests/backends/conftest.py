"""Fixtures of the backend tests: the NumPy ports of the authors' coordinate clipping."""
import importlib.util
import os

import pytest

from tests.conftest import HERE as TESTS


@pytest.fixture(scope="session")
def clip_ports():
    """tests/fixtures/make_coordinate_clip_fixtures.py (NumPy only): the NumPy port of Pan &
    Li's SGDClip / AdamClip and of their threshold."""
    path = os.path.join(TESTS, "fixtures", "make_coordinate_clip_fixtures.py")
    spec = importlib.util.spec_from_file_location("coordinate_clip_ports", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

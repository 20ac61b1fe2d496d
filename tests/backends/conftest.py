"""Fixtures of the backend tests: the NumPy ports of the authors' coordinate clipping."""
import pytest

from tests.conftest import load_fixture_script


@pytest.fixture(scope="session")
def clip_ports():
    """tests/fixtures/make_coordinate_clip_fixtures.py (NumPy only): the NumPy port of Pan &
    Li's SGDClip / AdamClip and of their threshold."""
    return load_fixture_script("make_coordinate_clip_fixtures")

"""Fixtures shared by the API tests."""
import pytest

from tests.support.events import Published


@pytest.fixture
def published(resources):
    """Events the test's writes recorded, from the moment the fixture is made (``clear()`` moves that moment)."""
    return Published(resources.engine)

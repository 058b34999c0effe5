"""A small engine world for the observability tests: chunks of 2 followers, no spread."""

from decimal import Decimal

import pytest

from tests.copytrading.test_propagation import World


@pytest.fixture
def world(settings, instruments, django_capture_on_commit_callbacks):
    settings.PAPER_SPREAD_BPS = Decimal("0")
    settings.FANOUT_CHUNK_SIZE = 2
    return World(instruments, django_capture_on_commit_callbacks)

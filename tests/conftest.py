"""Shared fixtures: the embedded Kafka-compatible broker and hypothesis profiles."""

from __future__ import annotations

import itertools
import os
from typing import Iterator

import pytest
from hypothesis import HealthCheck, settings

from eventio.broker import EmbeddedBroker

settings.register_profile(
    "default", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

_topic_ids = itertools.count()


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    """One embedded broker for the session, killed at the end even on failure."""
    with EmbeddedBroker() as b:
        yield b


@pytest.fixture
def topic_name(request: pytest.FixtureRequest) -> str:
    """A topic name unique to this test (the broker keeps topics all session)."""
    return f"{request.node.name.replace('[', '-').replace(']', '')[:60]}-{next(_topic_ids)}"

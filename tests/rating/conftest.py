"""Fixtures for rating tests: the demo config."""

from __future__ import annotations

import pytest
from rating_builders import DEMO

from settings.config import ServiceConfig, load_config


@pytest.fixture(scope="session")
def demo() -> ServiceConfig:
    return load_config(DEMO)

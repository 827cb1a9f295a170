"""Fixtures for the end-to-end suite: one real `ics serve` on a test copy of the demo configs."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from e2e_setup import Peers, prepare_e2e_service
from harness import Service


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    svc = prepare_e2e_service(tmp_path_factory.mktemp("ics"))
    svc.start()
    try:
        yield svc
    finally:
        status = svc.stop()
        assert status == 0, f"ics serve exited with {status}:\n{svc.log()[-4000:]}"


@pytest.fixture
def peers(service: Service, tmp_path: Path) -> Peers:
    return Peers(service, tmp_path)


def pytest_collection_finish(session: pytest.Session) -> None:
    session.config.stash[_LIMITS_WANTED] = any(
        "limited_calls" in getattr(item, "fixturenames", ()) for item in session.items
    )


_LIMITS_WANTED = pytest.StashKey[bool]()


@pytest.fixture(scope="session", autouse=True)
def background_limits(request: pytest.FixtureRequest,
                      tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The minute-long limit calls, started as the session begins when a test wants them."""
    if not request.config.stash.get(_LIMITS_WANTED, False):
        yield None
        return
    from limits import BackgroundLimits

    svc = prepare_e2e_service(tmp_path_factory.mktemp("ics-limits"))
    runner = BackgroundLimits(svc, tmp_path_factory.mktemp("limits")).start()
    yield runner
    runner.join()

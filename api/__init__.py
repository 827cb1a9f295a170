"""HTTP service: rate calculator (JSON and page), account administration, metrics, health."""

from api.app import create_app
from api.live_calls import LiveCalls, LiveCallView
from api.metrics import Metrics
from api.server import make_server, parse_listen

__all__ = ["LiveCallView", "LiveCalls", "Metrics", "create_app", "make_server", "parse_listen"]

"""`ics api`: the HTTP service on its own, with the configured account store."""

from __future__ import annotations

import sys
from pathlib import Path

from api.app import create_app
from api.server import make_server, parse_listen


async def run_standalone(config_path: str | Path, *, listen: str | None = None) -> int:
    from ics.config import load_config

    config = load_config(Path(config_path))
    host, port = parse_listen(listen or config.http.listen)
    app = create_app(config)
    server = make_server(app, host, port)
    print(f"ics api: serving http://{host}:{port}/ (Ctrl-C stops)", file=sys.stderr)
    await server.serve()
    return 0

"""Sub-commands of the `ics` command line."""

from __future__ import annotations

import argparse


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """``--config`` of a long-lived service; ``run_service`` falls back to the demo config."""
    parser.add_argument("--config", default=None,
                        help="service config (default configs/demo.toml)")

"""What every command does the same way: logging set-up and loading the config or exiting
with its problems listed."""

from __future__ import annotations

import logging
import sys

from edge.settings import Settings


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def load_settings_or_exit(path: str | None) -> Settings:
    """The checked, typed settings (``None``: the embedded defaults); exit 2 listing the
    config's problems."""
    from edge.config.load import ConfigError, load_settings

    try:
        return load_settings(path)
    except ConfigError as e:
        for p in e.problems:
            print(f"{path}: {p}", file=sys.stderr)
        raise SystemExit(2) from None
    except OSError as e:
        print(f"cannot read config {path}: {e}", file=sys.stderr)
        raise SystemExit(2) from None

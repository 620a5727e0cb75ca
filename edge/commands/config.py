"""`face-edge config check|show|set`: the technician's view of a config file."""

from __future__ import annotations

import argparse
import sys

import yaml

from edge.config.load import ConfigError, check_config, redacted
from edge.config.validate import Problem


def _print_problems(path: str, problems: list[Problem], prefix: str = "") -> None:
    for p in problems:
        where = f"{path}:{p.line}" if p.line is not None else path
        print(f"{where}: {p.key}: {prefix}{p.message}", file=sys.stderr)


def config_check_main(path: str) -> int:
    """``config check``: print ``OK: <path>`` and return 0 when valid (warnings go to stderr);
    else print ``<path>:<line>: <key.path>: <message>`` per problem to stderr and return 2."""
    try:
        _, warnings = check_config(path)
    except ConfigError as e:
        _print_problems(str(path), e.details)
        return 2
    _print_problems(str(path), warnings, "warning: ")
    print(f"OK: {path}")
    return 0


def config_show_main(path: str | None) -> int:
    """``config show``: print the effective configuration (defaults filled, secrets redacted)
    as YAML and return 0; on problems behave like :func:`config_check_main`."""
    try:
        cfg, warnings = check_config(path)
    except ConfigError as e:
        _print_problems(str(path), e.details)
        return 2
    _print_problems(str(path), warnings, "warning: ")
    sys.stdout.write(f"# effective configuration of {path or '(embedded defaults)'}\n")
    sys.stdout.write(
        yaml.safe_dump(redacted(cfg), sort_keys=False, default_flow_style=False, allow_unicode=True)
    )
    return 0


def add_arguments(c: argparse.ArgumentParser) -> None:
    csub = c.add_subparsers(dest="config_cmd", required=True)
    cc = csub.add_parser("check", help="exit 0 if valid, else one line per problem")
    cc.add_argument("path")
    cs = csub.add_parser("show", help="effective config with defaults, secrets redacted")
    cs.add_argument("path", nargs="?")
    cset = csub.add_parser(
        "set", help="change keys in place (validated, atomic, with a .bak backup)"
    )
    cset.add_argument("path")
    cset.add_argument(
        "assignments", nargs="+", metavar="KEY=VALUE", help="e.g. detector.score_threshold=0.9"
    )
    cset.add_argument(
        "--reload", action="store_true", help="then reload the running service (SIGHUP)"
    )


def main(args: argparse.Namespace) -> int:
    if args.config_cmd == "check":
        return config_check_main(args.path)
    if args.config_cmd == "set":
        from edge.config.edit import config_set_main

        return config_set_main(args.path, args.assignments, reload=args.reload)
    return config_show_main(args.path)

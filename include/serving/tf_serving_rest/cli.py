"""Command line: `python -m tf_serving_rest --model-name NAME --model-base-path DIR ...`."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .model_config import default_config_path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tf_serving_rest", description=__doc__)
    parser.add_argument("--model-name", required=True, help="name in the URL: /v1/models/NAME")
    parser.add_argument("--model-base-path", required=True, type=Path,
                        help="directory whose integer subdirectories are the model's versions")
    parser.add_argument("--model-config-file", type=Path, default=None,
                        help="JSON with the version labels (default: BASE/../NAME.config.json)")
    parser.add_argument("--port", type=int, default=8501, help="REST port (TF Serving's default is 8501)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind; loopback unless told otherwise")
    parser.add_argument("--poll-seconds", type=float, default=1.0,
                        help="how often the base path and config file are re-read")
    args = parser.parse_args(argv)
    if args.model_config_file is None:
        args.model_config_file = default_config_path(args.model_base_path, args.model_name)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # kserve.model_server parses sys.argv when imported (parse_known_args): keep our flags from it.
    sys.argv = sys.argv[:1]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from .server import serve

    serve(
        model_name=args.model_name,
        base_path=args.model_base_path,
        config_path=args.model_config_file,
        host=args.host,
        port=args.port,
        poll_seconds=args.poll_seconds,
    )

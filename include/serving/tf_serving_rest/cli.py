"""Command line: `python -m tf_serving_rest --model-name NAME --model-base-path DIR ...`."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .limits import DEFAULT_MAX_REQUEST_BYTES, FLAG
from .model_config import default_config_path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tf_serving_rest", description=__doc__)
    parser.add_argument("--model-config-dir", type=Path, default=None,
                        help="serve every model NAME with a DIR/NAME.config.json, from DIR/NAME (a serving root); "
                             "models added later are picked up by polling")
    parser.add_argument("--model-name", help="one model: its name in the URL, /v1/models/NAME")
    parser.add_argument("--model-base-path", type=Path,
                        help="one model: directory whose integer subdirectories are its versions")
    parser.add_argument("--model-config-file", type=Path, default=None,
                        help="JSON with the version labels (default: BASE/../NAME.config.json)")
    parser.add_argument("--port", type=int, default=8501, help="REST port (TF Serving's default is 8501)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind; loopback unless told otherwise")
    parser.add_argument("--poll-seconds", type=float, default=1.0,
                        help="how often the base path and config file are re-read")
    parser.add_argument("--instance-id", default="",
                        help="echoed in GET /tf-serving-rest/instance, so a starter can tell its own server "
                             "from another process answering on the same port")
    parser.add_argument(FLAG, type=int, default=DEFAULT_MAX_REQUEST_BYTES,
                        help="a larger request body is answered 413 {\"error\": ...} and never read "
                             f"(default {DEFAULT_MAX_REQUEST_BYTES}; TF Serving itself sets no limit)")
    args = parser.parse_args(argv)
    if args.max_request_bytes < 1:
        parser.error(f"{FLAG} must be a positive number of bytes")
    if (args.model_config_dir is None) == (args.model_name is None or args.model_base_path is None):
        parser.error("give either --model-config-dir, or --model-name and --model-base-path")
    if args.model_config_dir is None and args.model_config_file is None:
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
        config_dir=args.model_config_dir,
        instance_id=args.instance_id,
        host=args.host,
        port=args.port,
        poll_seconds=args.poll_seconds,
        max_request_bytes=args.max_request_bytes,
    )

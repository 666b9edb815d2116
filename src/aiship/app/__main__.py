"""`python -m aiship.app serve` runs the production server; `probe` checks readiness."""

from __future__ import annotations

import argparse
import os
import sys
import urllib.request

from . import server
from .card import CardError, verify_model_dir
from .settings import Settings, SettingsError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aiship.app", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve a model directory with granian")
    serve.add_argument("--model-dir", help="folder with model.onnx and model.json [MODEL_DIR]")
    serve.add_argument("--host", help="address to listen on [HOST, default 127.0.0.1]")
    serve.add_argument("--port", type=int, help="port to listen on [PORT, default 8080]")
    serve.add_argument("--workers", type=int, help="worker processes [WORKERS, default 2]")
    probe = commands.add_parser("probe", help="exit 0 when the server on this host is ready")
    probe.add_argument("--port", type=int, help="[PORT, default 8080]")
    args = parser.parse_args(argv)

    if args.command == "probe":
        return probe_ready(args.port or int(os.environ.get("PORT") or 8080))
    try:
        settings = Settings.from_env(
            os.environ,
            model_dir=args.model_dir,
            host=args.host,
            port=args.port,
            workers=args.workers,
        )
        verify_model_dir(settings.model_dir)
    except (SettingsError, CardError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return server.serve(settings)


def probe_ready(port: int) -> int:
    url = f"http://127.0.0.1:{port}/v2/health/ready"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return 0 if response.status == 200 else 1
    except OSError:
        return 1


if __name__ == "__main__":
    sys.exit(main())

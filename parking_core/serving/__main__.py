"""`python -m parking_core.serving`: the forecast endpoint as the inference container starts it
(`serving/serve`), without the application package; `parkcast serve-model` calls the same app."""

from __future__ import annotations

import argparse

from parking_core.serving.app import run_endpoint


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None, help="model package folder (default: /opt/ml/model or production)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    args = parser.parse_args(argv)
    run_endpoint(args.model, args.host, args.port, args.threads)


if __name__ == "__main__":
    main()

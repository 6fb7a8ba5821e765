"""The forecast endpoint. The model is loaded at start-up, from SageMaker's model folder
(/opt/ml/model, or SM_MODEL_DIR) when it holds a package, else from the local production
version (models/CURRENT in the data folder). Locally, a promotion rewrites CURRENT: the endpoint
notices (checked at most every RELOAD_CHECK_S) and loads the new version between requests, as
UpdateEndpoint swaps containers in AWS. onnxruntime only: no torch in this process."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from parking_core.forecasting.invocation import InvocationError
from parking_core.forecasting.package import ModelPackage
from parking_core.forecasting.serve import invoke

SAGEMAKER_MODEL_DIR = "/opt/ml/model"
RELOAD_CHECK_S = 2.0
log = logging.getLogger("parkcast.serving")


def resolve_model_dir(explicit: str | Path | None = None) -> tuple[Path, Path | None]:
    """(package folder, the CURRENT pointer to follow or None)."""
    if explicit:
        return Path(explicit), None
    sagemaker = Path(os.environ.get("SM_MODEL_DIR", SAGEMAKER_MODEL_DIR))
    if (sagemaker / "manifest.json").exists():
        return sagemaker, None
    from parking_core.config import get_settings
    from parking_core.forecasting.models_dir import current_package, models_root

    settings = get_settings()
    return current_package(settings).path, models_root(settings) / "CURRENT"


@dataclass
class LoadedModel:
    package: ModelPackage
    forecaster: object
    load_seconds: float


def load(path: Path, threads: int) -> LoadedModel:
    started = time.perf_counter()
    package = ModelPackage.load(path)
    return LoadedModel(package, package.forecaster(threads=threads), time.perf_counter() - started)


def create_serving_app(model_dir: str | Path | None = None, threads: int = 1) -> FastAPI:
    path, pointer = resolve_model_dir(model_dir)
    state = {"model": load(path, threads), "pointer_text": pointer.read_text() if pointer else None, "checked": 0.0}
    app = FastAPI(title="parkcast forecast endpoint", version="1")

    def current() -> LoadedModel:
        """The model to answer with; follows a local promotion (CURRENT rewritten)."""
        now = time.monotonic()
        if pointer is not None and now - state["checked"] >= RELOAD_CHECK_S:
            state["checked"] = now
            text = pointer.read_text() if pointer.exists() else state["pointer_text"]
            if text != state["pointer_text"]:
                try:
                    state["model"] = load(pointer.parent / text.strip(), threads)
                    log.info("now serving %s", state["model"].package.version)
                except (OSError, ValueError):
                    log.exception("new production package could not be loaded; keeping %s",
                                  state["model"].package.version)
                state["pointer_text"] = text
        return state["model"]

    @app.get("/ping")
    async def ping() -> dict:
        model = current()
        return {"status": "ok", "model_version": model.package.version, "load_seconds": round(model.load_seconds, 3)}

    # async: requests run one at a time on the event loop; the forecaster is not thread-safe
    # and one ONNX call is a few milliseconds.
    @app.post("/invocations")
    async def invocations(request: Request) -> JSONResponse:
        model = current()
        try:
            return JSONResponse(invoke(model.package, model.forecaster, await request.body()))
        except InvocationError as exc:
            return JSONResponse({"error": {"code": "bad_request", "message": str(exc)}}, status_code=400)

    app.state.current = current
    return app


def run_endpoint(model_dir: str | Path | None, host: str, port: int, threads: int = 1) -> None:
    """Load the model, then serve /ping and /invocations until stopped (the container and
    `parkcast serve-model` both start the endpoint this way)."""
    import uvicorn

    app = create_serving_app(model_dir, threads=threads)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)

"""The forecast endpoint. The model is loaded once at start-up, from SageMaker's model folder
(/opt/ml/model, or SM_MODEL_DIR) when it holds a package, else from the local production
version (models/CURRENT in the data folder). onnxruntime only: no torch in this process."""

from __future__ import annotations

import os
import time
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from parking_core.forecasting.invocation import InvocationError, invoke
from parking_core.forecasting.package import ModelPackage

SAGEMAKER_MODEL_DIR = "/opt/ml/model"


def resolve_model_dir(explicit: str | Path | None = None) -> Path:
    if explicit:
        return Path(explicit)
    sagemaker = Path(os.environ.get("SM_MODEL_DIR", SAGEMAKER_MODEL_DIR))
    if (sagemaker / "manifest.json").exists():
        return sagemaker
    from parking_core.config import get_settings
    from parking_core.forecasting.models_dir import current_package

    return current_package(get_settings()).path


def create_serving_app(model_dir: str | Path | None = None, threads: int = 1) -> FastAPI:
    started = time.perf_counter()
    package = ModelPackage.load(resolve_model_dir(model_dir))
    forecaster = package.forecaster(threads=threads)
    load_seconds = time.perf_counter() - started
    app = FastAPI(title="parkcast forecast endpoint", version="1")
    app.state.package = package

    @app.get("/ping")
    async def ping() -> dict:
        return {"status": "ok", "model_version": package.version, "load_seconds": round(load_seconds, 3)}

    # async: requests run one at a time on the event loop; the forecaster is not thread-safe
    # and one ONNX call is a few milliseconds.
    @app.post("/invocations")
    async def invocations(request: Request) -> JSONResponse:
        try:
            return JSONResponse(invoke(package, forecaster, await request.body()))
        except InvocationError as exc:
            return JSONResponse({"error": {"code": "bad_request", "message": str(exc)}}, status_code=400)

    return app

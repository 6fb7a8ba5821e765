"""TrainParkingModel: trains on the `dataset` channel and writes the model package (model.onnx,
metrics.json, manifest, preprocessing) to the model folder. SageMaker's conventions: channel in
SM_CHANNEL_DATASET (else /opt/ml/input/data/dataset), model folder SM_MODEL_DIR (else
/opt/ml/model), hyperparameters in SM_HPS (else /opt/ml/input/config/hyperparameters.json)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from parking_core.forecasting.training import TrainConfig
from parking_core.pipeline_steps import train
from sagemaker_adapter.steps.common import object_store

TRAINING_SETTINGS = ("max_epochs", "limit_train_batches", "hidden_size", "seed")


def hyperparameters() -> dict[str, str]:
    if os.environ.get("SM_HPS"):
        return {k: str(v) for k, v in json.loads(os.environ["SM_HPS"]).items()}
    path = Path(os.environ.get("SM_INPUT_CONFIG_DIR", "/opt/ml/input/config")) / "hyperparameters.json"
    return {k: str(v) for k, v in json.loads(path.read_text()).items()} if path.exists() else {}


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    hps = hyperparameters()
    channel = Path(os.environ.get("SM_CHANNEL_DATASET", "/opt/ml/input/data/dataset"))
    model_dir = Path(os.environ.get("SM_MODEL_DIR", "/opt/ml/model"))
    config = TrainConfig.for_pipeline(hps.get("architectures", "gbm"), hps.get("refit", "false"),
                                      hps.get("val_days", "7"), **{k: hps.get(k) for k in TRAINING_SETTINGS})
    with tempfile.TemporaryDirectory() as tmp:
        # The channel holds the dataset files; the core reads an object store with a dataset/ prefix.
        root = Path(tmp) / "objects"
        shutil.copytree(channel, root / "dataset")
        package = train(object_store(root), hps["timezone"], int(hps["step_minutes"]), Path(tmp) / "package", config)
        model_dir.mkdir(parents=True, exist_ok=True)
        for path in package.path.iterdir():
            shutil.copy2(path, model_dir / path.name)
    print(f"trained {package.version}: {json.dumps(package.metrics['candidates'])}", flush=True)


if __name__ == "__main__":
    main()

"""ONNX export of the trained network (torch needed here, never at serving time).

The TFT goes through a wrapper module with fixed encoder/decoder lengths and the legacy
TorchScript exporter (opset 17); NHiTS exports only at a fixed batch size, so its graph
takes exactly `batch` rows and the caller pads.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

INPUT_NAMES = ["encoder_cat", "encoder_cont", "decoder_cat", "decoder_cont"]


def network_inputs(enc_cat, enc_cont, dec_cat, dec_cont, target_scale: tuple[float, float]) -> dict:
    """The x dict pytorch-forecasting models take, from the four window tensors."""
    import torch

    ones = torch.ones_like(enc_cont[:, 0, 0])
    return {
        "encoder_cat": enc_cat,
        "encoder_cont": enc_cont,
        "decoder_cat": dec_cat,
        "decoder_cont": dec_cont,
        # Derived from the inputs so the exported graph keeps a dynamic batch dimension.
        "encoder_lengths": (ones * enc_cont.shape[1]).long(),
        "decoder_lengths": (ones * dec_cont.shape[1]).long(),
        "target_scale": torch.stack([ones * target_scale[0], ones * target_scale[1]], dim=-1),
    }


def export_onnx(model, target_scale: tuple[float, float], example: tuple[np.ndarray, ...], path: Path,
                fixed_batch: int | None = None) -> None:
    import torch

    class Wrapper(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, encoder_cat, encoder_cont, decoder_cat, decoder_cont):
            x = network_inputs(encoder_cat, encoder_cont, decoder_cat, decoder_cont, target_scale)
            return self.net(x)["prediction"]

    wrapper = Wrapper(model).eval()
    tensors = tuple(torch.as_tensor(a) for a in example)
    if fixed_batch is not None:
        tensors = tuple(t[:1].repeat(fixed_batch, *([1] * (t.dim() - 1))) for t in tensors)
    dynamic = None if fixed_batch else {name: {0: "batch"} for name in [*INPUT_NAMES, "quantiles"]}
    with torch.no_grad():
        torch.onnx.export(
            wrapper,
            tensors,
            str(path),
            input_names=INPUT_NAMES,
            output_names=["quantiles"],
            dynamic_axes=dynamic,
            opset_version=17,
            dynamo=False,
        )


NHITS_ONNX_BATCH = 64


def write_package(result, cube, out_dir: Path) -> Path:
    """Write the model package for the selected candidate of a TrainingResult (see package.py)."""
    import torch

    from parking_core.forecasting.backtest import run_backtest
    from parking_core.forecasting.correction_training import holdout_evidence
    from parking_core.forecasting.package import (
        PACKAGE_FORMAT,
        ModelPackage,
        baseline_intervals,
        code_version,
        data_hash,
        file_sha256,
    )
    from parking_core.forecasting.windows import request_at

    best = result.best
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "model.ckpt").write_bytes(best.checkpoint)

    forecaster = result.forecaster()
    slots = cube.spec.slots_per_day
    # Example and parity windows: the last origins of every lot.
    requests = [
        request_at(lot, float(cube.capacity[i]), cube.days, cube.rate[i], len(cube.days) - 1, s, best.spec.horizon)
        for i, lot in enumerate(cube.lots)
        for s in (0, slots // 2, slots - 2)
    ]
    windows = forecaster.builder.batch(requests)
    fixed = NHITS_ONNX_BATCH if best.architecture == "nhits" else None
    torch.set_num_threads(result.config.threads)
    export_onnx(best.model, forecaster.target_scale, windows, out_dir / "model.onnx", fixed_batch=fixed)

    validation = run_backtest(cube, result.val_start, best.spec.horizon, None, progress=False)
    preprocessing = {
        "timezone": result.timezone,
        "grid": cube.spec.to_dict(),
        "input_spec": best.spec.to_dict(),
        "profile": result.profile.to_dict(),
        "holidays": sorted(d.isoformat() for d in result.holidays),
        "lots": {lot: float(cube.capacity[i]) for i, lot in enumerate(cube.lots)},
        "baseline_intervals": baseline_intervals(validation.rows),
        "onnx_fixed_batch": fixed,
    }
    metrics = {
        "selected": best.architecture,
        "candidates": {
            c.architecture: {"val_intraday_mae": c.val_mae, "epochs": c.epochs, "train_seconds": round(c.seconds, 1)}
            for c in result.candidates
        },
        "validation_baselines_mae": {k: v for k, v in best.val_summary["mae"].items() if k != "model"},
        "validation_window": {"first_day": result.val_start.isoformat(), "last_day": cube.days[-1].isoformat()},
        # The promotion floor's evidence, as the gbm's folds give it (correction_training).
        "rolling_origin": holdout_evidence(best.val_summary, result.val_start, cube.days[-1]),
    }
    metrics["beats_weekly_level"] = metrics["rolling_origin"]["beats_weekly_level"]
    digest = data_hash(cube)
    (out_dir / "preprocessing.json").write_text(json.dumps(preprocessing, indent=1))
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))

    # Parity of the exported graph with the torch model on real windows.
    package_files = ["model.onnx", "model.ckpt", "preprocessing.json", "metrics.json"]
    manifest = {
        "format": PACKAGE_FORMAT,
        "model_version": f"{best.architecture}-{digest[:10]}",
        "architecture": best.architecture,
        "quantiles": [0.1, 0.5, 0.9],
        "target": "occupancy rate (occupied / capacity), forecast as the change against the same slot a week earlier",
        "training_window": {"first_day": cube.days[0].isoformat(), "last_day": cube.days[-1].isoformat()},
        "data_hash": digest,
        "code_version": code_version(),
        "config": result.config.to_dict(),
        "files": {},
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    package = ModelPackage(out_dir, manifest, preprocessing, metrics)
    onnx_raw = package.forecaster().raw(*windows)
    torch_raw = forecaster.raw(*windows)
    metrics["onnx_max_abs_diff"] = float(np.abs(onnx_raw - torch_raw).max())
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    manifest["files"] = {name: file_sha256(out_dir / name) for name in package_files}
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return out_dir

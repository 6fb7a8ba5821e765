"""Train the edge's slot classifier: a small CNN (mAlexNet-class, ~25k parameters) on labelled
slot patches, with augmentation for light, weather, camera angle and slot orientation; seeded;
exported to ONNX fp32 and int8 (onnxruntime static quantization, QDQ). torch is needed here
only: the edge runs the ONNX files through edge_runtime.

Patches go through edge_runtime.preprocess, the same code the edge runs, so a model sees at
the edge exactly what it was trained on.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from edge_runtime.evaluate import evaluate_frames, evaluate_patches, read_labels
from edge_runtime.preprocess import MEAN, PATCH, STD, to_array

log = logging.getLogger("parkcast.slots")
LOAD = 64  # patches are loaded at 64 px; augmentation crops, rotates and scales down to PATCH


@dataclass
class SlotTrainConfig:
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 7
    threads: int = 2
    calibration_patches: int = 256


def _load(rows: list[tuple[Path, bool]]) -> tuple[np.ndarray, np.ndarray]:
    images = np.stack([np.asarray(Image.open(p).convert("RGB").resize((LOAD, LOAD), Image.Resampling.BILINEAR),
                                  dtype=np.float32) / 255.0 for p, _ in rows])
    return images.transpose(0, 3, 1, 2).copy(), np.array([o for _, o in rows], dtype=np.int64)


def build_model():
    import torch.nn as nn

    def block(c_in, c_out, k, stride=1):
        return [nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=False), nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True)]

    return nn.Sequential(
        *block(3, 16, 5, stride=2), nn.MaxPool2d(2),  # 48 -> 24 -> 12
        *block(16, 32, 3), nn.MaxPool2d(2),  # -> 6
        *block(32, 64, 3),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.3), nn.Linear(64, 2),
    )


def augment(x, generator):
    """A batch [B, 3, 64, 64] in [0, 1] -> [B, 3, 48, 48]: any rotation and flip (slots face
    every way in a frame), scale and shift (imprecise slot maps), light, colour cast, blur, noise."""
    import math

    import torch
    import torch.nn.functional as F

    b = x.shape[0]

    def uniform(lo, hi, *shape):
        return lo + (hi - lo) * torch.rand(*(shape or (b,)), generator=generator)

    angle = uniform(0, 2 * math.pi)
    scale = uniform(0.8, 1.15)
    flip = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos * flip, -sin, uniform(-0.12, 0.12)], 1),
                         torch.stack([sin * flip, cos, uniform(-0.12, 0.12)], 1)], 1)
    grid = F.affine_grid(theta, (b, 3, PATCH, PATCH), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    gray = out.mean(1, keepdim=True)
    out = gray + (out - gray) * uniform(0.4, 1.6, b, 1, 1, 1)  # saturation
    mean = out.mean((1, 2, 3), keepdim=True)
    out = mean + (out - mean) * uniform(0.6, 1.4, b, 1, 1, 1)  # contrast
    out = out * uniform(0.55, 1.45, b, 1, 1, 1) * uniform(0.9, 1.1, b, 3, 1, 1)  # light, colour cast
    blur = torch.rand(b, generator=generator) < 0.35
    if blur.any():
        small = F.interpolate(out[blur], scale_factor=0.5, mode="bilinear", align_corners=False)
        out[blur] = F.interpolate(small, size=(PATCH, PATCH), mode="bilinear", align_corners=False)
    out = out + torch.randn(out.shape, generator=generator) * uniform(0.0, 0.04, b, 1, 1, 1)
    return out.clamp(0.0, 1.0)


def _normalise(x):
    import torch

    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def export_onnx(model, path: Path) -> None:
    """ONNX with a softmax on top: the output is [N, 2] probabilities (free, taken)."""
    import torch

    with_probabilities = torch.nn.Sequential(model, torch.nn.Softmax(dim=1)).eval()
    torch.onnx.export(with_probabilities, torch.zeros(1, 3, PATCH, PATCH), str(path), input_names=["patches"],
                      output_names=["probabilities"], dynamic_axes={"patches": {0: "n"}, "probabilities": {0: "n"}},
                      opset_version=17, dynamo=False)


def quantize_int8(fp32: Path, int8: Path, calibration: np.ndarray) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"patches": calibration[i : i + 32]} for i in range(0, len(calibration), 32)])

        def get_next(self):
            return next(self.batches, None)

    prepared = int8.with_suffix(".prep.onnx")
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    quantize_static(str(prepared), str(int8), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    prepared.unlink()


def train_slot_classifier(labels_csv: Path, out_dir: Path, config: SlotTrainConfig | None = None,
                          external_frames: list | None = None, progress: bool = True) -> dict:
    """Train on the `train` rows of labels_csv (path, occupied, split), export fp32 + int8 ONNX
    into out_dir, evaluate both on the `val` rows (a later time block: neighbouring frames
    show the same parked cars, a random split would leak) and on labelled frames of another
    lot if given; returns (and writes) metrics.json."""
    import torch
    import torch.nn.functional as F

    from edge_runtime.classifier import SlotClassifier

    config = config or SlotTrainConfig()
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    generator = torch.Generator().manual_seed(config.seed)
    train_rows, val_rows = read_labels(labels_csv, "train"), read_labels(labels_csv, "val")
    x_train, y_train = _load(train_rows)
    x, y = torch.from_numpy(x_train), torch.from_numpy(y_train)
    model = build_model()
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    steps = config.epochs * ((len(x) + config.batch_size - 1) // config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, config.learning_rate, total_steps=steps)
    counts = torch.bincount(y, minlength=2).float()
    weights = counts.sum() / (2 * counts)  # classes are imbalanced (58 % busy)
    started = time.perf_counter()
    for epoch in range(config.epochs):
        model.train()
        order = torch.randperm(len(x), generator=generator)
        total = 0.0
        for i in range(0, len(x), config.batch_size):
            idx = order[i : i + config.batch_size]
            logits = model(_normalise(augment(x[idx], generator)))
            loss = F.cross_entropy(logits, y[idx], weight=weights)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += float(loss) * len(idx)
        if progress:
            log.info("epoch %d/%d loss %.4f (%.0f s)", epoch + 1, config.epochs, total / len(x),
                     time.perf_counter() - started)
    model.eval()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fp32, int8 = out_dir / "slot_classifier.onnx", out_dir / "slot_classifier.int8.onnx"
    export_onnx(model, fp32)
    rng = np.random.default_rng(config.seed)
    pick = rng.choice(len(train_rows), size=min(config.calibration_patches, len(train_rows)), replace=False)
    quantize_int8(fp32, int8, to_array([Image.open(train_rows[i][0]) for i in pick]))
    metrics: dict = {"config": asdict(config), "train_patches": len(train_rows), "val_patches": len(val_rows),
                     "train_seconds": round(time.perf_counter() - started, 1),
                     "parameters": sum(p.numel() for p in model.parameters()), "input": [3, PATCH, PATCH]}
    for name, path in (("fp32", fp32), ("int8", int8)):
        classifier = SlotClassifier(path)
        metrics[name] = {"size_bytes": path.stat().st_size, "val": evaluate_patches(classifier, labels_csv,
                                                                                      split="val")}
        if external_frames:
            metrics[name]["external_frames"] = evaluate_frames(classifier, external_frames)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def model_card(metrics: dict) -> str:
    """A short model card from metrics.json."""
    fp32, int8 = metrics["fp32"], metrics["int8"]

    def line(name, m):
        ext = m.get("external_frames")
        return (f"| {name} | {m['size_bytes'] / 1024:.0f} KB | {m['val']['accuracy']:.4f} | {m['val']['f1']:.4f} | "
                + (f"{ext['accuracy']:.4f} | {ext['f1']:.4f} |" if ext else "- | - |"))

    return f"""# Slot classifier (parkcast edge)

Decides, for one parking space cropped from a camera frame, whether it is taken.

- **Architecture**: small CNN (mAlexNet-class, {metrics['parameters']:,} parameters): three conv blocks
  (5x5/2, 3x3, 3x3; batch norm, ReLU), global average pooling, dropout, linear; input
  {metrics['input'][1]}x{metrics['input'][2]} RGB normalised with ImageNet mean/std; output P(free), P(taken).
- **Training data**: CNRPark camera A patches (Pisa, 2015-07-03, sunny), {metrics['train_patches']} patches
  from 08:05-15:55. Augmentation: any rotation and mirror, scale 0.8-1.15 and shift (imprecise slot
  maps), saturation/contrast/brightness/colour cast (light and weather), blur, noise. Class-weighted
  loss (58 % taken). Seed {metrics['config']['seed']}, {metrics['config']['epochs']} epochs, AdamW + one-cycle;
  {metrics['train_seconds']:.0f} s on 2 CPU cores.
- **Evaluation**: camera A 16:05-18:05 ({metrics['val_patches']} patches, a later time block, never
  trained on), and PKLot PUCPR frames (Curitiba, Brazil, another lot, camera and country) through
  the full frame -> slot map -> perspective crop -> classifier path (299 labelled slots).

| model | size | camera A val accuracy | F1 | PKLot PUCPR accuracy | F1 |
|---|---|---|---|---|---|
{line("fp32", fp32)}
{line("int8 (QDQ, per-channel, static calibration)", int8)}

- **Errors**: on PKLot the model errs towards "taken" (confusion {int8.get('external_frames', {}).get('confusion')}
  as [[free->free, free->taken], [taken->free, taken->taken]]): empty spaces with stains, shadows or
  paint. Counts are therefore slightly high on a foreign lot; fine-tune on a few labelled frames of
  the target camera when that matters.
- **Limits**: trained on one sunny day of one camera: night, rain, snow and strong glare are not in
  the training data. Slots must be mapped per camera (see docs/edge.md).
- **Data licences**: CNRPark (research use, cite Amato et al. 2016/2017); PKLot CC BY 4.0 (cite
  Almeida et al. 2015). Reproduce: `parkcast train-slots`.
"""

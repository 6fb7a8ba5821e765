"""slot_classifier: the edge's ONNX slot classifier, trained on the labelled slot patches and
frames, checked on a later time block and on frames of other days; the artifact lands in the
object store with its card."""

import tempfile
from pathlib import Path

import dagster as dg

from parking_assets.resources import ParkcastResource

SLOTS = Path(__file__).resolve().parent.parent / "data" / "sample" / "slots"


class SlotClassifierConfig(dg.Config):
    labels: str = str(SLOTS / "cnrpark_camA" / "labels.csv")  # path, occupied, split (train / val)
    frames: list[str] = [str(SLOTS / "pklot_pucpr_more" / "labeled")]  # labelled frames + PKLot XML, trained on
    check_frames: str = str(SLOTS / "pklot_pucpr_frames" / "labeled")  # frames of other days, never trained on
    epochs: int = 8
    limit: int | None = None  # patches per source (quick runs)


@dg.asset(group_name="edge", kinds={"onnx", "pytorch"},
          description="Slot classifier for the Raspberry Pi: ONNX fp32 + int8, metrics and a model card.")
def slot_classifier(context: dg.AssetExecutionContext, config: SlotClassifierConfig,
                    parkcast: ParkcastResource) -> dg.MaterializeResult:
    from slot_training.training import SlotTrainConfig, model_card, train_from_data

    objects = parkcast.objects()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        metrics = train_from_data(Path(config.labels), [Path(f) for f in config.frames], Path(config.check_frames),
                                  out, SlotTrainConfig(epochs=config.epochs), limit=config.limit)
        card = model_card(metrics)
        (out / "MODEL_CARD.md").write_text(card)
        prefix = f"models/slot_classifier/{context.run_id}"
        for path in out.iterdir():
            objects.put_bytes(f"{prefix}/{path.name}", path.read_bytes())
    int8 = metrics["int8"]
    val, other_days = list(metrics["checks"])
    context.log.info(f"slot classifier: val accuracy {int8[val]['accuracy']}, "
                     f"other days {int8[other_days]['accuracy']}")
    return dg.MaterializeResult(metadata={
        "uri": objects.uri(prefix),
        "val_accuracy_int8": int8[val]["accuracy"],
        "val_accuracy_fp32": metrics["fp32"][val]["accuracy"],
        "external_accuracy_int8": int8[other_days]["accuracy"],
        "int8_bytes": int8["size_bytes"],
        "fp32_bytes": metrics["fp32"]["size_bytes"],
        "model_card": dg.MetadataValue.md(card),
    })

"""parkcast-edge: run the daemon, classify one frame (with an overlay picture), evaluate a
labelled patch set, and fit the model to a new camera: `calibrate` learns from unlabelled frames
of it (no labels), `label` cuts a frame's slots out with the model's guesses for a person to
correct, `adapt` fits an adapter on those labels."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from edge_runtime.config import ConfigError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """parkcast on the Raspberry Pi."""


def _probability(ctx, param, value: float) -> float:
    if not 0 <= value <= 1:  # NaN fails this too (click's FloatRange lets it through)
        raise click.BadParameter(f"{value} is not a probability between 0 and 1")
    return value


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path), help="edge.toml")
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
def run(config_path: Path, log_level: str) -> None:
    """Watch the car park and report readings until stopped (SIGTERM / Ctrl-C)."""
    from edge_runtime.adapt import AdaptError
    from edge_runtime.classifier import ModelError
    from edge_runtime.config import load_config
    from edge_runtime.daemon import Daemon, setup_logging
    from edge_runtime.outbox import OutboxError
    from edge_runtime.slotmap import SlotMapError

    setup_logging(log_level)
    try:
        daemon = Daemon(load_config(config_path))
    except (ConfigError, SlotMapError, AdaptError, ModelError, OutboxError, FileNotFoundError) as exc:
        click.echo(f"parkcast-edge: {exc}", err=True)
        sys.exit(2)
    sys.exit(daemon.run())


@main.command()
@click.option("--frame", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--slots", "slots_path", required=True, type=click.Path(path_type=Path), help="slot map: .xml/.csv/.json")
@click.option("--overlay", type=click.Path(dir_okay=False, path_type=Path), default=None, help="write OUT.png")
@click.option("--model", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--adapter", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="adapter from `parkcast-edge adapt`")
@click.option("--calibration", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="calibration from `parkcast-edge calibrate`")
@click.option("--threshold", type=float, default=0.5, show_default=True, callback=_probability)
def classify(frame: Path, slots_path: Path, overlay: Path | None, model: Path | None, adapter: Path | None,
             calibration: Path | None, threshold: float) -> None:
    """Per-slot states and the count of one frame, as JSON; --overlay draws free green, taken red."""
    from edge_runtime.overlay import draw_overlay
    from edge_runtime.preprocess import crop_all

    image, slot_map = _frame_and_map(frame, slots_path)
    classifier = _classifier(model, adapter, calibration)
    probabilities = classifier.predict(crop_all(image, slot_map, classifier.size))
    states = probabilities >= threshold
    if overlay:
        draw_overlay(image, slot_map, states, probabilities).save(overlay)
    click.echo(json.dumps({
        "frame": str(frame), "capacity": len(slot_map.slots), "occupied": int(states.sum()),
        "slots": [{"slot_id": s.slot_id, "occupied": bool(o), "confidence": round(float(p), 3)}
                  for s, o, p in zip(slot_map.slots, states, probabilities, strict=True)],
    }, indent=1))


def _frame_and_map(frame: Path, slots_path: Path):
    from PIL import Image

    from edge_runtime.slotmap import SlotMapError, load_slot_map, validate

    try:
        slot_map = load_slot_map(slots_path, frame.name)
        image = Image.open(frame).convert("RGB")
        validate(slot_map, image.size)
    except (SlotMapError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    return image, slot_map


def _frames(folder: Path) -> list[Path]:
    """The frames in a folder (.jpg/.jpeg/.png), by name: in time order when named by capture time."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def _classifier(model: Path | None, adapter: Path | None = None, calibration: Path | None = None):
    from edge_runtime.adapt import AdaptError
    from edge_runtime.classifier import ModelError, SlotClassifier

    try:
        return SlotClassifier(model, adapter=adapter, calibration=calibration)
    except (AdaptError, ModelError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.option("--frame", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--slots", "slots_path", required=True, type=click.Path(path_type=Path), help="slot map: .xml/.csv/.json")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="folder for the patches, labels.csv and overlay PNGs (several frames may share it)")
@click.option("--model", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--adapter", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--calibration", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="calibration from `parkcast-edge calibrate`")
@click.option("--replace", is_flag=True, help="label a frame again even where its rows were corrected")
def label(frame: Path, slots_path: Path, out: Path, model: Path | None, adapter: Path | None,
          calibration: Path | None, replace: bool) -> None:
    """Cut a frame's slots out for labelling: OUT/patches/*.png (exactly what the model sees),
    OUT/labels.csv pre-filled with the model's guesses (correct the `occupied` column: 1 taken,
    0 free; delete a row to leave a slot out) and OUT/<frame>.overlay.png with slot ids."""
    from edge_runtime.labels import LabelSetError, write_label_set

    image, slot_map = _frame_and_map(frame, slots_path)
    try:
        result = write_label_set(image, frame.stem, slot_map, _classifier(model, adapter, calibration), out, replace)
    except LabelSetError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(result))
    click.echo(f"correct {result['labels']} (occupied: 1 taken, 0 free), using {result['overlay']} to find "
               "each slot id; then: parkcast-edge adapt --labels LABELS --out adapter.json"
               + (f" --calibration {calibration}" if calibration else ""), err=True)


@main.command()
@click.option("--frames", "frames_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="folder of frames of this camera (.jpg/.jpeg/.png), e.g. one every 15 minutes over a day")
@click.option("--slots", "slots_path", required=True, type=click.Path(path_type=Path), help="slot map: .xml/.csv/.json")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="new folder for the proposed patches and labels.csv")
@click.option("--per-class", type=click.IntRange(min=1), default=20, show_default=True,
              help="labels wanted of each class (free, taken)")
@click.option("--model", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--calibration", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="calibration from `parkcast-edge calibrate` (then adapt with --calibration too)")
@click.option("--frame", "frame_name", default=None, help="for a CSV slot map holding several frames")
def propose(frames_dir: Path, slots_path: Path, out: Path, per_class: int, model: Path | None,
            calibration: Path | None, frame_name: str | None) -> None:
    """Propose which slots to label: across a day of frames, the ones that cover this camera's
    variety (k-means on the model's embedding, numpy). OUT/labels.csv lists them in order with
    `occupied` blank: fill it in from the top (1 taken, 0 free) until you have PER_CLASS of each,
    then `parkcast-edge adapt --labels OUT/labels.csv` (blank rows are left out)."""
    from edge_runtime.labels import LabelSetError, write_proposal_set
    from edge_runtime.slotmap import SlotMapError, load_slot_map

    try:
        slot_map = load_slot_map(slots_path, frame_name)
        result = write_proposal_set(_frames(frames_dir), slot_map, _classifier(model, calibration=calibration), out,
                                    per_class)
    except (LabelSetError, SlotMapError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(result))
    click.echo(f"fill in the occupied column of {result['labels']} from the top (1 taken, 0 free; the patch is "
               f"in the path column) until you have {per_class} of each; then: parkcast-edge adapt --labels "
               f"{result['labels']} --out adapter.json" + (f" --calibration {calibration}" if calibration else ""),
               err=True)


@main.command()
@click.option("--labels", "labels_paths", required=True, multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path), help="labels.csv (repeatable)")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="adapter .json")
@click.option("--model", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="base model (default: the packaged int8 model)")
@click.option("--calibration", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="fit on top of this calibration (`parkcast-edge calibrate`); the daemon must then use both")
def adapt(labels_paths: tuple[Path, ...], out: Path, model: Path | None, calibration: Path | None) -> None:
    """Fit this camera's adapter on corrected labels (numpy, seconds, deterministic); the daemon
    uses it when edge.toml says `adapter = "OUT"` (and `calibration = ...` if fitted with one)."""
    from edge_runtime.adapt import AdaptError
    from edge_runtime.labels import adapt_from_labels

    try:
        result = adapt_from_labels(list(labels_paths), _classifier(model, calibration=calibration), out)
    except (AdaptError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(result))
    verdict = ("the model already agrees with your labels: the adapter keeps it as trained"
               if result["strength"] is None else
               f"cross-validated with the adapter {result['cv_accuracy']:.3f}")
    click.echo(f"adapter written to {out}: on your {result['n']} labels the model scores "
               f"{result['base_accuracy']:.3f}; {verdict}; set adapter = \"{out}\" in edge.toml", err=True)


@main.command()
@click.option("--frames", "frames_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="folder of unlabelled frames of this camera (.jpg/.jpeg/.png), e.g. one every 15 minutes "
                   "over a working day")
@click.option("--slots", "slots_path", required=True, type=click.Path(path_type=Path), help="slot map: .xml/.csv/.json")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="calibration .json")
@click.option("--model", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="base model (default: the packaged int8 model)")
@click.option("--frame", "frame_name", default=None, help="for a CSV slot map holding several frames")
@click.option("--mode", type=click.Choice(["auto", "full", "threshold"]), default="auto", show_default=True,
              help="full: a new head read from this camera's features (the larger gains, and a measured harm on "
                   "overexposed frames); threshold: only the model's decision threshold moves (smaller gains, "
                   "at most -0.002 measured where the full mode lost 0.108); auto: full where it overturns at most "
                   "2 % of the calls the threshold is sure of, else the threshold")
def calibrate(frames_dir: Path, slots_path: Path, out: Path, model: Path | None, frame_name: str | None,
              mode: str) -> None:
    """Fit the model to this camera without labels, from its own unlabelled frames (numpy,
    deterministic); the daemon uses it when edge.toml says `calibration = "OUT"`."""
    from edge_runtime.adapt import AdaptError
    from edge_runtime.calibrate import calibrate_frames
    from edge_runtime.slotmap import SlotMapError, load_slot_map

    try:
        slot_map = load_slot_map(slots_path, frame_name)
        result = calibrate_frames(_frames(frames_dir), slot_map, _classifier(model), out, mode)
    except (AdaptError, SlotMapError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(result))
    if mode == "auto":
        flipped = result["threshold_sure_flipped"]
        click.echo(f"auto mode chose the {result['chose']} calibration (the full one would turn "
                   + ("an unmeasured share" if flipped is None else f"{flipped:.1%}")
                   + " of the calls the threshold is sure of to the other state; it is kept at 2 % or less)",
                   err=True)
    if result["kept_base"]:
        click.echo("the model as trained agrees with this camera's per-slot structure at least as well as a "
                   "calibration would: the file keeps it unchanged", err=True)
    click.echo(f"calibration written to {out} from {result['patches']} slot patches of {result['frames']} frames "
               f"(it calls {result['taken_share']:.0%} of them taken and agrees with the model as trained on "
               f"{result['agreement_with_base']:.0%}; of the patches it changes, {result['overruled_sure']:.0%} were "
               "ones the model was sure of: the higher, the more careful the check). "
               "Check it on a frame (parkcast-edge label --calibration "
               f"{out}) before setting calibration = \"{out}\" in edge.toml: it was fitted without labels, "
               "and with fewer frames per slot it has less to go on", err=True)


@main.command("eval")
@click.option("--labels", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV with path,occupied (paths relative to the CSV)")
@click.option("--model", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--adapter", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--split", default=None, help="only rows whose split column has this value")
@click.option("--calibration", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="calibration from `parkcast-edge calibrate`")
def evaluate(labels: Path, model: Path | None, adapter: Path | None, split: str | None,
             calibration: Path | None) -> None:
    """Accuracy, precision, recall, F1 and the confusion matrix on a labelled patch set."""
    from edge_runtime.evaluate import evaluate_patches

    classifier = _classifier(model, adapter, calibration)
    try:
        result = evaluate_patches(classifier, labels, split=split)
    except (ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    (tn, fp), (fn, tp) = result["confusion"]
    click.echo(json.dumps(result))
    click.echo(f"accuracy {result['accuracy']:.4f}  precision {result['precision']:.4f}  recall "
               f"{result['recall']:.4f}  F1 {result['f1']:.4f}  (n={result['n']})", err=True)
    click.echo(f"              predicted free  predicted taken\ntruth free    {tn:>14} {fp:>16}\n"
               f"truth taken   {fn:>14} {tp:>16}", err=True)


if __name__ == "__main__":
    main()

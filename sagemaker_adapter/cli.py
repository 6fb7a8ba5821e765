"""`parkcast pipeline compile | upsert | start | run-local`: the SageMaker side of the pipeline CLI."""

from __future__ import annotations

from pathlib import Path

import click

from sagemaker_adapter.compiler import CompileOptions

DEFAULTS = CompileOptions()


def _params(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{item!r}: expected Name=Value", param_hint="--param")
        out[name] = value
    return out


@click.command("compile")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="pipeline.json")
@click.option("--name", default=DEFAULTS.pipeline_name, show_default=True)
@click.option("--region", default=DEFAULTS.region, show_default=True)
@click.option("--role-arn", default=DEFAULTS.role_arn, show_default=True)
@click.option("--bucket", default=DEFAULTS.artifacts_bucket, show_default=True, help="SDK artifacts bucket")
@click.option("--input-prefix", default=DEFAULTS.input_prefix, show_default=True, help="object store root in S3")
@click.option("--pipeline-image", default=DEFAULTS.pipeline_image, show_default=True)
@click.option("--serving-image", default=DEFAULTS.serving_image, show_default=True)
@click.option("--model-group", default=DEFAULTS.model_group, show_default=True)
@click.option("--timezone", default=DEFAULTS.timezone, show_default=True)
@click.option("--step-minutes", type=int, default=DEFAULTS.step_minutes, show_default=True)
def compile_command(out: Path, name, region, role_arn, bucket, input_prefix, pipeline_image, serving_image,
                    model_group, timezone, step_minutes) -> None:
    """Compile the Dagster asset graph into a SageMaker Pipeline definition (offline, deterministic)."""
    from parking_assets.definitions import defs
    from sagemaker_adapter.compiler import compile_definition

    options = CompileOptions(name, region, role_arn, bucket, input_prefix, pipeline_image, serving_image,
                             model_group, timezone, step_minutes)
    out.write_text(compile_definition(defs, options))
    click.echo(f"wrote {out} ({out.stat().st_size} bytes)")


@click.command("upsert")
@click.option("--definition", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option("--name", default=DEFAULTS.pipeline_name, show_default=True)
@click.option("--role-arn", required=True, help="the pipeline's execution role")
@click.option("--region", default=DEFAULTS.region, show_default=True)
def upsert_command(definition: Path, name: str, role_arn: str, region: str) -> None:
    """Create the pipeline in SageMaker, or update it to this definition."""
    from sagemaker_adapter.aws import upsert_pipeline

    click.echo(upsert_pipeline(name, definition.read_text(), role_arn, region=region))


@click.command("start")
@click.option("--name", default=DEFAULTS.pipeline_name, show_default=True)
@click.option("--param", "params", multiple=True, help="Name=Value, e.g. ForceRetrain=true (repeatable)")
@click.option("--region", default=DEFAULTS.region, show_default=True)
def start_command(name: str, params: tuple[str, ...], region: str) -> None:
    """Start an execution of the pipeline in SageMaker."""
    from sagemaker_adapter.aws import start_pipeline

    click.echo(start_pipeline(name, _params(params), region=region))


@click.command("run-local")
@click.argument("definition", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="parkcast data folder: objects/ stands for InputPrefix, registry.sqlite3 for the registry")
@click.option("--param", "params", multiple=True, help="Name=Value (repeatable)")
def run_local_command(definition: Path, data_dir: Path, params: tuple[str, ...]) -> None:
    """Execute the compiled definition here, without Docker, registering into the local registry."""
    from parking_core.registry.local import LocalModelRegistry
    from sagemaker_adapter.local_runner import LocalRunner, StepFailed

    try:
        runner = LocalRunner(definition.read_text(), data_dir, LocalModelRegistry(data_dir / "registry.sqlite3"),
                             _params(params))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        result = runner.run()
    except StepFailed as exc:
        click.echo(runner.result.summary())
        raise click.ClickException(str(exc)) from None
    click.echo(result.summary())

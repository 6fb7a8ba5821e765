"""Where the code comes from: zip packages built by lambda/build.py, and container images built
by the CDK CLI (Docker) from the repo's Dockerfiles at deploy time. With the context flag
`parkcast:placeholderAssets=true` (tests only) images become fixed placeholder URIs and zip
functions take their handler folder, so a synth needs neither Docker nor a package build."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.settings import InfraSettings

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "lambda"

# How each function ships (docs/serving.md has the sizes): over 200 MB unzipped -> an image from
# lambda/Dockerfile, the rest as zips from lambda/build.py.
PACKAGING = {
    "run_prediction_trigger": "zip",
    "read_api": "zip",
    "system_monitor": "zip",
    "daily_export_to_s3": "image",
    "evaluate_promote_trigger": "image",
}

# The Docker build context is the repo root; this keeps what the Dockerfiles do not copy (and
# what would make staging slow) out of it.
DOCKER_EXCLUDE = [".git", ".venv", ".venv-tools", "**/node_modules", "**/cdk.out", "build", "dist", ".parkcast",
                  "**/__pycache__", "**/*.pyc", "data", "docs", "tests", "benchmarks", "web", "infra", "edge_runtime",
                  ".github", ".ci"]

PLACEHOLDER_REPOSITORY = "parkcast-placeholder"


@dataclass(frozen=True)
class Image:
    uri: str
    repository: ecr.IRepository


def docker_image(scope: Construct, id: str, dockerfile: str, settings: InfraSettings) -> Image:
    if settings.placeholder_assets:
        repo = ecr.Repository.from_repository_name(scope, id, PLACEHOLDER_REPOSITORY)
        return Image(repo.repository_uri_for_tag(id.lower()), repo)
    asset = ecr_assets.DockerImageAsset(scope, id, directory=str(ROOT), file=dockerfile, exclude=DOCKER_EXCLUDE,
                                        platform=ecr_assets.Platform.LINUX_AMD64)
    return Image(asset.image_uri, asset.repository)


def function_code(scope: Construct, name: str, settings: InfraSettings) -> tuple[lambda_.Code, str, lambda_.Runtime]:
    """(code, handler, runtime) for lambda/<name>: the zip package or the container image."""
    if PACKAGING[name] == "image":
        if settings.placeholder_assets:
            repo = ecr.Repository.from_repository_name(scope, f"{name}-image", PLACEHOLDER_REPOSITORY)
            code = lambda_.Code.from_ecr_image(repo, tag_or_digest=name, cmd=["handler.handler"])
        else:
            code = lambda_.Code.from_asset_image(
                str(ROOT), file="lambda/Dockerfile", build_args={"FUNCTION": name}, exclude=DOCKER_EXCLUDE,
                cmd=["handler.handler"], platform=ecr_assets.Platform.LINUX_AMD64)
        return code, lambda_.Handler.FROM_IMAGE, lambda_.Runtime.FROM_IMAGE
    package = BUILD / name
    if settings.placeholder_assets:
        package = ROOT / "lambda" / name
    elif not (package / "handler.py").exists():
        raise FileNotFoundError(f"{package} is missing: build the Lambda packages first "
                                f"(python lambda/build.py, or make deploy)")
    return lambda_.Code.from_asset(str(package)), "handler.handler", lambda_.Runtime.PYTHON_3_11

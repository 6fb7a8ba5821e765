"""Model registry: port, local (SQLite) and SageMaker adapters, and rollback."""

from __future__ import annotations

from collections.abc import Callable

from parking_core.registry.port import (
    ApprovalStatus,
    InvalidTransition,
    ModelRegistry,
    ModelVersion,
    RegistryError,
    VersionNotFound,
)

__all__ = [
    "ApprovalStatus",
    "InvalidTransition",
    "ModelRegistry",
    "ModelVersion",
    "RegistryError",
    "VersionNotFound",
    "open_registry",
    "reject",
    "rollback",
]


def open_registry(settings) -> ModelRegistry:
    if settings.registry == "sagemaker":
        from parking_core.registry.sagemaker import SageMakerModelRegistry

        return SageMakerModelRegistry(region=settings.aws_region, serving_image=settings.serving_image or None)
    from parking_core.registry.local import LocalModelRegistry

    return LocalModelRegistry(settings.registry_path)


def reject(registry: ModelRegistry, group: str, version: int, note: str) -> ModelVersion:
    """Reject a version; never the one in production (rejecting it would not stop serving it: roll
    back first)."""
    production = registry.production(group)
    if production is not None and production.version == version:
        raise RegistryError(f"version {version} is in production: run `parkcast registry rollback` first, "
                            "then reject it")
    return registry.set_status(group, version, ApprovalStatus.REJECTED, note)


def rollback(registry: ModelRegistry, group: str, deploy: Callable[[ModelVersion], None] | None = None
             ) -> ModelVersion:
    """Production goes back to the previous production version that is still Approved. `deploy`
    puts it behind the forecast endpoint first (as promotion does); if it raises, the production
    pointer is left as it was."""
    history = registry.production_history(group)
    current = history[-1] if history else None
    for version in reversed(history[:-1]):
        target = registry.get(group, version)
        if version != current and target.status == ApprovalStatus.APPROVED:
            if deploy is not None:
                deploy(target)
            registry.set_production(group, version)
            return registry.get(group, version)
    raise RegistryError("no earlier approved production version to roll back to")

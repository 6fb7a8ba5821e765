"""Run a compiled SageMaker Pipeline definition on this machine, without Docker.

SageMaker's own local mode needs Docker and cannot create or register pipelines locally; this
runner executes the definition JSON itself: pipeline parameters and expressions (Get, Std:Join,
Std:JsonGet) are evaluated, S3 URIs under InputPrefix map to a parkcast data folder's objects/
(others to objects/_s3/<bucket>/...), each processing or training step runs its entry module in
a subprocess with SageMaker's container paths re-rooted in a scratch folder and SageMaker's
environment (SM_CHANNEL_*, SM_MODEL_DIR, SM_HPS), outputs are copied back, conditions are
decided from the property files, and RegisterModel registers into the local model registry.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parking_core.pipeline_steps import registration
from parking_core.registry import ApprovalStatus, ModelRegistry


class StepFailed(RuntimeError):
    pass


@dataclass
class StepResult:
    name: str
    type: str
    status: str  # Succeeded | Skipped | Failed
    detail: str = ""


@dataclass
class RunResult:
    execution_id: str
    steps: list[StepResult] = field(default_factory=list)
    properties: dict[str, dict[str, Any]] = field(default_factory=dict)
    registered_version: int | None = None

    def summary(self) -> str:
        return "\n".join(f"{s.name:<20} {s.type:<14} {s.status:<10} {s.detail}" for s in self.steps)


class LocalRunner:
    def __init__(self, definition: dict | str, data_dir: Path, registry: ModelRegistry,
                 parameters: dict[str, str] | None = None, workdir: Path | None = None,
                 execution_id: str | None = None, echo: bool = True):
        self.definition = json.loads(definition) if isinstance(definition, str) else definition
        self.data_dir = Path(data_dir).resolve()
        self.objects = self.data_dir / "objects"
        self.registry = registry
        self.execution_id = execution_id or f"local-{uuid.uuid4().hex[:12]}"
        self.workdir = Path(workdir or self.data_dir / "pipeline-runs" / self.execution_id)
        self.echo = echo
        self.params = self._parameters(parameters or {})
        self.result = RunResult(self.execution_id)

    # -- expressions -----------------------------------------------------------------------

    def _parameters(self, overrides: dict[str, str]) -> dict[str, Any]:
        cast = {"Integer": int, "Float": float, "String": str, "Boolean": lambda v: str(v).lower() == "true"}
        declared = {p["Name"]: p for p in self.definition.get("Parameters", [])}
        unknown = sorted(set(overrides) - set(declared))
        if unknown:
            raise ValueError(f"unknown pipeline parameter(s): {', '.join(unknown)}; declared: {', '.join(declared)}")
        out = {}
        for name, p in declared.items():
            value = overrides.get(name, p.get("DefaultValue"))
            if value is None:
                raise ValueError(f"parameter {name} has no default and no value")
            out[name] = cast[p["Type"]](value)
            if p.get("EnumValues") and str(out[name]) not in p["EnumValues"]:
                raise ValueError(f"parameter {name}={out[name]!r} not one of {p['EnumValues']}")
        return out

    def resolve(self, expr: Any) -> Any:
        if isinstance(expr, list):
            return [self.resolve(e) for e in expr]
        if not isinstance(expr, dict):
            return expr
        if set(expr) == {"Get"}:
            path = expr["Get"]
            if path.startswith("Parameters."):
                return self.params[path.removeprefix("Parameters.")]
            if path == "Execution.PipelineExecutionId":
                return self.execution_id
            if path.startswith("Steps."):
                step, _, prop = path.removeprefix("Steps.").partition(".")
                try:
                    return self.result.properties[step][prop]
                except KeyError:
                    raise StepFailed(f"{path}: step {step} has not produced it") from None
            raise StepFailed(f"unsupported reference {path}")
        if set(expr) == {"Std:Join"}:
            join = expr["Std:Join"]
            return join["On"].join(str(self.resolve(v)) for v in join["Values"])
        if set(expr) == {"Std:JsonGet"}:
            get = expr["Std:JsonGet"]
            document = self.resolve(get["PropertyFile"])
            value = document
            for part in get["Path"].split("."):
                value = value[int(part)] if isinstance(value, list) else value[part]
            return value
        return {k: self.resolve(v) for k, v in expr.items()}

    def local_path(self, uri: str) -> Path:
        """InputPrefix/... -> <data>/objects/...; any other s3://bucket/key -> objects/_s3/bucket/key."""
        root = str(self.params.get("InputPrefix", "")).rstrip("/")
        uri = str(uri).rstrip("/")
        if root and (uri == root or uri.startswith(root + "/")):
            return self.objects / uri[len(root):].lstrip("/")
        if uri.startswith("s3://"):
            return self.objects / "_s3" / uri.removeprefix("s3://")
        raise StepFailed(f"not an S3 URI: {uri}")

    def container(self, step: str, path: str) -> Path:
        """A container path (/opt/ml/...) re-rooted in the step's scratch folder."""
        return self.workdir / step / path.lstrip("/")

    # -- steps -----------------------------------------------------------------------------

    def run(self) -> RunResult:
        self._run_steps(self.definition["Steps"])
        return self.result

    def _run_steps(self, steps: list[dict]) -> None:
        done = {s.name for s in self.result.steps}
        pending = list(steps)
        while pending:
            ready = [s for s in pending if all(d in done for d in s.get("DependsOn", []))]
            if not ready:
                raise StepFailed(f"unsatisfiable DependsOn among {[s['Name'] for s in pending]}")
            step = ready[0]
            pending.remove(step)
            runner = {"Processing": self._processing, "Training": self._training, "Condition": self._condition,
                      "RegisterModel": self._register}.get(step["Type"])
            if runner is None:
                raise StepFailed(f"step {step['Name']}: type {step['Type']} is not supported by the local runner")
            self._say(f"[{step['Name']}] {step['Type']} ...")
            try:
                detail = runner(step)
            except Exception as exc:
                self.result.steps.append(StepResult(step["Name"], step["Type"], "Failed", str(exc)[:300]))
                raise
            self.result.steps.append(StepResult(step["Name"], step["Type"], "Succeeded", detail))
            done.add(step["Name"])

    def _subprocess(self, name: str, command: list[str], env: dict[str, str]) -> None:
        log = self.workdir / name / "step.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        full_env = {**os.environ, **env, "PARKCAST_DATA_DIR": str(self.data_dir), "PARKCAST_REGISTRY": "local",
                    "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                   os.environ.get("PYTHONPATH", "")])}
        with open(log, "w") as fh:
            # bandit B603: the step's command comes from the compiled pipeline definition, not from input.
            proc = subprocess.run(command, env=full_env, stdout=fh, stderr=subprocess.STDOUT)  # nosec B603
        lines = log.read_text().splitlines()
        if proc.returncode != 0:
            raise StepFailed(f"step {name} exited with {proc.returncode}:\n" + "\n".join(lines[-20:]))
        if lines:
            self._say(f"[{name}] {lines[-1]}")

    def _processing(self, step: dict) -> str:
        name, args = step["Name"], self.resolve(step["Arguments"])
        for item in args.get("ProcessingInputs", []):
            source = self.local_path(item["S3Input"]["S3Uri"])
            target = self.container(name, item["S3Input"]["LocalPath"])
            target.mkdir(parents=True, exist_ok=True)
            if source.exists():
                shutil.copytree(source, target, dirs_exist_ok=True)
        outputs = args.get("ProcessingOutputConfig", {}).get("Outputs", [])
        for item in outputs:
            self.container(name, item["S3Output"]["LocalPath"]).mkdir(parents=True, exist_ok=True)
        spec = args["AppSpecification"]
        command = [sys.executable if c in ("python", "python3") else c for c in spec["ContainerEntrypoint"]]
        command += [str(self.container(name, a)) if str(a).startswith("/opt/ml/") else str(a)
                    for a in spec.get("ContainerArguments", [])]
        self._subprocess(name, command, {k: str(v) for k, v in args.get("Environment", {}).items()})
        by_output = {}
        for item in outputs:
            local = self.container(name, item["S3Output"]["LocalPath"])
            shutil.copytree(local, self.local_path(item["S3Output"]["S3Uri"]), dirs_exist_ok=True)
            by_output[item["OutputName"]] = local
        props = self.result.properties.setdefault(name, {})
        for pf in step.get("PropertyFiles", []):
            path = by_output[pf["OutputName"]] / pf["FilePath"]
            props[f"PropertyFiles.{pf['PropertyFileName']}"] = json.loads(path.read_text())
        return ", ".join(f"{o['OutputName']} -> {o['S3Output']['S3Uri']}" for o in outputs)

    def _training(self, step: dict) -> str:
        name, args = step["Name"], self.resolve(step["Arguments"])
        env = {k: str(v) for k, v in args.get("Environment", {}).items()}
        module = env.get("PARKCAST_STEP_MODULE")
        if not module:
            raise StepFailed(f"step {name}: no PARKCAST_STEP_MODULE in its environment")
        for channel in args.get("InputDataConfig", []):
            target = self.container(name, f"/opt/ml/input/data/{channel['ChannelName']}")
            shutil.copytree(self.local_path(channel["DataSource"]["S3DataSource"]["S3Uri"]), target,
                            dirs_exist_ok=True)
            env[f"SM_CHANNEL_{channel['ChannelName'].upper()}"] = str(target)
        hps = {k: str(v) for k, v in args.get("HyperParameters", {}).items()}
        config_dir = self.container(name, "/opt/ml/input/config")
        config_dir.mkdir(parents=True, exist_ok=True)
        (config_dir / "hyperparameters.json").write_text(json.dumps(hps))
        model_dir = self.container(name, "/opt/ml/model")
        env.update(SM_HPS=json.dumps(hps), SM_MODEL_DIR=str(model_dir), SM_INPUT_CONFIG_DIR=str(config_dir))
        self._subprocess(name, [sys.executable, "-m", module], env)
        artifacts = "/".join([args["OutputDataConfig"]["S3OutputPath"].rstrip("/"), f"{name}-{self.execution_id}",
                              "output", "model"])
        shutil.copytree(model_dir, self.local_path(artifacts), dirs_exist_ok=True)
        self.result.properties.setdefault(name, {})["ModelArtifacts.S3ModelArtifacts"] = artifacts
        return f"model -> {artifacts}"

    def _condition(self, step: dict) -> str:
        compare = {"Equals": lambda a, b: a == b, "GreaterThan": lambda a, b: a > b,
                   "GreaterThanOrEqualTo": lambda a, b: a >= b, "LessThan": lambda a, b: a < b,
                   "LessThanOrEqualTo": lambda a, b: a <= b}
        outcome = True
        for condition in step["Arguments"]["Conditions"]:
            if condition["Type"] not in compare:
                raise StepFailed(f"condition type {condition['Type']} not supported")
            left, right = self.resolve(condition["LeftValue"]), self.resolve(condition["RightValue"])
            outcome = outcome and compare[condition["Type"]](left, right)
        branch, skipped = ("IfSteps", "ElseSteps") if outcome else ("ElseSteps", "IfSteps")
        for s in step["Arguments"][skipped]:
            self.result.steps.append(StepResult(s["Name"], s["Type"], "Skipped", f"{step['Name']} was {outcome}"))
        self.result.properties.setdefault(step["Name"], {})["Outcome"] = outcome
        self._run_steps(step["Arguments"][branch])
        return f"outcome {outcome}"

    def _register(self, step: dict) -> str:
        args = self.resolve(step["Arguments"])
        if args.get("ModelApprovalStatus") != ApprovalStatus.PENDING.value:
            raise StepFailed(f"RegisterModel must register as {ApprovalStatus.PENDING.value}, "
                             f"not {args.get('ModelApprovalStatus')}")
        model_dir = self.local_path(args["InferenceSpecification"]["Containers"][0]["ModelDataUrl"])
        metrics_file = self.local_path(args["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"])
        metadata = args.get("CustomerMetadataProperties", {})
        metrics, lineage = registration(json.loads(metrics_file.read_text()),
                                        json.loads((model_dir / "manifest.json").read_text()),
                                        metadata.get("lineage:run_id", self.execution_id),
                                        metadata.get("lineage:code_version", ""))
        version = self.registry.register(args["ModelPackageGroupName"], model_dir.as_uri(), metrics, lineage)
        self.result.registered_version = version.version
        return f"version {version.version} ({version.status}) in {args['ModelPackageGroupName']}"

    def _say(self, text: str) -> None:
        if self.echo:
            print(text, flush=True)

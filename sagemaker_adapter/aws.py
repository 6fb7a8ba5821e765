"""Create-or-update and start the compiled pipeline in SageMaker (boto3)."""

from __future__ import annotations

import json
from typing import Any


def _client(client: Any, region: str):
    if client is not None:
        return client
    import boto3

    return boto3.client("sagemaker", region_name=region)


def upsert_pipeline(name: str, definition: str, role_arn: str, client: Any = None, region: str = "eu-west-2",
                    description: str = "parkcast daily pipeline, compiled from the Dagster asset graph") -> str:
    json.loads(definition)  # refuse a broken file before calling AWS
    sm = _client(client, region)
    try:
        sm.describe_pipeline(PipelineName=name)
        exists = True
    except sm.exceptions.ResourceNotFound:
        exists = False
    except sm.exceptions.ClientError as exc:  # some endpoints answer a plain ValidationException
        if not any(text in str(exc).lower() for text in ("does not exist", "not found", "could not find")):
            raise
        exists = False
    kwargs = {"PipelineName": name, "PipelineDefinition": definition, "RoleArn": role_arn,
              "PipelineDescription": description}
    response = sm.update_pipeline(**kwargs) if exists else sm.create_pipeline(**kwargs)
    return response["PipelineArn"]


def start_pipeline(name: str, parameters: dict[str, str] | None = None, client: Any = None,
                   region: str = "eu-west-2") -> str:
    sm = _client(client, region)
    response = sm.start_pipeline_execution(
        PipelineName=name,
        PipelineParameters=[{"Name": k, "Value": str(v)} for k, v in (parameters or {}).items()],
    )
    return response["PipelineExecutionArn"]

"""checkov skips as template metadata: each names the check and says why it does not apply,
next to the resource it concerns, so a new finding fails the test instead of hiding."""

from __future__ import annotations

from aws_cdk import CfnResource, Stack
from constructs import IConstruct


def skip_checks(construct: IConstruct, reasons: dict[str, str]) -> None:
    resource = construct if isinstance(construct, CfnResource) else construct.node.default_child
    if not isinstance(resource, CfnResource):
        raise TypeError(f"{construct.node.path} has no CloudFormation resource to annotate")
    skips = (resource.get_metadata("checkov") or {}).get("skip", [])
    known = {s["id"] for s in skips}
    skips += [{"id": check, "comment": why} for check, why in sorted(reasons.items()) if check not in known]
    resource.add_metadata("checkov", {"skip": skips})


BUCKET_DEPLOYMENT_REASONS = {
    "CKV_AWS_115": "CDK's BucketDeployment handler: runs only during a deploy, one invocation per deployment",
    "CKV_AWS_116": "CDK's BucketDeployment handler: a CloudFormation custom resource, failures fail the deploy",
    "CKV_AWS_117": "CDK's BucketDeployment handler: calls only S3 and CloudFront APIs, no VPC resources",
    "CKV_AWS_173": "CDK's BucketDeployment handler: its environment holds no secrets",
    "CKV_AWS_111": "CDK's BucketDeployment handler: CloudFront invalidation APIs on '*' are what CDK grants it",
}


def skip_cdk_handlers(stack: Stack) -> None:
    """CDK's own BucketDeployment function (and its policy) in this stack: code we do not write."""
    for construct in stack.node.find_all():
        if "Custom::CDKBucketDeployment" in construct.node.path and isinstance(construct, CfnResource):
            if construct.cfn_resource_type == "AWS::Lambda::Function":
                skip_checks(construct, {k: v for k, v in BUCKET_DEPLOYMENT_REASONS.items() if k != "CKV_AWS_111"})
            elif construct.cfn_resource_type == "AWS::IAM::Policy":
                skip_checks(construct, {"CKV_AWS_111": BUCKET_DEPLOYMENT_REASONS["CKV_AWS_111"]})

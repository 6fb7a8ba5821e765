"""Web: the dashboard's private bucket behind CloudFront (origin access control). The files
themselves are published by the services stack, which knows the API URL the page needs."""

from __future__ import annotations

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.guards import skip_checks
from infra.settings import InfraSettings
from infra.stacks.data import secure_bucket


class WebStack(Stack):
    def __init__(self, scope: Construct, id: str, settings: InfraSettings, logs: s3.IBucket, **kwargs) -> None:
        super().__init__(scope, id, **kwargs)
        # Built from the repo on every deploy: nothing here is data worth keeping.
        self.bucket = secure_bucket(self, "Site", logs, removal_policy=RemovalPolicy.DESTROY)
        self.distribution = cloudfront.Distribution(
            self, "Distribution", comment=f"{settings.name} dashboard",
            default_root_object="index.html",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_origin_access_control(self.bucket),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED,
                response_headers_policy=cloudfront.ResponseHeadersPolicy.SECURITY_HEADERS),
            minimum_protocol_version=cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021,
            price_class=cloudfront.PriceClass.PRICE_CLASS_100,
            enable_logging=True, log_bucket=logs, log_file_prefix="cloudfront/")
        skip_checks(self.distribution, {
            "CKV_AWS_174": "the default *.cloudfront.net certificate allows TLS 1.0 viewers; a custom domain with "
                           "its own certificate gets TLSv1.2_2021 (set in docs/deploy-aws.md)",
            "CKV_AWS_68": "a static, read-only dashboard: WAF (from about $6/month) protects nothing the API's own "
                          "throttling does not; add a web ACL when the site gets a custom domain",
            "CKV2_AWS_47": "same as CKV_AWS_68: no WAF on a static read-only dashboard",
            "CKV_AWS_310": "one origin: a failover group needs a second bucket in another region for a static page",
            "CKV_AWS_374": "car parks can be anywhere; no country is excluded",
        })
        self.origin = f"https://{self.distribution.distribution_domain_name}"
        CfnOutput(self, "DashboardUrl", value=self.origin, description="the dashboard")

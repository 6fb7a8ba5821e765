"""parkcast's AWS deployment as code: an AWS CDK v2 app (Python). See docs/deploy-aws.md."""

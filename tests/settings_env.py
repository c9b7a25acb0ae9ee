"""The Lambda settings environment the tests load (unit and integration alike), written once."""

from __future__ import annotations

ROLE_ARN = "arn:aws:iam::123456789012:role/sagedock-sagemaker"
AUTH_ARN = "arn:aws:lambda:us-east-1:123456789012:function:sagedock-registry-auth"

# Every variable a deployment must set.
REQUIRED = {
    "SAGEDOCK_SOURCE_BUCKET": "sagedock-source",
    "SAGEDOCK_DATA_BUCKET": "sagedock-data",
    "SAGEDOCK_ARTIFACT_BUCKET": "sagedock-artifacts",
    "SAGEDOCK_RUNS_TABLE": "sagedock-runs",
    "SAGEDOCK_IDEMPOTENCY_TABLE": "sagedock-idempotency",
    "SAGEDOCK_CODEBUILD_PROJECT": "sagedock-build",
    "SAGEDOCK_SAGEMAKER_ROLE_ARN": ROLE_ARN,
}
# What private-registry mode adds.
PRIVATE = {
    "SAGEDOCK_PRIVATE_REGISTRY": "registry.example.com",
    "SAGEDOCK_REGISTRY_AUTH_FUNCTION_ARN": AUTH_ARN,
    "SAGEDOCK_SUBNET_IDS": "subnet-0a,subnet-0b",
    "SAGEDOCK_SECURITY_GROUP_IDS": "sg-0c",
    "SAGEDOCK_REGISTRY_SECRET_ID": "sagedock/registry",
}

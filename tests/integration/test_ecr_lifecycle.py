"""Every project repository gets the lifecycle policy, whether the build created it or found it."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from chalicelib.adapters.ecr import KEEP_IMAGES, LIFECYCLE_POLICY, Ecr


@pytest.mark.parametrize("existed", [False, True], ids=["created", "found"])
def test_the_repository_has_the_lifecycle_policy(aws_env: None, existed: bool) -> None:
    with mock_aws():
        client = boto3.client("ecr")
        if existed:  # created before the lifecycle policy existed: the next build sets it
            client.create_repository(repositoryName="sagedock/dev/iris")
        uri = Ecr(client).ensure_repository("sagedock/dev/iris", project="iris")
        assert uri.endswith("/sagedock/dev/iris")
        text = client.get_lifecycle_policy(repositoryName="sagedock/dev/iris")["lifecyclePolicyText"]
    assert json.loads(text) == json.loads(LIFECYCLE_POLICY)
    rules = json.loads(text)["rules"]
    assert rules[0]["selection"]["tagStatus"] == "untagged"
    assert rules[-1]["selection"] == {
        "tagStatus": "any",
        "countType": "imageCountMoreThan",
        "countNumber": KEEP_IMAGES,
    }

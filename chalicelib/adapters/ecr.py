"""ECR adapter: one repository per project, scanned on push, run tags immutable (the cache tag excepted)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from chalicelib.adapters.clients import error_code, translate
from chalicelib.domain.models import ScanResult
from chalicelib.domain.names import CACHE_TAG

# The buildspec pushes this tag as its layer cache on every build; every other tag (the run ids) is immutable.
# The lifecycle every project repository gets (repositories are created here, by CreateRepository, which
# ECR's repository creation templates do not apply to): untagged images (layer caches the `latest` tag
# moved off) go after a week; of the rest, the newest KEEP_IMAGES stay, so an endpoint's image outlives
# many retrains (SageMaker pulls it again whenever it replaces or adds an instance).
UNTAGGED_DAYS = 7
KEEP_IMAGES = 100
LIFECYCLE_POLICY = json.dumps(
    {
        "rules": [
            {
                "rulePriority": 1,
                "description": "untagged layer caches",
                "selection": {
                    "tagStatus": "untagged",
                    "countType": "sinceImagePushed",
                    "countUnit": "days",
                    "countNumber": UNTAGGED_DAYS,
                },
                "action": {"type": "expire"},
            },
            {
                "rulePriority": 2,
                "description": f"all but the newest {KEEP_IMAGES} images",
                "selection": {
                    "tagStatus": "any",
                    "countType": "imageCountMoreThan",
                    "countNumber": KEEP_IMAGES,
                },
                "action": {"type": "expire"},
            },
        ]
    },
    sort_keys=True,
)

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient


class Ecr:
    """Creates repositories on demand (idempotently) and answers their URIs."""

    def __init__(self, client: ECRClient) -> None:
        self._client = client

    def ensure_repository(self, name: str, *, project: str) -> str:
        """The repository's URI, creating it the first time a project builds; its lifecycle set each time."""
        uri = self._create_or_describe(name, project=project)
        try:
            # Idempotent, and set on every build so a repository created before its policy existed gets it.
            self._client.put_lifecycle_policy(repositoryName=name, lifecyclePolicyText=LIFECYCLE_POLICY)
        except ClientError as exc:
            raise translate(exc, f"setting the lifecycle policy of ECR repository {name}") from exc
        return uri

    def _create_or_describe(self, name: str, *, project: str) -> str:
        try:
            response = self._client.create_repository(
                repositoryName=name,
                imageTagMutability="IMMUTABLE_WITH_EXCLUSION",
                imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": CACHE_TAG}],
                imageScanningConfiguration={"scanOnPush": True},
                tags=[{"Key": "sagedock:project", "Value": project}],
            )
            return response["repository"]["repositoryUri"]
        except ClientError as exc:
            if error_code(exc) != "RepositoryAlreadyExistsException":
                raise translate(exc, f"creating ECR repository {name}") from exc
        try:
            described = self._client.describe_repositories(repositoryNames=[name])
        except ClientError as exc:
            raise translate(exc, f"describing ECR repository {name}") from exc
        return described["repositories"][0]["repositoryUri"]

    def scan_result(self, repository: str, digest: str) -> ScanResult | None:
        """The image's scan on push as it stands now; None while ECR has not scanned it yet."""
        try:
            found = self._client.describe_image_scan_findings(
                repositoryName=repository, imageId={"imageDigest": digest}, maxResults=1
            )
        except ClientError as exc:
            if error_code(exc) in ("ScanNotFoundException", "ImageNotFoundException"):
                return None
            raise translate(exc, f"reading the scan of {repository}@{digest}") from exc
        status = str(found.get("imageScanStatus", {}).get("status", ""))
        counts = found.get("imageScanFindings", {}).get("findingSeverityCounts", {})
        return ScanResult(digest=digest, status=status, counts={k: int(v) for k, v in counts.items()})

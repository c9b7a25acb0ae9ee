"""Pre-flight rules, each at and past its limit: what SageMaker would refuse is refused first, all at once."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from chalicelib.adapters import s3_channels
from chalicelib.adapters.instance_types import instance_types
from chalicelib.domain import limits
from chalicelib.domain import preflight_rules as preflight
from chalicelib.domain.errors import ManifestInvalid, TransientError, UpstreamError
from chalicelib.domain.manifest import Manifest, parse_manifest
from chalicelib.domain.preflight_rules import PreflightFailed, Problem

DATA = "sagedock-data"


def parse(text: str, project: str = "iris") -> Manifest:
    return parse_manifest(text, project=project, instance_types=instance_types)


def refused(text: str) -> str:
    with pytest.raises(ManifestInvalid) as caught:
        parse(text)
    return caught.value.message


# --- instance types: the sets of botocore's SageMaker model -----------------------------------------------
def test_the_instance_type_sets_come_from_botocores_sagemaker_model() -> None:
    known = instance_types()
    assert {"ml.m5.large", "ml.p4d.24xlarge", "ml.g5.xlarge"} <= known.training
    assert {"ml.t2.medium", "ml.m5.large", "ml.inf2.xlarge"} <= known.hosting
    # ml.t2 hosts but does not train; ml.inf2 serves only
    assert "ml.t2.medium" not in known.training and "ml.inf2.xlarge" not in known.training
    assert known.source.startswith("botocore ")


def test_a_hosting_only_type_is_refused_for_training_and_accepted_for_hosting() -> None:
    message = refused("[train]\ninstance_type = 'ml.t2.medium'\n")
    assert "train.instance_type: 'ml.t2.medium' is not a SageMaker training instance type" in message
    assert parse("[deploy]\ninstance_type = 'ml.t2.medium'\n").deploy.instance_type == "ml.t2.medium"


def test_an_unknown_size_names_the_sizes_its_family_offers() -> None:
    message = refused("[deploy]\ninstance_type = 'ml.m5.huge'\n")
    assert "deploy.instance_type: 'ml.m5.huge' is not a SageMaker hosting instance type" in message
    assert "ml.m5.large" in message and "ml.m5.xlarge" in message
    assert "upgrade botocore" in message


# --- numbers and lengths, at and past each limit ----------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("[train]\ninstance_count = 1", True),
        ("[train]\ninstance_count = 0", False),
        ("[train]\nvolume_size_gb = 1", True),
        ("[train]\nvolume_size_gb = 0", False),
        (f"[train]\nmax_runtime_seconds = {limits.MAX_RUNTIME_SECONDS}", True),
        (f"[train]\nmax_runtime_seconds = {limits.MAX_RUNTIME_SECONDS + 1}", False),
        ("[deploy]\ninitial_instance_count = 1", True),
        ("[deploy]\ninitial_instance_count = 0", False),
        ("[deploy]\nstartup_health_timeout_seconds = 60", True),
        ("[deploy]\nstartup_health_timeout_seconds = 59", False),
        ("[deploy]\nstartup_health_timeout_seconds = 3600", True),
        ("[deploy]\nstartup_health_timeout_seconds = 3601", False),
        ("[deploy.serverless]\nmemory_size_mb = 6144", True),
        ("[deploy.serverless]\nmemory_size_mb = 7168", False),
        ("[deploy.serverless]\nmemory_size_mb = 1536", False),
        ("[deploy.serverless]\nmax_concurrency = 200", True),
        ("[deploy.serverless]\nmax_concurrency = 201", False),
        ("[deploy]\nendpoint_name = '" + "e" * 63 + "'", True),
        ("[deploy]\nendpoint_name = '" + "e" * 64 + "'", False),
        ("[train.channels]\n" + "c" * 64 + " = 'p/'", True),
        ("[train.channels]\n" + "c" * 65 + " = 'p/'", False),
    ],
)
def test_each_limit_accepts_its_bound_and_refuses_past_it(text: str, ok: bool) -> None:
    if ok:
        parse(text)
    else:
        refused(text)


@pytest.mark.parametrize(
    ("count", "ok"), [(limits.MAX_HYPERPARAMETERS, True), (limits.MAX_HYPERPARAMETERS + 1, False)]
)
def test_at_most_100_hyperparameters(count: int, ok: bool) -> None:
    text = "[train.hyperparameters]\n" + "".join(f"h{i} = {i}\n" for i in range(count))
    if ok:
        assert len(parse(text).train.hyperparameters) == count
    else:
        assert "train.hyperparameters" in refused(text)


@pytest.mark.parametrize("what", ["key", "value"])
@pytest.mark.parametrize(("length", "ok"), [(256, True), (257, False)])
def test_hyperparameter_keys_and_values_are_at_most_256_characters(what: str, length: int, ok: bool) -> None:
    key, value = ("k" * length, "v") if what == "key" else ("k", "v" * length)
    text = f"[train.hyperparameters]\n{key} = '{value}'\n"
    if ok:
        parse(text)
    else:
        assert "at most 256 characters" in refused(text)


@pytest.mark.parametrize(("count", "ok"), [(limits.MAX_CHANNELS, True), (limits.MAX_CHANNELS + 1, False)])
def test_at_most_20_channels(count: int, ok: bool) -> None:
    text = "[train.channels]\n" + "".join(f"c{i} = 'p{i}/'\n" for i in range(count))
    if ok:
        assert len(parse(text).train.channels) == count
    else:
        assert "train.channels" in refused(text)


def test_every_limit_problem_is_reported_at_once() -> None:
    message = refused(
        "[train]\ninstance_type = 'ml.t2.medium'\nmax_runtime_seconds = 0\n"
        "[deploy]\ninstance_type = 'ml.m5.huge'\nstartup_health_timeout_seconds = 5\n"
    )
    for key in (
        "train.instance_type",
        "train.max_runtime_seconds",
        "deploy.instance_type",
        "deploy.startup_health_timeout_seconds",
    ):
        assert f"{key}:" in message


# --- derived names ----------------------------------------------------------------------------------------
def test_names_derived_from_the_longest_project_fit_sagemakers_63_characters() -> None:
    run_id = "p" * 40 + "-0123456789ab"
    assert preflight.name_problems(run_id, attempt=99_999_999) == []


def test_a_derived_name_past_63_characters_is_refused_naming_each() -> None:
    run_id = "p" * 60 + "-0123456789ab"
    problems = preflight.name_problems(run_id)
    assert [p.code for p in problems] == ["NameTooLong"] * 3
    assert "training job" in problems[0].message and "76 characters" in problems[0].message


# --- channels ---------------------------------------------------------------------------------------------
class FakeS3:
    """ListObjectsV2 answers by bucket and prefix; buckets named in `errors` refuse with that code."""

    def __init__(self, objects: dict[str, list[str]], errors: dict[str, str] | None = None) -> None:
        self.objects = objects
        self.errors = errors or {}
        self.calls: list[dict[str, Any]] = []

    def list_objects_v2(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        bucket = kwargs["Bucket"]
        if bucket in self.errors:
            status = 503 if self.errors[bucket] == "SlowDown" else 400
            raise ClientError(
                {"Error": {"Code": self.errors[bucket]}, "ResponseMetadata": {"HTTPStatusCode": status}},
                "ListObjectsV2",
            )
        keys = [k for k in self.objects.get(bucket, []) if k.startswith(kwargs["Prefix"])]
        keys = keys[: kwargs["MaxKeys"]]
        return {"KeyCount": len(keys), **({"Contents": [{"Key": k} for k in keys]} if keys else {})}


def test_a_channel_with_data_passes_with_one_request_of_one_key() -> None:
    s3 = FakeS3({DATA: ["iris/train/a.csv", "iris/train/b.csv"]})
    assert s3_channels.channel_problems(s3, {"train": f"s3://{DATA}/iris/train/"}, data_bucket=DATA) == []
    assert s3.calls == [{"Bucket": DATA, "Prefix": "iris/train/", "MaxKeys": 1}]


def test_every_empty_channel_is_named_with_its_uri_and_the_ways_to_fix_it() -> None:
    s3 = FakeS3({DATA: ["iris/train/a.csv"]}, errors={"gone": "NoSuchBucket"})
    channels = {
        "train": f"s3://{DATA}/iris/train/",
        "validation": f"s3://{DATA}/iris/validation/",
        "extra": "s3://gone/extra/",
    }
    problems = s3_channels.channel_problems(s3, channels, data_bucket=DATA)
    assert [(p.code, p.field) for p in problems] == [
        ("EmptyChannel", "train.channels.extra"),
        ("EmptyChannel", "train.channels.validation"),
    ]
    assert "s3://gone/extra/" in problems[0].message and "bucket gone does not exist" in problems[0].message
    message = problems[1].message
    assert f"s3://{DATA}/iris/validation/" in message
    assert f"aws s3 cp --recursive ./data/ s3://{DATA}/iris/validation/" in message
    assert "channels = {}" in message


def test_a_channel_in_a_bucket_sagedock_may_not_list_is_left_to_sagemaker() -> None:
    s3 = FakeS3({}, errors={"partner-data": "AccessDenied"})
    assert s3_channels.channel_problems(s3, {"x": "s3://partner-data/x/"}, data_bucket=DATA) == []


def test_a_data_bucket_sagedock_may_not_list_is_a_deployment_error() -> None:
    s3 = FakeS3({}, errors={DATA: "AccessDenied"})
    with pytest.raises(UpstreamError) as caught:
        s3_channels.channel_problems(s3, {"train": f"s3://{DATA}/t/"}, data_bucket=DATA)
    assert caught.value.code == "AccessDenied"


def test_throttling_is_transient() -> None:
    s3 = FakeS3({}, errors={DATA: "SlowDown"})
    with pytest.raises(TransientError):
        s3_channels.channel_problems(s3, {"train": f"s3://{DATA}/t/"}, data_bucket=DATA)


def test_the_channels_of_a_training_request_are_the_ones_checked_before_it_is_sent() -> None:
    request = {
        "InputDataConfig": [
            {"ChannelName": "train", "DataSource": {"S3DataSource": {"S3Uri": "s3://b/t/"}}},
            {"ChannelName": "test", "DataSource": {"S3DataSource": {"S3Uri": "s3://b/v/"}}},
        ]
    }
    assert preflight.training_channels(request) == {"train": "s3://b/t/", "test": "s3://b/v/"}
    assert preflight.training_channels({}) == {}


# --- endpoint ownership -----------------------------------------------------------------------------------
class World:
    """The runs table's endpoint owners and the endpoints SageMaker has, with their project tags."""

    def __init__(self, owners: dict[str, str], endpoints: dict[str, str | None]) -> None:
        self.owners = owners
        self.endpoints = endpoints
        self.sagemaker_calls = 0

    def owner_run(self, name: str) -> str | None:
        return self.owners.get(name)

    def endpoint_tags(self, name: str) -> dict[str, str] | None:
        self.sagemaker_calls += 1
        if name not in self.endpoints:
            return None
        project = self.endpoints[name]
        return {"team": "ml", **({"sagedock:project": project} if project else {})}

    def check(self, text: str = "", project: str = "iris") -> list[Problem]:
        return preflight.endpoint_problems(
            parse(text, project), project, owner_run=self.owner_run, endpoint_tags=self.endpoint_tags
        )


def test_an_endpoint_this_project_deployed_last_is_free_without_asking_sagemaker() -> None:
    world = World({"iris": "iris-0123456789ab"}, {"iris": "iris"})
    assert world.check() == []
    assert world.sagemaker_calls == 0


def test_a_new_endpoint_is_free() -> None:
    assert World({}, {}).check() == []


def test_an_endpoint_another_project_deployed_is_refused() -> None:
    world = World({"shared": "other-team-0123456789ab"}, {"shared": "other-team"})
    (problem,) = world.check("[deploy]\nendpoint_name = 'shared'\n")
    assert problem.code == "EndpointOwned" and problem.field == "deploy.endpoint_name"
    assert "deployed by project 'other-team'" in problem.message
    assert "claim_endpoint = true" in problem.message


def test_the_tag_names_the_owner_when_the_runs_table_does_not() -> None:
    assert World({}, {"iris": "iris"}).check() == []
    (problem,) = World({}, {"iris": "kiwi"}).check()
    assert "deployed by project 'kiwi'" in problem.message


def test_an_endpoint_made_outside_sagedock_is_refused() -> None:
    (problem,) = World({}, {"iris": None}).check()
    assert "was not deployed by sagedock" in problem.message


def test_an_owner_record_of_a_deleted_endpoint_does_not_block() -> None:
    assert World({"iris": "kiwi-0123456789ab"}, {}).check() == []


def test_claiming_takes_over_and_disabled_deploys_are_not_checked() -> None:
    world = World({"shared": "kiwi-0123456789ab"}, {"shared": "kiwi"})
    assert world.check("[deploy]\nendpoint_name = 'shared'\nclaim_endpoint = true\n") == []
    assert world.check("[deploy]\nendpoint_name = 'shared'\nenabled = false\n") == []
    assert world.sagemaker_calls == 0


# --- the failure a run records ----------------------------------------------------------------------------
def test_problems_sharing_a_code_keep_it_and_mixed_ones_say_preflight() -> None:
    empty = Problem("EmptyChannel", "train.channels.a", "no data")
    same = PreflightFailed([empty, Problem("EmptyChannel", "train.channels.b", "no data")])
    assert same.code == "EmptyChannel"
    assert same.message == "train.channels.a: no data; train.channels.b: no data"
    mixed = PreflightFailed([empty, Problem("EndpointOwned", "deploy.endpoint_name", "taken")])
    assert mixed.code == "PreflightFailed" and len(mixed.problems) == 2

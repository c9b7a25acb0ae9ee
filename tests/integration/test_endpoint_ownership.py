"""Endpoint ownership at deploy: a project that deployed to an endpoint after another's run was validated
keeps it; that run ends FAILED at deploy with EndpointOwned and changes nothing, unless it claims it."""

from __future__ import annotations

from typing import Any

import pytest
from moto_cloud import REGION, Cloud, make_bundle

from chalicelib.domain.errors import Conflict
from chalicelib.services import get_services
from sagedock.eventshapes import ecr_image_action, endpoint_state, training_state

DIGEST = "sha256:" + "ab" * 32
SHARED = b'[train.channels]\ntrain = "iris/train/"\n[deploy]\nendpoint_name = "shared"\n'
CLAIMS = SHARED + b"claim_endpoint = true\n"


def validated(cloud: Cloud, project: str, name: str, manifest: bytes = SHARED) -> str:
    """A run of `project` past validate (its build started); its id."""
    key = f"bundles/{project}/{name}.zip"
    outcome = cloud.send("bundle_uploaded", cloud.upload(key, make_bundle({"sagedock.toml": manifest})))
    assert outcome["action"] == "build started", outcome
    return str(outcome["run_id"])


def trained(cloud: Cloud, run_id: str) -> dict[str, Any]:
    """The run's image pushed and its training job completed: the event that starts its deploy."""
    project = cloud.run(run_id)["project"]
    cloud.send("image_pushed", ecr_image_action(f"sagedock/{project}", DIGEST, run_id))
    job = cloud.run(run_id)["training_job_name"]
    return training_state(job, "Completed", tags={"sagedock:run-id": run_id})


def moto_endpoint(name: str) -> Any:
    from moto.backends import get_backend

    return get_backend("sagemaker")["123456789012"][REGION].endpoints[name]


@pytest.fixture
def updates(cloud: Cloud, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """UpdateEndpoint calls, applied to moto's endpoint (moto has no UpdateEndpoint)."""
    calls: list[dict[str, Any]] = []

    def update_endpoint(**kwargs: Any) -> dict[str, Any]:
        calls.append(kwargs)
        endpoint = moto_endpoint(kwargs["EndpointName"])
        endpoint.endpoint_config_name = kwargs["EndpointConfigName"]
        return {"EndpointArn": endpoint.arn}

    monkeypatch.setattr(cloud.sagemaker.inner, "update_endpoint", update_endpoint, raising=False)
    return calls


def test_a_run_validated_before_another_project_deployed_is_refused_at_deploy(
    cloud: Cloud, updates: list[dict[str, Any]]
) -> None:
    # Given kiwi's runs validated while endpoint "shared" did not exist (one of them claims it)
    kiwi = validated(cloud, "kiwi", "v1")
    claiming = validated(cloud, "kiwi", "v2", CLAIMS)
    # and then iris deployed "shared", its training event delivered twice (a replay of its own deploy)
    iris = validated(cloud, "iris", "v1")
    done = trained(cloud, iris)
    assert cloud.send("training_state_changed", done)["action"] == "deploy started"
    replayed = cloud.send("training_state_changed", done)
    assert replayed["action"] == "deploying" and replayed["endpoint"] == "shared", replayed
    assert len(cloud.sagemaker.named("create_endpoint")) == 1
    cloud.send("endpoint_state_changed", endpoint_state("shared", iris, "IN_SERVICE"))
    assert cloud.run(iris)["status"] == "SUCCEEDED"

    # When kiwi's first run reaches deploy
    outcome = cloud.send("training_state_changed", trained(cloud, kiwi))

    # Then it ends FAILED at deploy with EndpointOwned, naming the owner and the way out
    assert outcome["action"] == "failed" and outcome["code"] == "EndpointOwned", outcome
    error = cloud.run(kiwi)["error"]
    assert error["stage"] == "deploy" and error["code"] == "EndpointOwned"
    assert "project 'iris'" in error["message"] and "claim_endpoint = true" in error["message"]
    # and nothing was created or updated: iris's endpoint serves iris's config, iris still owns it
    assert {c["ModelName"] for c in cloud.sagemaker.named("create_model")} == {iris}
    assert len(cloud.sagemaker.named("create_endpoint")) == 1 and updates == []
    assert moto_endpoint("shared").endpoint_config_name == iris
    assert get_services().runs.endpoint_owner("shared") == iris

    # When the run that claims it reaches deploy, it takes the endpoint over
    claimed = cloud.send("training_state_changed", trained(cloud, claiming))
    assert claimed["action"] == "deploy started", claimed
    assert updates == [{"EndpointName": "shared", "EndpointConfigName": claiming}]
    assert get_services().runs.endpoint_owner("shared") == claiming


def test_two_projects_passing_the_check_at_once_cannot_both_deploy(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given kiwi's run, validated before anyone deployed "shared", passes the check at deploy
    kiwi = validated(cloud, "kiwi", "v1")
    iris = "iris-0123456789ab"
    create_config = cloud.sagemaker.inner.create_endpoint_config

    def meanwhile(**kwargs: Any) -> Any:
        # while kiwi creates its endpoint config, an iris run records itself as the endpoint's owner
        get_services().runs.set_endpoint_owner("shared", iris)
        return create_config(**kwargs)

    monkeypatch.setattr(cloud.sagemaker.inner, "create_endpoint_config", meanwhile)

    # When kiwi records itself as the owner, just before its endpoint call
    outcome = cloud.send("training_state_changed", trained(cloud, kiwi))

    # Then the conditional write refuses it, and kiwi's endpoint call is never made
    assert outcome["action"] == "failed" and outcome["code"] == "EndpointOwned", outcome
    assert "project 'iris'" in cloud.run(kiwi)["error"]["message"]
    assert cloud.sagemaker.named("create_endpoint") == [] and cloud.sagemaker.named("update_endpoint") == []
    assert get_services().runs.endpoint_owner("shared") == iris


def test_the_owner_record_is_conditional_on_the_exact_project(cloud: Cloud) -> None:
    runs = get_services().runs
    runs.set_endpoint_owner("e", "iris-0123456789ab")  # absent: recorded
    runs.set_endpoint_owner("e", "iris-0123456789ab")  # the same run again (a replay)
    runs.set_endpoint_owner("e", "iris-ba9876543210")  # another run of the same project
    # a project whose name starts with the owner's ("iris-data") is another project
    with pytest.raises(Conflict):
        runs.set_endpoint_owner("e", "iris-data-0123456789ab")
    with pytest.raises(Conflict):
        runs.set_endpoint_owner("e", "iri-0123456789ab")
    assert runs.endpoint_owner("e") == "iris-ba9876543210"
    runs.set_endpoint_owner("e", "iris-data-0123456789ab", take_over=True)  # a claim
    with pytest.raises(Conflict):
        runs.set_endpoint_owner("e", "iris-0123456789ab")
    assert runs.endpoint_owner("e") == "iris-data-0123456789ab"

"""Blue/green updates on the local cloud, driven from outside: a canary update that shifts its traffic and
ends SUCCEEDED, and one whose rollback alarm a test sets to ALARM through the emulator's CloudWatch, which
rolls back with the endpoint still serving the previous config."""

from __future__ import annotations

import io
import re
import zipfile
from typing import Any

import pytest
from localcloud import ROOT, LocalCloudProcess, wait_until

from sagedock.commands.submit import zip_directory
from tests.alarms import put_rollback_alarm

pytestmark = pytest.mark.slow

RUN_TIMEOUT = 300.0
ENDPOINT = "guarded"
ALARM = "guarded-5xx"
ROW = b"5.1,3.5,1.4,0.2\n"
MANIFEST = """
[train]
hyperparameters = {{ max_leaf_nodes = 5, criterion = "gini" }}
[train.channels]
train = "iris/train/"
[deploy]
endpoint_name = "guarded"
instance_type = "ml.t2.medium"
initial_instance_count = 2
startup_health_timeout_seconds = 120
{update}
"""


def bundle(update: str, *, build: str = "", endpoint: str = ENDPOINT) -> bytes:
    """The sample container with a manifest of its own: same code, a new bundle (so a new run) each time."""
    source = zipfile.ZipFile(io.BytesIO(zip_directory(ROOT / "container")))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            if item.filename != "sagedock.toml":
                target.writestr(item, source.read(item))
        manifest = build + MANIFEST.format(update=update).replace(f'"{ENDPOINT}"', f'"{endpoint}"')
        target.writestr("sagedock.toml", manifest)
    return out.getvalue()


def submit(cloud: LocalCloudProcess, name: str, update: str) -> str:
    key = cloud.upload("guarded", bundle(update), name)
    return cloud.run_for_key("guarded", key)


def host_log(cloud: LocalCloudProcess) -> str:
    """What the local cloud logged (its hosting executor says how the traffic moves)."""
    return (cloud.state_dir / "local-up.stderr").read_text()


@pytest.fixture(scope="module")
def first(local_cloud: LocalCloudProcess) -> dict[str, Any]:
    """The endpoint in service on a first run, and the user's alarm on it (OK: no data yet)."""
    put_rollback_alarm(local_cloud.aws("cloudwatch"), ALARM, ENDPOINT)
    run = local_cloud.wait_run(submit(local_cloud, "v1", ""), RUN_TIMEOUT)
    assert run["status"] == "SUCCEEDED", run.get("error")
    return run


@pytest.fixture(scope="module")
def canary(local_cloud: LocalCloudProcess, first: dict[str, Any]) -> dict[str, Any]:
    """A second run updating the endpoint by a 50% canary baked for a few seconds, its alarm quiet."""
    update = (
        '[deploy.update]\nstrategy = "canary"\ncanary_percent = 50\nwait_interval_seconds = 3\n'
        f'rollback_alarms = ["{ALARM}"]\n'
    )
    run_id = submit(local_cloud, "v2", update)
    sagemaker = local_cloud.aws("sagemaker")
    wait_until(
        lambda: sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointStatus"] == "Updating",
        timeout=RUN_TIMEOUT,
        what="the canary update to start",
    )
    # The endpoint answers throughout the update, from the old serve or (once healthy) the canary
    answers = [local_cloud.api.invoke(ENDPOINT, ROW, content_type="text/csv")[1] for _ in range(6)]
    return {"run": local_cloud.wait_run(run_id, RUN_TIMEOUT), "answers": answers}


def test_a_canary_update_shifts_its_traffic_in_steps_and_succeeds(
    local_cloud: LocalCloudProcess, canary: dict[str, Any]
) -> None:
    run = canary["run"]
    assert run["status"] == "SUCCEEDED", run.get("error")
    assert all(b"setosa" in answer for answer in canary["answers"]), canary["answers"]
    endpoint = local_cloud.aws("sagemaker").describe_endpoint(EndpointName=ENDPOINT)
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"] == run["endpoint_config_name"]
    # The new serve took half the traffic, baked, then all of it
    shifted = re.findall(
        rf"endpoint {ENDPOINT}: (\d+)% of the traffic on {run['endpoint_config_name']}", host_log(local_cloud)
    )
    assert shifted == ["50", "100"], shifted


def test_an_alarm_during_the_bake_rolls_the_update_back_and_the_old_config_keeps_serving(
    local_cloud: LocalCloudProcess, canary: dict[str, Any]
) -> None:
    # Given the endpoint in service on the canary run's config, and a third run whose canary bakes long
    serving = canary["run"]["endpoint_config_name"]
    update = (
        '[deploy.update]\nstrategy = "canary"\ncanary_percent = 50\nwait_interval_seconds = 600\n'
        f'rollback_alarms = ["{ALARM}"]\n'
    )
    run_id = submit(local_cloud, "v3", update)
    # When its canary takes traffic and the alarm goes to ALARM
    wait_until(
        lambda: re.search(rf"endpoint {ENDPOINT}: 50% of the traffic on {run_id}", host_log(local_cloud)),
        timeout=RUN_TIMEOUT,
        what="the canary to take traffic",
    )
    local_cloud.aws("cloudwatch").set_alarm_state(
        AlarmName=ALARM, StateValue="ALARM", StateReason="5xx errors on the canary"
    )
    run = local_cloud.wait_run(run_id, 60)
    # Then the run FAILED at deploy, naming the alarm
    assert run["status"] == "FAILED", run
    assert run["error"]["stage"] == "deploy" and run["error"]["code"] == "EndpointUpdateRolledBack"
    assert ALARM in run["error"]["message"] and serving in run["error"]["message"]
    # And the endpoint is in service on the previous config, and answers
    endpoint = local_cloud.aws("sagemaker").describe_endpoint(EndpointName=ENDPOINT)
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"] == serving
    assert ALARM in endpoint["FailureReason"]
    assert b"setosa" in local_cloud.api.invoke(ENDPOINT, ROW, content_type="text/csv")[1]


def test_the_scan_gate_holds_training_and_says_the_local_cloud_cannot_scan(
    local_cloud: LocalCloudProcess,
) -> None:
    # Given a bundle asking for the scan gate (the local cloud has no vulnerability scanner)
    key = local_cloud.upload("scanned", bundle("", build="[build]\nscan = true\n", endpoint="scanned"), "v1")
    # Then the run ends FAILED at build, before any training job, saying what to do
    run = local_cloud.wait_run(local_cloud.run_for_key("scanned", key), RUN_TIMEOUT)
    assert run["status"] == "FAILED", run
    assert run["error"]["stage"] == "build" and run["error"]["code"] == "ImageScanFailed"
    assert "FINDINGS_UNAVAILABLE" in run["error"]["message"]
    assert not run.get("training_job_name")

"""GET /runs/{run_id} of records already in the runs table: today's answers as it did, and an older
version's (manifest keys missing) answers with the defaults filled in, both as docs/openapi.json says."""

from __future__ import annotations

import json
from typing import Any

import boto3
from api_client import get
from jsonschema import Draft202012Validator
from moto_cloud import REGION, Cloud

from chalicelib.domain.manifest import parse_manifest
from infra import openapi
from tests.run_records import MANIFEST_2026_11_21, RECORD_TODAY, item_of, with_manifest

INTERNAL = ("events_recorded", "outbox")  # in the record, never in the API's answer


def stored(cloud: Cloud, record: dict[str, Any]) -> None:
    """Given the item in the runs table, put there as an earlier version of the app wrote it."""
    table = cloud.settings["SAGEDOCK_RUNS_TABLE"]
    boto3.client("dynamodb", region_name=REGION).put_item(TableName=table, Item=item_of(record))


def assert_documented(body: dict[str, Any]) -> None:
    document = json.loads(openapi.DOCUMENT.read_text())
    schema = {"$ref": "#/components/schemas/Run", "components": document["components"]}
    errors = sorted(Draft202012Validator(schema).iter_errors(body), key=str)
    assert not errors, errors[0]


def test_a_record_stored_today_answers_as_it_is_stored(cloud: Cloud) -> None:
    # Given a run's record as the runs table holds it today
    stored(cloud, RECORD_TODAY)

    # When it is asked for
    status, body = get(cloud, f"/runs/{RECORD_TODAY['run_id']}")

    # Then the answer is the record, less its internal fields, the manifest exactly as stored
    assert status == 200, body
    assert body == {k: v for k, v in RECORD_TODAY.items() if k not in INTERNAL}
    assert_documented(body)
    # And the listing shows the same run
    status, listing = get(cloud, "/runs?project=iris")
    assert status == 200 and listing["runs"] == [body]


def test_an_older_record_answers_with_the_manifests_defaults(cloud: Cloud) -> None:
    # Given a record written before [build] scan, claim_endpoint, [deploy.update] and autoscaling existed
    stored(cloud, with_manifest(MANIFEST_2026_11_21))

    # When it is asked for
    status, body = get(cloud, f"/runs/{RECORD_TODAY['run_id']}")

    # Then its manifest is whole, the keys it lacked at their defaults, and the rest as stored
    assert status == 200, body
    assert body["manifest"] == parse_manifest(
        "[train]\nhyperparameters = { max_leaf_nodes = 5 }\n[train.channels]\ntrain = 'iris/train/'\n",
        project="iris",
    ).model_dump(mode="json")
    assert body["manifest"]["build"]["scan"] is False
    assert body["manifest"]["deploy"]["update"] is None
    expected = {k: v for k, v in RECORD_TODAY.items() if k not in (*INTERNAL, "manifest")}
    assert {k: v for k, v in body.items() if k != "manifest"} == expected
    assert_documented(body)


def test_a_record_without_a_manifest_answers_null(cloud: Cloud) -> None:
    stored(cloud, with_manifest(None))
    status, body = get(cloud, f"/runs/{RECORD_TODAY['run_id']}")
    assert status == 200 and body["manifest"] is None
    assert_documented(body)

"""sagedock's Lambdas. Read top to bottom: the HTTP API, then one handler per event, in pipeline order.

Each handler parses its event into a typed model and hands it to one transition in chalicelib/flows/.
"""

from __future__ import annotations

import os
from functools import partial
from typing import Any

from chalice.app import Chalice, CloudWatchEvent, Rate

from chalicelib.dispatch import handle
from chalicelib.http.api import BINARY_CONTENT_TYPES, api
from chalicelib.http.inference_routes import inference_api
from chalicelib.http.retrain_routes import retrain_api
from chalicelib.services import get_services

app = Chalice(app_name="sagedock")
app.api.binary_types.extend(BINARY_CONTENT_TYPES)
app.register_blueprint(api)
app.register_blueprint(retrain_api)
app.register_blueprint(inference_api)

if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
    # In Lambda a missing or malformed setting fails the cold start, naming the variable.
    from chalicelib.settings import get_settings

    get_settings()


# 1. A bundle is uploaded: validate it, record the run, start the build.
@app.on_cw_event(
    {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"object": {"key": [{"prefix": "bundles/"}]}},
    },
    name="bundle_uploaded",
)
def bundle_uploaded(event: CloudWatchEvent) -> dict[str, Any]:
    from chalicelib.domain.event_models import ObjectCreated
    from chalicelib.flows import upload

    return handle(event, ObjectCreated, upload.bundle_uploaded)


# 2. The build ended: fail the run, or (with the exported IMAGE_DIGEST) start training.
@app.on_cw_event(
    {
        "source": ["aws.codebuild"],
        "detail-type": ["CodeBuild Build State Change"],
        "detail": {"build-status": ["SUCCEEDED", "FAILED", "STOPPED", "FAULT", "TIMED_OUT"]},
    },
    name="build_state_changed",
)
def build_state_changed(event: CloudWatchEvent) -> dict[str, Any]:
    from chalicelib.domain.event_models import BuildStateChange
    from chalicelib.flows import build

    return handle(event, BuildStateChange, build.build_state_changed)


# 3. The image was pushed to ECR: start training on it, by digest.
@app.on_cw_event(
    {
        "source": ["aws.ecr"],
        "detail-type": ["ECR Image Action"],
        "detail": {"action-type": ["PUSH"], "result": ["SUCCESS"]},
    },
    name="image_pushed",
)
def image_pushed(event: CloudWatchEvent) -> dict[str, Any]:
    from chalicelib.domain.event_models import ImageAction
    from chalicelib.flows import image

    return handle(event, ImageAction, image.image_pushed)


# 3b. ECR scanned the pushed image: with `[build] scan = true` its findings fail the run or start training.
@app.on_cw_event(
    {"source": ["aws.ecr"], "detail-type": ["ECR Image Scan"]},
    name="image_scanned",
)
def image_scanned(event: CloudWatchEvent) -> dict[str, Any]:
    from chalicelib.domain.event_models import ImageScan
    from chalicelib.flows import image

    return handle(event, ImageScan, image.image_scanned)


# 4. Training moved on: record its secondary status, fail the run, or create the model, config and endpoint.
@app.on_cw_event(
    {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Training Job State Change"],
        "detail": {"TrainingJobStatus": ["InProgress", "Completed", "Failed", "Stopped"]},
    },
    name="training_state_changed",
)
def training_state_changed(event: CloudWatchEvent) -> dict[str, Any]:
    from chalicelib.domain.event_models import TrainingJobStateChange
    from chalicelib.flows import train

    return handle(event, TrainingJobStateChange, train.training_state_changed)


# 5. The endpoint is in service (the run SUCCEEDED) or failed.
@app.on_cw_event(
    {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Endpoint State Change"],
        "detail": {"EndpointStatus": ["IN_SERVICE", "FAILED"]},
    },
    name="endpoint_state_changed",
)
def endpoint_state_changed(event: CloudWatchEvent) -> dict[str, Any]:
    from chalicelib.domain.event_models import EndpointStateChange
    from chalicelib.flows import deploy

    return handle(event, EndpointStateChange, deploy.endpoint_state_changed)


# 6. Someone's automation asks for a retrain: a new run on the latest successful image, straight to training.
@app.on_cw_event(
    {"source": ["sagedock.requests"], "detail-type": ["Retrain Request"]},
    name="retrain_requested",
)
def retrain_requested(event: CloudWatchEvent) -> dict[str, Any]:
    from chalicelib.flows import retrain

    return handle(event, retrain.RetrainRequest, partial(retrain.requested, request_id=event.event_id))


# 7. The sweeper: publish the run events their writer could not (PutEvents failed, the Lambda died).
@app.schedule(Rate(5, unit=Rate.MINUTES), name="publish_pending")
def publish_pending(event: CloudWatchEvent) -> dict[str, Any]:
    from chalicelib.flows.sweepers import publish_pending

    svc = get_services()
    return publish_pending(svc.runs, svc.outbox)


# 8. The scan sweeper: runs waiting for their image's scan ask ECR again (its event may be lost), or time out.
@app.schedule(Rate(5, unit=Rate.MINUTES), name="sweep_scans")
def sweep_scans(event: CloudWatchEvent) -> dict[str, Any]:
    from chalicelib.flows.sweepers import sweep_scans

    return sweep_scans(get_services())

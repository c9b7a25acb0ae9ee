"""Cold start of the Chalice app: `import app` and each handler's first event against bare boto3, same run.

Each sample is a fresh interpreter (as a Lambda cold start is), the figures alternating sample by sample
(and, with `--before` and `--also`, the trees alternating too) so that disk cache and CPU frequency affect
all alike. Measured in each tree, from the interpreter's start of work to the handler's answer:

- `import app`, and `import app` with every module of `chalicelib` imported as well (all at once);
- an ignored event: an untagged ECR push, dropped before any AWS call;
- an upload event's handler import and its clients: the upload handler given an object of another bucket
  (ignored once its flow is imported), then the clients validate and build use, made through the services;
- the API's first request: `POST /uploads` through the app, a presigned POST signed locally;
- each event handler's own import: the handler given an empty detail (dropped as malformed once its flow
  is imported, before any client).

Against bare handlers, measured in the same loop: `import boto3` (the floor), a bare handler making the same
boto3 clients from one session, and a bare handler signing the same presigned POST. No network is touched.
Each sample reports its wall time and its CPU time (the process's own, which other work on a shared machine
disturbs far less). The figures are minima (the least disturbed sample); medians are printed beside them.

Run: .venv/bin/python bench/bench_cold_start.py [--samples N] [--before DIR] [--also NAME=DIR]...
         [--after DIR] [--only TEXT]
(`git archive 10757ba | tar -x -C /tmp/before` gives the tree before chalicelib's split into floors;
docs/measurements.md has the figures.)
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PRELUDE = """
import os, sys, time
os.environ.update(AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", AWS_DEFAULT_REGION="us-east-1")
t, c = time.perf_counter(), time.process_time()
"""
REPORT = '\nsys.stdout.write(f"{time.perf_counter() - t!r} {time.process_time() - c!r}")\n'


def envelope(source: str, detail_type: str, detail: str) -> str:
    """Python source of an EventBridge event, the envelope exactly as AWS sends it."""
    return (
        '{"version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718", '
        f'"detail-type": "{detail_type}", "source": "{source}", "account": "123456789012", '
        '"time": "2026-11-21T12:00:00Z", "region": "us-east-1", "resources": [], '
        f'"detail": {detail}}}'
    )


UNTAGGED_PUSH = envelope(
    "aws.ecr",
    "ECR Image Action",
    '{"result": "SUCCESS", "repository-name": "sagedock/x", "image-digest": "sha256:00",'
    ' "action-type": "PUSH", "image-tag": ""}',
)
OTHER_BUCKETS_OBJECT = envelope(
    "aws.s3",
    "Object Created",
    '{"version": "0", "bucket": {"name": "not-the-source-bucket"}, "object": {"key": "bundles/demo/b.zip",'
    ' "size": 1024, "etag": "d41d8cd98f00b204e9800998ecf8427e", "sequencer": "0062E99A88DC407460"},'
    ' "request-id": "N4N7GDK58NMKJ12R", "requester": "123456789012", "source-ip-address": "1.2.3.4",'
    ' "reason": "PutObject"}',
)
# The clients an upload's validate and build use (the runs and idempotency tables, the bundle and the
# channels, the endpoint's owner, the repository, the build), as the services make them.
UPLOAD_SERVICES = ("runs", "once", "s3", "sagemaker", "ecr", "codebuild")
UPLOAD_CLIENTS = ("dynamodb", "s3", "sagemaker", "ecr", "codebuild")
UPLOAD_REQUEST = """{
    "resource": "/uploads", "path": "/uploads", "httpMethod": "POST",
    "headers": {"Content-Type": "application/json", "Host": "abc.execute-api.us-east-1.amazonaws.com"},
    "multiValueHeaders": {"Content-Type": ["application/json"],
                          "Host": ["abc.execute-api.us-east-1.amazonaws.com"]},
    "queryStringParameters": None, "multiValueQueryStringParameters": None, "pathParameters": None,
    "stageVariables": None, "isBase64Encoded": False, "body": '{"project": "demo"}',
    "requestContext": {"resourcePath": "/uploads", "httpMethod": "POST", "path": "/api/uploads",
                       "stage": "api", "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
                       "identity": {"sourceIp": "1.2.3.4", "userAgent": "bench"},
                       "accountId": "123456789012", "apiId": "abc"},
}"""

# Each event handler and the source and detail-type of its events: its flow alone is imported on an empty
# detail (refused by the detail's model), and nothing else is done.
HANDLERS = {
    "bundle_uploaded": ("aws.s3", "Object Created"),
    "build_state_changed": ("aws.codebuild", "CodeBuild Build State Change"),
    "image_pushed": ("aws.ecr", "ECR Image Action"),
    "image_scanned": ("aws.ecr", "ECR Image Scan"),
    "training_state_changed": ("aws.sagemaker", "SageMaker Training Job State Change"),
    "endpoint_state_changed": ("aws.sagemaker", "SageMaker Endpoint State Change"),
    "retrain_requested": ("sagedock.requests", "Retrain Request"),
}

# What is measured in each tree: name -> code run after PRELUDE, timed to its end.
IN_TREE = {
    "import app": "import app",
    "import app + every chalicelib module (all at once)": """
import pkgutil, importlib, app, chalicelib
for info in pkgutil.walk_packages(chalicelib.__path__, "chalicelib."):
    importlib.import_module(info.name)
""",
    "ignored event (untagged push)": f"""
import app
outcome = app.app.handler_map["image_pushed"]({UNTAGGED_PUSH}, None)
assert outcome["action"] == "ignored", outcome
""",
    "upload event: handler import + its clients": f"""
import app
outcome = app.app.handler_map["bundle_uploaded"]({OTHER_BUCKETS_OBJECT}, None)
assert outcome["action"] == "ignored", outcome
from chalicelib.services import get_services
svc = get_services()
for name in {UPLOAD_SERVICES!r}:
    getattr(svc, name)
""",
    "API's first request (POST /uploads)": f"""
import json, app
response = app.app({UPLOAD_REQUEST}, None)
assert response["statusCode"] == 200, response
assert json.loads(response["body"])["url"], response
""",
    **{
        f"{name}: its own import (empty detail)": f"""
import app
outcome = app.app.handler_map[{name!r}]({envelope(source, detail_type, "{}")}, None)
assert outcome["action"] == "rejected", outcome
"""
        for name, (source, detail_type) in HANDLERS.items()
    },
}

# The bare handlers, the same whatever the tree.
BARE = {
    "import boto3": "import boto3",
    "bare: same clients": f"""
import boto3
from botocore.config import Config
session = boto3.session.Session()
config = Config(retries={{"mode": "standard", "total_max_attempts": 5}})
for name in {UPLOAD_CLIENTS!r}:
    session.client(name, config=config)
""",
    "bare: presigned POST": """
import json, uuid, boto3
from botocore.config import Config
body = json.loads('{"project": "demo"}')
config = Config(retries={"mode": "standard", "total_max_attempts": 5})
s3 = boto3.session.Session().client("s3", config=config)
key = f"bundles/{body['project']}/{uuid.uuid4().hex}.zip"
post = s3.generate_presigned_post(
    Bucket="bench-source", Key=key, Fields={"Content-Type": "application/zip"},
    Conditions=[["content-length-range", 1, 5 * 1024**3], {"Content-Type": "application/zip"}], ExpiresIn=900,
)
json.dumps({"url": post["url"], "fields": post["fields"]})
""",
}
# Which bare figure each tree figure is read against.
BARE_OF = {
    "upload event: handler import + its clients": "bare: same clients",
    "API's first request (POST /uploads)": "bare: presigned POST",
}

SETTINGS = {
    "SAGEDOCK_SOURCE_BUCKET": "bench-source",
    "SAGEDOCK_DATA_BUCKET": "bench-data",
    "SAGEDOCK_ARTIFACT_BUCKET": "bench-artifacts",
    "SAGEDOCK_RUNS_TABLE": "bench-runs",
    "SAGEDOCK_IDEMPOTENCY_TABLE": "bench-idempotency",
    "SAGEDOCK_CODEBUILD_PROJECT": "bench-build",
    "SAGEDOCK_SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:role/bench",
}


Sample = tuple[float, float]  # (wall seconds, CPU seconds) of one fresh interpreter


def sample(code: str, root: Path = ROOT) -> Sample:
    """Wall and CPU seconds reported by one fresh interpreter running `code` (after the prelude) in `root`."""
    env = {**os.environ, **SETTINGS, "PYTHONDONTWRITEBYTECODE": "0"}
    env.pop("AWS_LAMBDA_FUNCTION_NAME", None)
    out = subprocess.run(
        [sys.executable, "-c", PRELUDE + code + REPORT],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if out.returncode:
        raise RuntimeError(f"in {root}:\n{code}\n{out.stderr}")
    wall, cpu = out.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def measure(trees: dict[str, Path], samples: int) -> dict[tuple[str, str], list[Sample]]:
    """Samples per (tree, figure), bare figures under the tree "bare": `samples` rounds, each running every
    figure once in every tree, in turn."""
    jobs = [("bare", name, code, ROOT) for name, code in BARE.items()]
    for name, code in IN_TREE.items():
        jobs += [(tree, name, code, root) for tree, root in trees.items()]
    for _tree, _name, code, root in jobs:  # warm the bytecode caches, unmeasured, and check every figure
        sample(code, root)
    times: dict[tuple[str, str], list[Sample]] = {}
    for _ in range(samples):
        for tree, name, code, root in jobs:
            times.setdefault((tree, name), []).append(sample(code, root))
    return times


def machine() -> str:
    """One line about where the figures were taken."""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{platform.machine()}, {os.cpu_count()} CPUs ({platform.processor() or platform.uname().machine}), "
        f"Python {platform.python_version()}, load average {load}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=15)
    parser.add_argument("--before", type=Path, help="a checkout to compare with (one from before a change)")
    parser.add_argument("--after", type=Path, default=ROOT, help="the checkout measured (default: this one)")
    parser.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="one more checkout measured alongside (between before and after), repeatable",
    )
    parser.add_argument(
        "--only", metavar="TEXT", help="measure only the figures whose name contains TEXT (and import boto3)"
    )
    args = parser.parse_args()
    if args.only:
        for figures in (IN_TREE, BARE):
            for name in [name for name in figures if args.only not in name and name != "import boto3"]:
                del figures[name]

    trees = {"before": args.before.resolve()} if args.before else {}
    for also in args.also:
        name, _, path = also.partition("=")
        trees[name] = Path(path).resolve()
    trees["after"] = args.after.resolve()
    print(machine())
    times = measure(trees, args.samples)
    print(f"load average after: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    # Per figure: minima (and medians) in ms, wall clock then CPU time.
    least = {key: [min(s[i] for s in got) * 1000 for i in (0, 1)] for key, got in times.items()}
    mid = {key: [statistics.median(s[i] for s in got) * 1000 for i in (0, 1)] for key, got in times.items()}

    def cell(key: tuple[str, str], against: tuple[str, str]) -> str:
        wall, cpu = least[key]
        return (
            f"wall {wall:7.1f} ({mid[key][0]:7.1f}) {wall / least[against][0]:5.2f}x"
            f" | cpu {cpu:7.1f} ({mid[key][1]:7.1f}) {cpu / least[against][1]:5.2f}x"
        )

    print(
        f"{args.samples} samples of each figure, each a fresh interpreter, in turn; ms: minimum (median) and "
        "the ratio of minima to the bare figure it is read against (import boto3 unless named)"
    )
    floor = ("bare", "import boto3")
    print("\nbare:")
    for name in BARE:
        print(f"  {name:20} {cell(('bare', name), floor)}")
    for name in IN_TREE:
        bare = BARE_OF.get(name, "import boto3") if BARE_OF.get(name) in BARE else "import boto3"
        print(f"\n{name}" + ("" if bare == "import boto3" else f" (against {bare})") + ":")
        for tree in trees:
            print(f"  {tree:20} {cell((tree, name), ('bare', bare))}")
        if bare != "import boto3":
            for tree in trees:
                print(f"  {tree + ' (to boto3)':20} {cell((tree, name), floor)}")
        for tree in trees if "before" in trees else ():
            if tree != "before":
                print(f"  {tree + ' / before':20} {cell((tree, name), ('before', name))}")
    app = least["after", "import app"]
    print(
        f"\naim: import app <= 1.10x import boto3; here {app[0] / least[floor][0]:.2f}x (wall), "
        f"{app[1] / least[floor][1]:.2f}x (CPU)"
    )


if __name__ == "__main__":
    main()

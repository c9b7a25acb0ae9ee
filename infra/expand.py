"""Expand the packaged template's SAM transform locally (samtranslator), as CloudFormation does on deploy.

The checks that read plain CloudFormation (cfn-lint's resource rules, checkov, the IAM walk, the emulator's
CloudFormation, which has no SAM transform) run on this expansion, so they see the roles, rules,
permissions and API stage AWS will really create. samtranslator pins a pydantic the app cannot use, so it
lives in its own environment, .venv/sam (`make .venv/sam/.installed`, requirements-sam.txt): `expand`
runs this file there, template in on stdin, expansion out on stdout.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ACCOUNT = "123456789012"
REGION = "us-east-1"
SAM_PYTHON = Path(__file__).resolve().parents[1] / ".venv" / "sam" / "bin" / "python"


class ExpansionError(Exception):
    """samtranslator refused the template, or is not installed; the message says which."""


def expand(template: dict[str, Any], *, region: str = REGION, account: str = ACCOUNT) -> dict[str, Any]:
    """The template with every AWS::Serverless::* resource turned into the resources SAM makes of it."""
    if not SAM_PYTHON.exists():
        raise ExpansionError(f"{SAM_PYTHON} is missing: make .venv/sam/.installed")
    result = subprocess.run(
        [str(SAM_PYTHON), __file__, region, account],
        input=json.dumps(template),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if result.returncode != 0:
        raise ExpansionError(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "failed")
    expanded: dict[str, Any] = json.loads(result.stdout)
    return expanded


def translate(template: dict[str, Any], region: str, account: str) -> dict[str, Any]:
    """samtranslator's expansion (in .venv/sam).

    Local code paths (`./deployment.zip`) are replaced by a stand-in S3 location first: SAM needs one,
    and `make deploy` puts the real one there before CloudFormation expands it.
    """
    import boto3
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    for resource in template["Resources"].values():
        properties = resource.get("Properties", {})
        if resource.get("Type") == "AWS::Serverless::Function" and isinstance(properties.get("CodeUri"), str):
            properties["CodeUri"] = {"Bucket": "code-bucket", "Key": properties["CodeUri"].lstrip("./")}
        if resource.get("Type") == "AWS::Lambda::Function" and isinstance(properties.get("Code"), str):
            properties["Code"] = {"S3Bucket": "code-bucket", "S3Key": properties["Code"].lstrip("./")}
    pseudo = {"AWS::Region": region, "AWS::AccountId": account, "AWS::Partition": "aws"}
    translator = Translator(
        managed_policy_map={}, sam_parser=Parser(), boto_session=boto3.session.Session(region_name=region)
    )
    try:
        expanded: dict[str, Any] = translator.translate(
            template, parameter_values=pseudo, get_managed_policy_map=dict
        )
    except InvalidDocumentException as exc:
        causes = "; ".join(str(cause) for cause in exc.causes)
        raise ExpansionError(f"the SAM transform refuses the template: {causes}") from exc
    return expanded


if __name__ == "__main__":
    try:
        json.dump(translate(json.load(sys.stdin), sys.argv[1], sys.argv[2]), sys.stdout)
    except ExpansionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)

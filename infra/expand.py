"""Expand the packaged template's SAM transform locally (samtranslator), as CloudFormation does on deploy.

The checks that read plain CloudFormation (cfn-lint's resource rules, checkov, the IAM walk, the emulator's
CloudFormation, which has no SAM transform) run on this expansion, so they see the roles, rules,
permissions and API stage AWS will really create. A dev-time tool: samtranslator is in
requirements-dev.txt, never in a Lambda.
"""

from __future__ import annotations

import json
from typing import Any

ACCOUNT = "123456789012"
REGION = "us-east-1"


class ExpansionError(Exception):
    """samtranslator refused the template; the message lists its reasons."""


def expand(template: dict[str, Any], *, region: str = REGION, account: str = ACCOUNT) -> dict[str, Any]:
    """The template with every AWS::Serverless::* resource turned into the resources SAM makes of it.

    Local code paths (`./deployment.zip`) are replaced by a stand-in S3 location first: SAM needs one,
    and `make deploy` puts the real one there before CloudFormation expands it.
    """
    import boto3
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    copy = json.loads(json.dumps(template))
    for resource in copy["Resources"].values():
        properties = resource.get("Properties", {})
        if resource.get("Type") == "AWS::Serverless::Function" and isinstance(properties.get("CodeUri"), str):
            properties["CodeUri"] = {"Bucket": "code-bucket", "Key": properties["CodeUri"].lstrip("./")}
        if resource.get("Type") == "AWS::Lambda::Function" and isinstance(properties.get("Code"), str):
            properties["Code"] = {"S3Bucket": "code-bucket", "S3Key": properties["Code"].lstrip("./")}
    pseudo = {"AWS::Region": region, "AWS::AccountId": account, "AWS::Partition": "aws"}
    try:
        expanded: dict[str, Any] = Translator(
            managed_policy_map={}, sam_parser=Parser(), boto_session=boto3.session.Session(region_name=region)
        ).translate(copy, parameter_values=pseudo, get_managed_policy_map=dict)
    except InvalidDocumentException as exc:
        causes = "; ".join(str(cause) for cause in exc.causes)
        raise ExpansionError(f"the SAM transform refuses the template: {causes}") from exc
    return expanded

"""An SQS queue subscribed to sagedock's run events: how `sagedock events --follow` (and tests) see the bus.

EventBridge delivers each matching event to the queue as the event's JSON (the envelope with its detail).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

RULE_NAME = "sagedock-run-events"
QUEUE_NAME = "sagedock-run-events"
PATTERN = {"source": ["sagedock"], "detail-type": ["Run State Change"]}


def subscribe(events: Any, sqs: Any, *, queue_name: str = QUEUE_NAME, bus: str = "default") -> str:
    """Create (or reuse) the queue and the rule on `bus` that sends it every run event; the queue's URL."""
    url: str = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rule_arn = events.put_rule(Name=queue_name, EventBusName=bus, EventPattern=json.dumps(PATTERN))["RuleArn"]
    # EventBridge may send to the queue only on behalf of this rule.
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "RunEventsFromTheRule",
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
            }
        ],
    }
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
    events.put_targets(Rule=queue_name, EventBusName=bus, Targets=[{"Id": "queue", "Arn": queue_arn}])
    return url


def receive(sqs: Any, queue_url: str, *, wait_seconds: int = 1) -> Iterator[dict[str, Any]]:
    """The events waiting in the queue (deleted once read), oldest first as far as SQS knows."""
    while True:
        answer = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds)
        messages = answer.get("Messages", [])
        if not messages:
            return
        for message in messages:
            yield json.loads(message["Body"])
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )

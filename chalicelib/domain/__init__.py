"""The pure domain: models, rules and names; nothing here imports boto3 or knows an AWS client."""

"""CloudFormation for sagedock, merged into the `chalice package` output by infra/package.py."""

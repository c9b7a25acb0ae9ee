"""One adapter per AWS service: each takes its boto3 client and turns ClientError into domain errors."""

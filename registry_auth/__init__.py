"""The credentials Lambda SageMaker calls to log in to a private Docker registry (deployed on its own)."""

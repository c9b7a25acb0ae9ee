"""gunicorn's entry point for the classic predictor."""

from predictor import app as application

__all__ = ["application"]

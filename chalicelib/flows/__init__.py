"""The pipeline's flows: one module per stage or event, typed against chalicelib/ports.py."""

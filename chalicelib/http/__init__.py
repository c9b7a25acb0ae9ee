"""The HTTP API's routes (Chalice blueprints)."""

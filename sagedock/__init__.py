"""sagedock's user side: the CLI, the container contract check and the local cloud (never deployed)."""

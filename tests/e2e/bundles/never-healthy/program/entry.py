"""`train` succeeds; `serve` listens on its port but never answers /ping (a container that hangs at start)."""

import os
import socket
import sys
import time
from pathlib import Path

root = Path(os.environ.get("SAGEDOCK_OPT_ML", "/opt/ml"))
if sys.argv[1:] == ["train"]:
    (root / "model").mkdir(parents=True, exist_ok=True)
    (root / "model" / "model.txt").write_text("a model\n")
    sys.exit(0)
if sys.argv[1:] == ["serve"]:
    port = int(os.environ.get("SAGEMAKER_BIND_TO_PORT", "8080"))
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((os.environ.get("SAGEDOCK_BIND_HOST", "127.0.0.1"), port))
    listener.listen()
    while True:
        time.sleep(1)
sys.exit(f"unknown command {sys.argv[1:]}")

"""`serve` only: the model is /opt/ml/model/model.json when the endpoint has model data, else baked.json.

/invocations answers which model it serves and the files /opt/ml/model holds; `train` is refused, since a
serve-only bundle is never trained.
"""

import http.server
import json
import os
import signal
import sys
from pathlib import Path

if sys.argv[1:] != ["serve"]:
    sys.exit(f"this image only serves, not {sys.argv[1:]}")
model_dir = Path(os.environ.get("SAGEDOCK_OPT_ML", "/opt/ml")) / "model"
unpacked = model_dir / "model.json"
model = json.loads((unpacked if unpacked.is_file() else Path(__file__).with_name("baked.json")).read_text())


class Handler(http.server.BaseHTTPRequestHandler):
    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._reply(200 if self.path == "/ping" else 404, b"{}")

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        files = sorted(p.name for p in model_dir.iterdir()) if model_dir.is_dir() else None
        self._reply(200, json.dumps({"model": model, "model_files": files}).encode())

    def log_message(self, *args: object) -> None:
        pass


host = os.environ.get("SAGEDOCK_BIND_HOST", "0.0.0.0")  # noqa: S104 - a container listens on all
port = int(os.environ.get("SAGEMAKER_BIND_TO_PORT", "8080"))
server = http.server.ThreadingHTTPServer((host, port), Handler)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print(f"serve: {model['source']}", flush=True)
server.serve_forever()

FROM python:3.11-slim AS base
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
COPY ["serve entry.py", "/opt/program/"]
ENTRYPOINT python3 /opt/program/serve.py --workers "$WORKERS"
CMD ["--port", "8080"]

FROM base
ENTRYPOINT ["/bin/sh", "-c", "exec python3 /opt/program/serve.py \"$@\"", "--"]
CMD serve --port 8080

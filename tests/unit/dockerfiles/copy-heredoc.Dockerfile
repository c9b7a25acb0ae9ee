# syntax=docker/dockerfile:1.4
FROM python:3.11-slim
COPY <<EOF /opt/program/serve
#!/bin/sh
exec python3 -m http.server 8080
EOF
ENTRYPOINT ["/opt/program/serve"]

# syntax=docker/dockerfile:1.4
FROM python:3.11-slim
RUN <<EOF
set -eux
apt-get update
apt-get install -y --no-install-recommends curl
rm -rf /var/lib/apt/lists/*
EOF
RUN <<-"SCRIPT" bash
	echo "tabs are stripped and $HOME is not expanded here"
	FROM this-is-not-an-instruction
	SCRIPT
RUN python3 - <<PY
print("a heredoc given to a program on stdin")
PY
COPY program/ /opt/program/
ENTRYPOINT ["python3", "/opt/program/entry.py"]

# syntax=docker/dockerfile:1.4
FROM python:3.11-slim
RUN <<INSTALL <<CHECK bash
pip install --no-cache-dir numpy
INSTALL
python3 -c "import numpy"
CHECK
COPY program/ /opt/program/

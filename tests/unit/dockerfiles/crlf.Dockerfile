FROM python:3.11-slim
ENV A=1 \
    B=2
COPY program/ /opt/program/
ENTRYPOINT ["python3", "/opt/program/entry.py"]

FROM python:3.10 AS builder
WORKDIR /build
COPY requirements.txt .
RUN pip wheel --no-cache-dir --wheel-dir /wheels -r requirements.txt

FROM python:3.10-slim AS runtime
COPY --from=builder /wheels /wheels
RUN pip install --no-index --find-links=/wheels /wheels/* && rm -rf /wheels
COPY code/ /opt/ml/code/
ENV SAGEMAKER_PROGRAM=train.py
ENTRYPOINT ["python", "/opt/ml/code/train.py"]

FROM --platform=linux/amd64 python:3.11 AS deps
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --target /deps scikit-learn==1.5.2
FROM --platform=linux/amd64 python:3.11-slim
RUN useradd --create-home --uid 1000 model
COPY --from=deps --chown=model:model /deps /opt/deps
COPY --chown=1000:1000 --chmod=0755 train serve /opt/program/
ADD --chown=model:model model.tar.gz /opt/ml/model/
COPY --link program/ /opt/program/lib/
USER model
ENV PYTHONPATH=/opt/deps
ENTRYPOINT ["python3"]

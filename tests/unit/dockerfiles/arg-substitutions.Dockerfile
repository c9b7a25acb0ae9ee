ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim AS base
ARG PYTHON_VERSION
ARG APP_HOME=/opt/program MODE
ENV APP_HOME=${APP_HOME} \
    MODE=${MODE:-serve} \
    DEBUG=${DEBUG:+on} \
    PY=python${PYTHON_VERSION}
WORKDIR $APP_HOME
COPY program/ ${APP_HOME}/
ENTRYPOINT ["/usr/bin/env", "--"]
CMD ["${MODE}"]

# The classic scikit-learn bring-your-own shape: Ubuntu, nginx + gunicorn, programs on PATH.
FROM ubuntu:22.04

MAINTAINER Example Team <ml@example.com>

RUN apt-get -y update && apt-get install -y --no-install-recommends \
         wget \
         python3-pip \
         python3-setuptools \
         nginx \
         ca-certificates \
    && rm -rf /var/lib/apt/lists/*

RUN ln -s /usr/bin/python3 /usr/bin/python
RUN pip --no-cache-dir install numpy==1.26.4 scipy==1.11.4 scikit-learn==1.4.2 pandas flask gunicorn

# Unbuffered output, no .pyc files, and the programs where `docker run IMAGE train` finds them.
ENV PYTHONUNBUFFERED=TRUE
ENV PYTHONDONTWRITEBYTECODE=TRUE
ENV PATH="/opt/program:${PATH}"

COPY decision_trees /opt/program
WORKDIR /opt/program

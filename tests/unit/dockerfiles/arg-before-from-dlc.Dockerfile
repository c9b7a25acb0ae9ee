# Extending a SageMaker framework image: the registry and tag come from build args.
ARG REGION=us-east-1
ARG FRAMEWORK_VERSION=2.1.0
ARG BASE_IMAGE=763104351884.dkr.ecr.${REGION}.amazonaws.com/pytorch-training:${FRAMEWORK_VERSION}-gpu-py310
FROM $BASE_IMAGE
ARG REGION
ARG FRAMEWORK_VERSION
ENV AWS_REGION=$REGION FRAMEWORK=pytorch-${FRAMEWORK_VERSION}
LABEL maintainer="ml-platform" framework.version=${FRAMEWORK_VERSION}
COPY requirements.txt /opt/ml/code/requirements.txt
RUN pip install -r /opt/ml/code/requirements.txt
COPY train.py /opt/ml/code/train.py
ENV SAGEMAKER_SUBMIT_DIRECTORY=/opt/ml/code \
    SAGEMAKER_PROGRAM=train.py

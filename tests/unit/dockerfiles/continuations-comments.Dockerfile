FROM python:3.11-slim
# Comments between packages, and an empty line inside the continuation, are both dropped by the parser.
RUN pip install --no-cache-dir \
    # data handling
    pandas==2.2.2 \
    numpy==1.26.4 \

    # the model
    scikit-learn==1.5.2
ENV A=1 \
    # what B is for
    B=2 \
    C=3
LABEL com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true \
      com.amazonaws.sagemaker.capabilities.multi-models=true
COPY program/ \
     /opt/program/
ENTRYPOINT ["python3", \
            "/opt/program/entry.py"]

FROM nvidia/cuda:12.2.0-runtime-ubuntu22.04
ENV LANG C.UTF-8
ENV MODEL_SERVER_WORKERS 2
ENV PATH /opt/conda/bin:$PATH
EXPOSE 8080 8443
VOLUME /opt/ml/model
HEALTHCHECK --interval=30s --timeout=3s CMD curl -f http://localhost:8080/ping || exit 1
STOPSIGNAL SIGTERM
COPY serve /usr/local/bin/serve
CMD ["serve"]

# An R model served with plumber, in the shape of the R bring-your-own examples.
FROM r-base:4.3.2
RUN apt-get -y update && apt-get install -y --no-install-recommends \
    libcurl4-openssl-dev libsodium-dev \
 && rm -rf /var/lib/apt/lists/*
RUN R -e "install.packages(c('plumber', 'jsonlite', 'randomForest'), repos='https://cloud.r-project.org')"
COPY main.R train.R serve.R /opt/ml/
WORKDIR /opt/ml
ENTRYPOINT ["/usr/bin/Rscript", "/opt/ml/main.R", "--no-save"]

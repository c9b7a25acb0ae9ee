FROM python:3.11-slim
RUN pip install numpy \   
    scipy
ENV GREETING=hel\
lo
COPY program/ /opt/program/
CMD ["serve"]

# A team base image: whatever builds FROM it copies its code and installs its requirements.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1
WORKDIR /opt/program
ONBUILD COPY requirements.txt /opt/program/
ONBUILD RUN pip install --no-cache-dir -r requirements.txt
ONBUILD COPY . /opt/program/
ENTRYPOINT ["python3", "-m", "program"]
CMD ["serve"]

from python:3.9-slim as build
	run pip install --user xgboost==2.0.3
from python:3.9-slim
copy --from=build /root/.local /root/.local
env PATH=/root/.local/bin:$PATH
	workdir /opt/program
copy . .
entrypoint ["python", "main.py"]

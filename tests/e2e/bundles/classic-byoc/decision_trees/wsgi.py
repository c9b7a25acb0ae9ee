import predictor as myapp

# The name gunicorn is told to serve: `wsgi:app`.
app = myapp.app

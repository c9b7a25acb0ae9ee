"""sagedock's deployed code: everything the Chalice Lambdas need beyond app.py."""

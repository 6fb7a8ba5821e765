"""AWS runtime adapters shared by the Lambda handlers: the runtime's ports built from the
environment, API Gateway HTTP API plumbing, and the serverless endpoint deployer."""

"""The inference container (SageMaker's contract: GET /ping, POST /invocations on port 8080)."""

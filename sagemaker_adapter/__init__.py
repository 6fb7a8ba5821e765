"""SageMaker adapter: compiles the Dagster asset graph into a SageMaker Pipeline (SDK v3), the
step entry scripts the pipeline runs, and a docker-less local runner of the compiled JSON."""

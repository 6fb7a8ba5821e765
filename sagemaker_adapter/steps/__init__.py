"""Entry points the SageMaker Pipeline runs in the pipeline image (`python3 -m ...`). Thin: they
read SageMaker's paths and variables and call parking_core.pipeline_steps, as the assets do."""

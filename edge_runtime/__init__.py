"""parkcast on the Raspberry Pi: slot maps, ONNX slot classifier, smoothing, a durable outbox
and an uploader. `pip install parkcast[edge]` brings neither torch nor dagster."""

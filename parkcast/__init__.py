"""The parkcast application: the `parkcast` command, the demo and the in-process runners.

The composition root of the product: the only package that imports every other one
(parking_core, parking_assets, sagemaker_adapter, edge_runtime, slot_training); nothing imports it.
"""

"""Training of the edge's slot classifier (torch; runs in Dagster or the CLI, never on the Pi).

It sits beside `edge_runtime` because it trains the model that package runs, and imports the
edge's own preprocessing so that training and inference crop and normalise patches the same way.
"""

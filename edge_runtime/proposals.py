"""Which slots an installer should label (`parkcast-edge propose`).

Random slots spend labels on what the model already reads; its least sure slots miss its sure
mistakes, which on a new camera are common (benchmarks/slots_label_reach.py). For budgets this
small, typical and diverse examples reach further (TypiClust, Hacohen et al. 2022): the camera's
patches, their embedding standardised on themselves, go into 2k k-means clusters; within each
cluster, nearest its centre first; the proposals go round the clusters, largest first. Labelling
them in order until k of each class: +0.014 / +0.016 accuracy at k = 20 on the two held-out
cameras against random slots (benchmarks/slots_propose.py). Numpy only, deterministic on a machine
(another kind of CPU rounds the embedding and numpy's sums otherwise and may propose other slots:
benchmarks/edge_arm.py).
"""

from __future__ import annotations

import numpy as np

from edge_runtime.adapt import standardisation

ITERATIONS = 100


def kmeans(z: np.ndarray, clusters: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means with k-means++ seeding: each patch's cluster and the centres."""
    rng = np.random.default_rng(seed)
    centres = [z[rng.integers(len(z))]]
    nearest = np.square(z - centres[0]).sum(axis=1)
    for _ in range(1, clusters):  # k-means++: the next centre far from those chosen, by chance
        total = nearest.sum()
        pick = rng.choice(len(z), p=nearest / total) if total > 0 else rng.integers(len(z))
        centres.append(z[pick])
        nearest = np.minimum(nearest, np.square(z - z[pick]).sum(axis=1))
    centres = np.array(centres)
    assigned = np.full(len(z), -1)
    for _ in range(ITERATIONS):
        distance = (np.square(z).sum(axis=1)[:, None] - 2 * z @ centres.T + np.square(centres).sum(axis=1)[None, :])
        new = distance.argmin(axis=1)
        if np.array_equal(new, assigned):
            break
        assigned = new
        for c in range(clusters):
            members = assigned == c
            if members.any():  # an emptied cluster keeps its centre
                centres[c] = z[members].mean(axis=0)
    return assigned, centres


def proposal_order(embedding: np.ndarray, clusters: int, seed: int = 0) -> np.ndarray:
    """Every patch's index, in the order to offer them for labelling (module docstring)."""
    embedding = np.asarray(embedding, dtype=np.float64)
    clusters = max(1, min(clusters, len(embedding)))
    center, scale = standardisation(embedding)
    z = (embedding - center) / scale
    assigned, centres = kmeans(z, clusters, seed)
    distance = np.linalg.norm(z - centres[assigned], axis=1)
    members = [np.flatnonzero(assigned == c) for c in range(clusters)]
    members = sorted((m[np.argsort(distance[m], kind="stable")] for m in members if len(m)), key=len, reverse=True)
    return np.array([m[i] for i in range(len(members[0])) for m in members if i < len(m)], dtype=int)

"""Answers grouped by meaning, and the few answers whose hand grades help the rest most.

Both work on unit sentence vectors of distinct answers (identical answers, up to case
and spacing, are one item with a weight), so identical answers always share a cluster.
"""

from __future__ import annotations

import numpy as np

CLUSTER_DISTANCE = 0.2  # average cosine distance within which answers join one cluster
EXACT_LIMIT = 3000  # distinct answers clustered exactly (average linkage); more are clustered greedily


def cluster(vectors: np.ndarray, distance: float = CLUSTER_DISTANCE) -> np.ndarray:
    """A cluster number per row of ``vectors`` (unit length), numbered from 0 in order of first appearance.

    Average linkage on cosine distance, cut at ``distance``; above :data:`EXACT_LIMIT` rows, a
    row farther than ``distance`` from every leader so far leads a new cluster, and each row
    then joins its nearest leader.
    """
    n = len(vectors)
    if n == 0:
        return np.zeros(0, dtype=int)
    if n == 1:
        return np.zeros(1, dtype=int)
    if n <= EXACT_LIMIT:
        from scipy.cluster.hierarchy import fcluster, linkage

        condensed = np.clip(1.0 - (vectors @ vectors.T)[np.triu_indices(n, 1)], 0.0, 2.0)
        labels = fcluster(linkage(condensed.astype(np.float64), method="average"), t=distance, criterion="distance")
    else:
        # Leaders first, then every row to its nearest leader, so identical rows always share one.
        leaders: list[int] = [0]
        for i in range(1, n):
            if 1.0 - float((vectors[leaders] @ vectors[i]).max()) > distance:
                leaders.append(i)
        labels = np.argmax(vectors @ vectors[leaders].T, axis=1)
    _, first = np.unique(labels, return_index=True)
    order = {labels[i]: k for k, i in enumerate(sorted(first))}
    return np.array([order[x] for x in labels], dtype=int)


def representative(vectors: np.ndarray, weights: np.ndarray | None = None) -> int:
    """The row closest on average to the others (the weighted medoid)."""
    if len(vectors) <= 2:
        return 0
    weights = np.ones(len(vectors)) if weights is None else np.asarray(weights, dtype=np.float64)
    return int(np.argmax((vectors @ vectors.T) @ weights))


def suggest(vectors: np.ndarray, weights: np.ndarray, doubt: np.ndarray, k: int,
            done: np.ndarray | None = None) -> list[tuple[int, str]]:
    """Up to ``k`` rows to grade by hand first, each with why: ``"representative"`` or ``"doubtful"``.

    Greedy coverage: each pick is the answer that most raises how close every answer
    (counted ``weights`` times) is to its nearest hand-graded one, with answers graded
    already (``done``) counted as picked. Among near-equal gains the more doubtful
    answer (``doubt``, higher is more doubtful) wins; a pick whose own doubt dominates its
    gain is called doubtful.
    """
    n = len(vectors)
    if n == 0 or k <= 0:
        return []
    weights = np.asarray(weights, dtype=np.float64)
    doubt = np.clip(np.asarray(doubt, dtype=np.float64), 0.0, 1.0)
    sims = np.clip(vectors @ vectors.T, 0.0, 1.0)
    done = np.zeros(n, bool) if done is None else np.asarray(done, bool)
    covered = sims[:, done].max(axis=1) if done.any() else np.zeros(n)
    taken = done.copy()
    picks: list[tuple[int, str]] = []
    for _ in range(min(k, int((~taken).sum()))):
        gain = (np.maximum(sims, covered[:, None]) - covered[:, None]).T @ weights  # gain of picking each row
        gain = gain / max(weights.sum(), 1e-9)
        bonus = 0.25 * doubt * (1.0 - covered)  # an uncovered, doubtful answer is worth a hand grade itself
        score = np.where(taken, -np.inf, gain + bonus)
        best = int(np.argmax(score))
        picks.append((best, "doubtful" if bonus[best] > gain[best] else "representative"))
        taken[best] = True
        covered = np.maximum(covered, sims[:, best])
    return picks

"""One shared encoder per configuration in a process, loaded lazily on first use."""

from __future__ import annotations

import threading

from grader.encoding.embedder import SentenceTransformerEmbedder

_embedders: dict[tuple, SentenceTransformerEmbedder] = {}
_lock = threading.Lock()


def get_embedder(model: str | None = None, device: str | None = None, backend: str = "auto",
                 batch_size: int | None = None) -> SentenceTransformerEmbedder:
    """One shared embedder per (model, device, backend, batch size) in this process, loaded lazily."""
    key = (model, device, backend, batch_size)
    with _lock:
        if key not in _embedders:
            _embedders[key] = SentenceTransformerEmbedder(model, device=device, backend=backend,
                                                          batch_size=batch_size)
        return _embedders[key]

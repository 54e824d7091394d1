"""The ``Embedder`` interface and its sentence-transformers implementation.

One forward pass per text yields both the sentence vector and the token vectors;
span vectors (sentences, n-gram windows) are pooled from the token vectors, so
they cost no extra encoder work. Texts longer than the encoder's window are cut
into windows and every word still gets a vector. With a ``splitter``, parts of each
text (its clauses) are encoded on their own in the same batched call.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Iterator, Protocol, Sequence

import numpy as np

from grader.encoding.allocator import release_free_heap
from grader.errors import ConfigError, ModelError, ModelIntegrityError
from grader.encoding.weights import auto_cpu_backend, resolve_model, verify_weights

log = logging.getLogger(__name__)

BACKENDS = ("auto", "fp32", "fp16", "int8", "torch")
# Texts per ONNX Runtime call, measured on a 2-core CPU with bench/int8_encoder.py (short answers
# gain most from larger int8 batches: 373 answers/s at 16 against 321 at 8 and 234 one at a time).
ONNX_BATCH = {"fp32": 8, "int8": 16}
WAVE = 16  # padded batches between two looks at the free heap (grader/allocator.py)


@dataclass(frozen=True)
class Encoding:
    """One text's encoder output."""

    vector: np.ndarray  # (dim,) unit-length sentence vector
    tokens: np.ndarray  # (n_tokens, dim) token vectors, special tokens removed
    offsets: np.ndarray  # (n_tokens, 2) character span of each token in the text
    # Parts of the text (clauses) encoded on their own in the same call, when the embedder has a
    # ``splitter`` (see :attr:`SentenceTransformerEmbedder.splitter`): their unit vectors and character spans.
    parts: np.ndarray | None = None  # (n_parts, dim)
    part_spans: tuple[tuple[int, int], ...] = ()


class Embedder(Protocol):
    """What the grader needs from an encoder."""

    name: str
    sha256: str | None

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length sentence vectors, shape (len(texts), dim)."""

    def encode_tokens(self, texts: Sequence[str]) -> list[Encoding]:
        """Sentence and token vectors of each text from one forward pass."""

    # Optional: iter_encode_tokens(texts) -> Iterator[tuple[int, Encoding]], each text's index and
    # encoding once, in any order, as soon as it is ready; see :func:`iter_encodings`. And
    # iter_encode_lists(lists) -> Iterator[tuple[int, int, Encoding]], the same over several lists
    # in one stream; see :func:`iter_encoding_lists`.


def iter_encodings(embedder: Embedder, texts: Sequence[str]) -> Iterator[tuple[int, Encoding]]:
    """(index, encoding) of each text: as the embedder finishes them when it can stream, else all at once."""
    stream = getattr(embedder, "iter_encode_tokens", None)
    return stream(texts) if stream is not None else enumerate(embedder.encode_tokens(texts))


def iter_encoding_lists(embedder: Embedder, lists: Iterable[Sequence[str]]) -> Iterator[tuple[int, int, Encoding]]:
    """(list number, index, encoding) of each text of each list: one stream over all lists when the
    embedder has one (``iter_encode_lists``), else :func:`iter_encodings` list after list."""
    stream = getattr(embedder, "iter_encode_lists", None)
    return stream(lists) if stream is not None else iter_each_list(embedder, lists)


def iter_each_list(embedder: Embedder, lists: Iterable[Sequence[str]]) -> Iterator[tuple[int, int, Encoding]]:
    """(list number, index, encoding) of each text, one :func:`iter_encodings` stream per list."""
    for n, texts in enumerate(lists):
        for i, encoding in iter_encodings(embedder, texts):
            yield n, i, encoding


def _gpu_driver_present() -> bool:
    """Whether a GPU driver is loaded (NVIDIA or ROCm device nodes): without one, CUDA cannot be there.

    Lets a CPU-only machine pick its device without importing torch (a second of cold start).
    """
    return any(os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/nvidia0", "/proc/driver/nvidia", "/dev/kfd"))


def pick_device(requested: str | None = None) -> str:
    """``requested`` if given, else CUDA when present, else CPU."""
    if requested and requested != "auto":
        if requested.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise ConfigError(f"device '{requested}' was asked for but CUDA is not available", field="device")
        return requested
    if not _gpu_driver_present():
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def auto_batch_size(device: str, dimension: int, backend: str) -> int:
    """Texts per forward pass: 32 on CPU; on CUDA, sized to the card's memory.

    Activations of a 256-token text cost roughly ``seq * dim * layers_factor`` bytes; a
    conservative 2 MB per text per 384 dimensions in fp32 (half that in fp16) keeps a
    batch well inside memory while making it large enough to fill the GPU.
    """
    if not device.startswith("cuda"):
        return 32
    import torch

    index = torch.device(device).index or 0
    free, _ = torch.cuda.mem_get_info(index)
    per_text = 2_000_000 * (dimension / 384) * (0.5 if backend == "fp16" else 1.0)
    return int(max(64, min(1024, (0.25 * free) // per_text)))


def _cpu_threads() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


class SentenceTransformerEmbedder:
    """An :class:`Embedder` over a local sentence-transformers model, loaded lazily once."""

    def __init__(self, model: str | None = None, device: str | None = None, backend: str = "auto",
                 batch_size: int | None = None):
        if backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}. Got '{backend}'.", field="backend")
        self.model_spec = model
        self.requested_device = device
        self.requested_backend = backend
        self.requested_batch_size = batch_size
        self._model = None
        self._lock = threading.Lock()
        self.name = None
        self.sha256 = None
        self.device = None
        self.backend = None
        self.runtime = None
        self.batch_size = None
        # Optional text -> character spans of its parts (clauses) to encode on their own, each text's
        # with it in the same batched call (Encoding.parts); None encodes the texts alone.
        self.splitter = None

    # -- loading -----------------------------------------------------------------
    def load(self) -> "SentenceTransformerEmbedder":
        """Verify and load the model now (it otherwise loads on first use)."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._load()
        return self

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def _load(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        folder, name, expected = resolve_model(self.model_spec)
        sha = verify_weights(folder, expected)
        backend = self.requested_backend
        if backend == "int8":
            if self.requested_device not in (None, "auto", "cpu"):
                raise ConfigError(f"backend 'int8' runs on the CPU only. Got device '{self.requested_device}'.",
                                  field="backend")
            self._load_onnx(folder, name, sha, "int8")
            return
        device = pick_device(self.requested_device)
        if backend in ("auto", "fp32") and device == "cpu":
            # auto: int8 where it is the model's checked CPU default, then fp32, then torch
            precisions = list(dict.fromkeys([auto_cpu_backend(self.model_spec), "fp32"])) if backend == "auto" \
                else ["fp32"]
            for k, precision in enumerate(precisions):
                try:
                    self._load_onnx(folder, name, sha, precision)
                    return
                except ModelIntegrityError:
                    raise
                except (ConfigError, ModelError) as exc:  # no onnxruntime or onnx, or a model that does not export
                    fallback = precisions[k + 1] + " on ONNX Runtime" if k + 1 < len(precisions) else "torch"
                    log.warning("%s on ONNX Runtime is not available (%s); running the encoder in %s",
                                precision, exc, fallback)
        self._load_torch(folder, name, sha, device, "fp32" if backend == "torch" else backend)

    def _load_torch(self, folder, name: str, sha: str, device: str, backend: str) -> None:
        """The encoder in plain torch: CUDA (fp16 by default), or the CPU fallback."""
        import torch

        if backend == "auto":
            backend = "fp16" if device.startswith("cuda") else "fp32"
        if backend == "fp16" and not device.startswith("cuda"):
            raise ConfigError("backend 'fp16' needs a CUDA device", field="backend")
        if device == "cpu":
            torch.set_num_threads(_cpu_threads())
        try:
            model, tokenizer, max_len, dimension = _load_pipeline(folder, device)
        except Exception as exc:  # the libraries raise many types for a broken folder
            raise ModelError(f"cannot load the sentence-transformers model: {exc}", source=str(folder)) from exc
        if backend == "fp16":
            model.half()
        self._tokenizer = tokenizer
        self._max_len = max_len
        self._dimension = dimension
        self._needs_type_ids = "token_type_ids" in getattr(self._tokenizer, "model_input_names", ())
        self._prefix, self._suffix = _special_tokens(self._tokenizer)
        self._lead = len(self._prefix)
        self.batch_size = self.requested_batch_size or auto_batch_size(device, dimension, backend)
        self.name, self.sha256, self.device, self.backend, self.runtime = name, sha, device, backend, "torch"
        self._torch = torch
        self._model = model
        log.info("loaded model %s on %s (%s, torch)", name, device, backend)

    def _load_onnx(self, folder, name: str, sha: str, precision: str) -> None:
        """The encoder on ONNX Runtime (grader/onnx_encoder.py); torch loads only to build its file once."""
        from grader.encoding.onnx_encoder import load_onnx_encoder

        encoder = load_onnx_encoder(folder, name, sha, lambda: _load_pipeline(folder, "cpu"), _cpu_threads(),
                                    precision)
        self._tokenizer = encoder.tokenizer
        self._max_len = encoder.max_len
        self._dimension = encoder.dimension
        self._prefix, self._suffix = _special_tokens(self._tokenizer)
        self._lead = len(self._prefix)
        self.batch_size = self.requested_batch_size or ONNX_BATCH[precision]
        self.name, self.sha256, self.device, self.backend, self.runtime = name, sha, "cpu", precision, "onnxruntime"
        self._torch = None
        self._model = encoder
        log.info("loaded model %s on cpu (%s, ONNX Runtime, %s)", name, precision, encoder.path)

    def info(self) -> dict:
        """Model name, sha256, device, backend and runtime, for result metadata and /readyz."""
        return {"model": self.name, "sha256": self.sha256, "device": self.device, "backend": self.backend,
                "runtime": self.runtime}

    # -- encoding -----------------------------------------------------------------
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length sentence vectors, shape (len(texts), dim)."""
        encodings: list = [None] * len(texts)
        for _, i, encoding in self._iter_lists([texts], None):  # sentence vectors only: no parts to encode
            encodings[i] = encoding
        if not encodings:
            self.load()
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([e.vector for e in encodings])

    @property
    def dimension(self) -> int:
        self.load()
        return self._dimension

    @property
    def max_length(self) -> int:
        """Tokens the encoder takes in one window, special tokens included (longer texts are cut into windows)."""
        self.load()
        return self._max_len

    @property
    def tokenizer(self):
        """The loaded tokenizer, called as a Hugging Face fast tokenizer is: ``tokenizer(texts)["input_ids"]``."""
        self.load()
        return self._tokenizer

    @property
    def onnx_path(self) -> Path | None:
        """The ONNX file the encoder runs on ONNX Runtime, or None when it runs in torch."""
        self.load()
        return self._model.path if self.runtime == "onnxruntime" else None

    def forward_batch(self, input_ids, attention_mask) -> dict:
        """The torch model's raw outputs for one padded batch of id tensors on ``device`` (torch runtime only)."""
        self.load()
        if self.runtime != "torch":
            raise ModelError(f"forward_batch needs the torch runtime. Got '{self.runtime}'.")
        features = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self._needs_type_ids:
            features["token_type_ids"] = self._torch.zeros_like(input_ids)
        with self._torch.inference_mode():
            return self._model(features)

    def encode_tokens(self, texts: Sequence[str]) -> list[Encoding]:
        """Sentence and token vectors of each text from one forward pass, in input order."""
        out: list[Encoding | None] = [None] * len(texts)
        for i, encoding in self.iter_encode_tokens(texts):
            out[i] = encoding
        return out  # type: ignore[return-value]

    def iter_encode_tokens(self, texts: Sequence[str]) -> Iterator[tuple[int, Encoding]]:
        """(index, encoding) of each text as soon as its batches are done, shortest texts first.

        On ONNX Runtime the next batches run on the other cores while the caller works on
        what was yielded, so grading overlaps encoding. Each text comes exactly once.
        """
        for _, i, encoding in self.iter_encode_lists([texts]):
            yield i, encoding

    def iter_encode_lists(self, lists: Iterable[Sequence[str]]) -> Iterator[tuple[int, int, Encoding]]:
        """(list number, index, encoding) of each text of each list, list after list, as each is done.

        One stream over all the lists: a list is tokenised when the encoder is about to need
        its first batch, so the cores run its first batches while the caller still works on
        the previous list's last ones (a stream per list left a core idle at every seam).
        Within a list, texts come shortest first; each comes exactly once. With a ``splitter``, each
        text's parts are encoded in the same batches and come with it (``Encoding.parts``).
        """
        return self._iter_lists(lists, self.splitter)

    def _iter_lists(self, lists: Iterable[Sequence[str]], splitter) -> Iterator[tuple[int, int, Encoding]]:
        self.load()
        window = self._max_len - len(self._prefix) - len(self._suffix)
        tokens_per_text = TOKENS_PER_TEXT["cuda" if str(self.device).startswith("cuda") else "cpu"]
        handed: deque[tuple[int, _Plan, list[int]]] = deque()  # batches given to the encoder, not yet back

        def batches() -> Iterator[list[list[int]]]:
            for n, texts in enumerate(lists):
                if not texts:
                    continue
                plan = _Plan(self._tokenizer, list(texts), window, splitter, self._dimension)
                for members in plan.batches(self._list_batch_size(len(plan.chunks)), tokens_per_text):
                    handed.append((n, plan, members))
                    yield [plan.chunks[c][1] for c in members]

        for count, (sentence, tokens) in enumerate(self._forward_stream(batches())):
            n, plan, members = handed.popleft()
            for i, encoding in plan.finish(members, sentence, tokens):
                yield n, i, encoding
            if count % WAVE == WAVE - 1:
                release_free_heap()  # activation buffers of each new shape fragment the heap; see grader/allocator.py
        release_free_heap()

    def _list_batch_size(self, windows: int) -> int:
        """Texts per batch for a list of ``windows`` encoder windows.

        ONNX Runtime runs batches side by side, one per core, and a lone batch on all cores
        together, which is slower. So a short list (an HTTP request, a quiz attempt) is cut
        into at least two batches per core: on 8 answers to q5 a call, 59.5 -> 117.4 answers/s
        (``bench/call_size.py``). Long lists keep the full batch size; a batch size asked for
        explicitly is used as given.
        """
        if self.requested_batch_size or self.runtime != "onnxruntime" or self._model.threads < 2:
            return self.batch_size
        return min(self.batch_size, max(1, -(-windows // (PER_CORE * self._model.threads))))

    def _forward_stream(self, batches: Iterable[list[list[int]]]) -> Iterator[tuple[np.ndarray, list[np.ndarray]]]:
        """(sentence vectors, per-text token vectors) of each batch of token id lists, in order.

        ONNX Runtime runs the batches after the current one on the other cores meanwhile;
        ``batches`` is read lazily, a few batches ahead.
        """
        if self.runtime != "onnxruntime":
            yield from (self._forward(ids) for ids in batches)
            return
        padded_ids: deque[list[list[int]]] = deque()

        def padded() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            for ids in batches:
                padded_ids.append(ids)
                yield self._pad(ids)

        for sentence, tokens in self._model.run_stream(padded()):
            yield sentence, self._token_rows(tokens, padded_ids.popleft())

    def _token_rows(self, tokens: np.ndarray, id_lists: list[list[int]]) -> list[np.ndarray]:
        """Each text's token vectors, specials dropped; copies, since a view would keep the whole batch alive."""
        lead = self._lead
        return [tokens[r, lead : lead + len(ids)].copy() for r, ids in enumerate(id_lists)]

    def _pad(self, id_lists: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        """(input_ids, attention_mask) int64 arrays of one batch, special tokens added."""
        full = [self._prefix + ids + self._suffix for ids in id_lists]
        input_ids = np.full((len(full), max(len(f) for f in full)), self._tokenizer.pad_token_id or 0, np.int64)
        mask = np.zeros_like(input_ids)
        for r, f in enumerate(full):
            input_ids[r, : len(f)] = f
            mask[r, : len(f)] = 1
        return input_ids, mask

    def _forward(self, id_lists: list[list[int]]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Run one padded batch in torch; returns sentence vectors and per-text token vectors (specials dropped)."""
        input_ids, mask = (self._torch.from_numpy(a).to(self.device) for a in self._pad(id_lists))
        out = self.forward_batch(input_ids, mask)
        sentence = out["sentence_embedding"].float().cpu().numpy()
        return sentence, self._token_rows(out["token_embeddings"].float().cpu().numpy(), id_lists)


# A batch holds at most batch_size * this many tokens, so long texts come fewer at a time. On a
# 2-core CPU small batches of long texts run fastest (SAF-en, int8: 90 answers/s at 32 against
# 81 at 128; fp32: 56 against 51; short answers unchanged); a GPU wants them large.
TOKENS_PER_TEXT = {"cpu": 32, "cuda": 128}
PER_CORE = 2  # batches per core a short list is cut into, so no core waits for the other's last one


def _batches(order: list[int], lengths: list[int], batch_size: int, tokens_per_text: int = TOKENS_PER_TEXT["cpu"]):
    """Consecutive groups of ``order`` (sorted by length) within a token budget; activations stay bounded."""
    budget = batch_size * tokens_per_text
    group: list[int] = []
    for c, n in zip(order, lengths):
        if group and (len(group) == batch_size or (len(group) + 1) * max(n, 1) > budget):
            yield group
            group = []
        group.append(c)
    if group:
        yield group


class _Plan:
    """One list of texts cut into encoder windows and batched by length; joins each text's windows back."""

    def __init__(self, tokenizer, texts: list[str], window: int, splitter=None, dimension: int = 0):
        tok = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, return_attention_mask=False,
                        return_token_type_ids=False, truncation=False, verbose=False)
        self.chunks: list[tuple[int, list[int], list]] = []  # (text index, ids, offsets) of each window
        self.parts: dict[int, list[tuple[int, tuple[int, int]]]] = {}  # text index -> (chunk, char span) of parts
        for i, (ids, offsets) in enumerate(zip(tok["input_ids"], tok["offset_mapping"])):
            if not ids:
                self.chunks.append((i, [], []))
                continue
            for start in range(0, len(ids), window):
                self.chunks.append((i, ids[start : start + window], offsets[start : start + window]))
            if splitter is not None:
                # A part is the text's own tokens under its character span, cut to one window.
                starts = np.array([o[0] for o in offsets], dtype=np.int64)
                ends = np.array([o[1] for o in offsets], dtype=np.int64)
                for a, b in splitter(texts[i]):
                    first, last = int(starts.searchsorted(a)), int(ends.searchsorted(b, side="right"))
                    if last > first:
                        self.parts.setdefault(i, []).append((len(self.chunks), (a, b)))
                        self.chunks.append((i, ids[first : min(last, first + window)], None))
        self.waiting = [0] * len(texts)  # windows (and parts) of each text not yet encoded
        for i, _, _ in self.chunks:
            self.waiting[i] += 1
        self.windows: dict[int, list[int]] = {}  # text index -> its windows, for texts of several chunks
        for c, (i, _, offs) in enumerate(self.chunks):
            if self.waiting[i] > 1 and offs is not None:
                self.windows.setdefault(i, []).append(c)
        self.done: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # chunk -> (sentence, tokens) of unfinished texts
        self.no_parts = None if splitter is None else np.zeros((0, dimension), np.float32)  # a text split into none

    def batches(self, batch_size: int, tokens_per_text: int) -> Iterator[list[int]]:
        """Groups of chunk numbers, shortest windows first."""
        order = sorted(range(len(self.chunks)), key=lambda c: len(self.chunks[c][1]))
        return _batches(order, [len(self.chunks[c][1]) for c in order], batch_size, tokens_per_text)

    def finish(self, members: list[int], sentence: np.ndarray, tokens: list[np.ndarray]) -> Iterator[tuple[int, Encoding]]:
        """(index, encoding) of each text whose last window is among ``members``, just encoded."""
        chunks, windows = self.chunks, self.windows
        for k, c in enumerate(members):
            i = chunks[c][0]
            self.waiting[i] -= 1
            if i not in windows:  # one window: its vectors as they are, the sentence vector made unit length
                yield i, Encoding(_unit(sentence[k]), tokens[k], np.array(chunks[c][2], dtype=np.int64).reshape(-1, 2),
                                  self.no_parts)
                continue
            self.done[c] = (sentence[k], tokens[k])
            if self.waiting[i] == 0:
                encoding = _joined([chunks[w] for w in windows[i]], [self.done.pop(w) for w in windows[i]])
                if i in self.parts:
                    encoding = replace(encoding, parts=np.stack([_unit(self.done.pop(c)[0]) for c, _ in self.parts[i]]),
                                       part_spans=tuple(span for _, span in self.parts[i]))
                elif self.no_parts is not None:
                    encoding = replace(encoding, parts=self.no_parts)
                yield i, encoding


def _unit(vector: np.ndarray) -> np.ndarray:
    """``vector`` as float32 of unit length (already unit-length vectors are returned as they are)."""
    vec = vector.astype(np.float32, copy=False)
    norm = float(np.sqrt(vec @ vec))
    if norm > 0 and abs(norm - 1.0) > 1e-5:
        vec = vec / np.float32(norm)
    return vec


def _joined(chunks: list[tuple], outputs: list[tuple[np.ndarray, np.ndarray]]) -> Encoding:
    """One encoding of a text cut into windows: sentence vectors averaged by window length, tokens joined."""
    if len(chunks) == 1:
        sentence, tokens = outputs[0]
        return Encoding(_unit(sentence), tokens, np.array(chunks[0][2], dtype=np.int64).reshape(-1, 2))
    weights = np.array([max(1, len(ids)) for _, ids, _ in chunks], dtype=np.float32)
    vec = np.average(np.stack([sentence for sentence, _ in outputs]), axis=0, weights=weights)
    norm = np.linalg.norm(vec)
    vec = (vec / norm if norm > 0 else vec).astype(np.float32)
    tokens = np.concatenate([t for _, t in outputs])
    offsets = np.array([o for _, _, offs in chunks for o in offs], dtype=np.int64).reshape(-1, 2)
    return Encoding(vec, tokens, offsets)


def _load_pipeline(folder, device: str):
    """(module, tokenizer, max length, dimension): the lean loader when the folder allows it."""
    from grader.encoding import pooled_encoder

    spec = pooled_encoder.describe(folder)
    if spec is not None:
        module, tokenizer, max_len = pooled_encoder.load(folder, spec, device)
        return module, tokenizer, max_len, module.dimension
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), device=device, local_files_only=True).eval()
    return model, model.tokenizer, int(model.max_seq_length or 256), int(model.get_sentence_embedding_dimension())


def _special_tokens(tokenizer) -> tuple[list[int], list[int]]:
    """The special token ids the tokenizer puts before and after a text."""
    bare = tokenizer("word", add_special_tokens=False)["input_ids"]
    full = tokenizer("word", add_special_tokens=True)["input_ids"]
    for k in range(len(full) - len(bare) + 1):
        if full[k : k + len(bare)] == bare:
            return list(full[:k]), list(full[k + len(bare) :])
    raise ModelError("cannot find where the tokenizer puts its special tokens")

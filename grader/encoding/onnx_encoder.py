"""The CPU encoders on ONNX Runtime: the model exported to ONNX (fp32, or int8-quantised).

The ONNX file is never downloaded. On first use it is built from the sha256-verified
weights (export the torch pipeline; for int8, quantise its matrix multiplications by
token row with :mod:`grader.encoding.quantize`) and cached under
``cache_dir()/onnx/<model>-<precision>-<key>/``, where ``key`` hashes the weights'
sha256, the folder's configuration files and every setting and library version that
shapes the file. Beside ``model.onnx``, ``manifest.json`` records the file's own sha256,
the source weights' sha256 and what the embedder needs without loading torch (maximum
length, dimension, tokenizer kind, graph inputs).

Every load reads the file once, checks the sha256 of those bytes against the manifest
and the manifest against its seal, and hands the same bytes to ONNX Runtime, so what
runs is what was checked. The seal is an HMAC of the file's sha256, the source weights'
sha256 and the export recipe under this installation's key, kept outside the cache
(:mod:`grader.encoding.trust`): a manifest that merely hashes a swapped file is not
enough. A file that does not match, is not a regular file or is implausibly large is
rebuilt from the verified weights (a warning says so); a rebuild that still does not
match raises :class:`~grader.errors.ModelIntegrityError`. The
cache folder is built under a temporary name and renamed into place, so processes
that race on a first use never see half a file.

Several padded batches run side by side, one single-threaded ONNX Runtime call per core:
on a small CPU that keeps both cores busier than one call spread over both (measured
with ``bench/throughput.py``). A lone batch (one request) runs on all cores for latency.
Batches are yielded in order as they finish (:meth:`OnnxEncoder.run_stream`), a few
ahead, so the grader grades one batch while the pool encodes the next ones.
int8 scales each token's activations on their own, so a text's vectors never depend on
what else is in its batch.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import os
import shutil
import stat
import sys
import tempfile
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from grader.errors import ConfigError, ModelError, ModelIntegrityError
from grader.encoding.quantize import SCHEME, quantize_rows
from grader.encoding.trust import is_sealed, seal
from grader.encoding.weights import cache_dir

log = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
MANIFEST_FILE = "manifest.json"
MAX_MODEL_BYTES = 4 << 30  # far above any sentence encoder the grader runs
MAX_MANIFEST_BYTES = 1 << 20
FORMAT = 4  # bump when the export or quantisation code changes the file
PRECISIONS = ("fp32", "int8")
OPSET = 17
# Small files of a model folder that change what the exported graph computes.
CONFIG_FILES = ("config.json", "modules.json", "sentence_bert_config.json", "1_Pooling/config.json",
                "tokenizer.json", "tokenizer_config.json")
PACKAGES = ("onnxruntime", "onnx", "torch", "transformers")
# Seconds to build all-MiniLM-L6-v2 (91 MB of weights) on an idle 2-core CPU, torch import included
# (measured 4.4-5.2 s for int8, 4.1-4.8 s for fp32); a larger model takes longer in proportion to its weights.
BUILD_SECONDS = {"int8": 5.0, "fp32": 4.5}
BUILD_REFERENCE_BYTES = 90_868_376


def _require(package: str, why: str, backend: str = "int8"):
    """Import ``package`` or raise a ConfigError that names the backend and the install command."""
    import importlib

    try:
        return importlib.import_module(package)
    except ImportError:
        version = {"onnxruntime": "1.32.0", "onnx": "1.23.2"}.get(package)
        pin = f"=={version}" if version else ""
        raise ConfigError(f"backend '{backend}' needs the {package} package {why}; install it with: "
                          f"pip install {package}{pin}", field="backend") from None


def _version(package: str) -> str:
    try:
        return importlib_metadata.version(package)
    except importlib_metadata.PackageNotFoundError:
        return "missing"


def build_settings(precision: str = "int8") -> dict:
    """Everything besides the weights that shapes the ONNX file; part of the cache key."""
    return {"format": FORMAT, "opset": OPSET, "precision": precision,
            "quantization": SCHEME if precision == "int8" else None,
            "versions": {p: _version(p) for p in PACKAGES}}


def cache_key(folder: Path, weights_sha256: str, precision: str = "int8") -> str:
    """Hex key of the cached file: the weights' sha256, the folder's config files, the build settings."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"weights": weights_sha256, "settings": build_settings(precision)},
                             sort_keys=True).encode())
    for name in CONFIG_FILES:
        path = folder / name
        digest.update(name.encode() + b"\0")
        digest.update(path.read_bytes() if path.is_file() else b"<absent>")
        digest.update(b"\0")
    return digest.hexdigest()[:24]


def cache_folder(folder: Path, name: str, weights_sha256: str, precision: str = "int8") -> Path:
    """Where the ONNX file of this model at this precision lives."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:64] or "model"
    return cache_dir() / "onnx" / f"{safe}-{precision}-{cache_key(folder, weights_sha256, precision)}"


class OnnxEncoder:
    """Runs padded batches through ONNX Runtime; returns token and sentence vectors.

    ``threads`` is the number of cores: a lone batch runs on all of them, several batches
    run side by side on single-threaded calls of a second session (made on first use).
    """

    def __init__(self, model_bytes: bytes, manifest: dict, tokenizer, threads: int, path: Path):
        self.precision = manifest.get("precision", "int8")
        self.path = path
        self.sha256 = manifest["sha256"]
        self.tokenizer = tokenizer
        self.max_len = int(manifest["max_len"])
        self.dimension = int(manifest["dimension"])
        self.threads = max(1, int(threads))
        self._ort = _require("onnxruntime", "to run the encoder", self.precision)
        self._bytes = model_bytes
        self._session = self._new_session(self.threads)
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._pooled = None
        self._pool = None
        self._pool_lock = threading.Lock()

    def _new_session(self, threads: int):
        ort = self._ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        try:
            return ort.InferenceSession(self._bytes, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own types for a malformed graph
            raise ModelError(f"ONNX Runtime cannot load the {self.precision} encoder: {exc}",
                             source=str(self.path)) from exc

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray, session=None) -> tuple[np.ndarray, np.ndarray]:
        """(sentence vectors (batch, dim), token vectors (batch, width, dim)) of one padded int64 batch."""
        feed = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(input_ids)
        tokens, sentence = (session or self._session).run(["token_embeddings", "sentence_embedding"], feed)
        return sentence, tokens

    def run_stream(self, batches: Iterable[tuple[np.ndarray, np.ndarray]],
                   ahead: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """:meth:`run` of each batch, yielded in order as soon as it is done.

        Up to ``ahead`` batches (default: two per core) run or wait in the pool while the
        caller works on the last one yielded, so a caller that grades as results come
        keeps every core busy. ``batches`` is read lazily, ``ahead`` at a time. Closing
        the generator early cancels the batches not yet started.
        """
        source = iter(batches)
        if self.threads == 1:
            yield from (self.run(ids, mask) for ids, mask in source)
            return
        first = next(source, None)
        second = next(source, None)
        if first is None:
            return
        if second is None:  # a lone batch (one request): all cores on it, for latency
            yield self.run(*first)
            return
        pool, session = self._side_by_side()
        queue: deque[Future] = deque(pool.submit(self.run, ids, mask, session) for ids, mask in (first, second))
        ahead = max(2, ahead or 2 * self.threads)
        try:
            while queue:
                for ids, mask in itertools.islice(source, ahead - len(queue)):
                    queue.append(pool.submit(self.run, ids, mask, session))
                yield queue.popleft().result()
        finally:
            for future in queue:
                future.cancel()

    def _side_by_side(self) -> tuple[ThreadPoolExecutor, object]:
        """The pool of one thread per core and the single-threaded session they share (made on first use)."""
        with self._pool_lock:
            if self._pool is None:
                self._pooled = self._new_session(1)
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="grader-onnx")
        return self._pool, self._pooled


def load_onnx_encoder(folder: Path, name: str, weights_sha256: str, build_pipeline: Callable[[], tuple],
                      threads: int, precision: str = "int8") -> OnnxEncoder:
    """The ONNX encoder (``precision`` fp32 or int8) of a verified model folder, built and cached on first use.

    ``build_pipeline`` returns ``(module, tokenizer, max_len, dimension)`` as the fp32
    loader does; it is called only when the cached file is missing or fails its check,
    so a warm start imports neither torch nor the exporter.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"ONNX precision must be one of {', '.join(PRECISIONS)}. Got '{precision}'.",
                          field="backend")
    _require("onnxruntime", "to run the encoder", precision)
    target = cache_folder(folder, name, weights_sha256, precision)
    loaded = _read_verified(target, weights_sha256)
    if loaded is None:
        started = time.perf_counter()
        _say(f"building the {precision} ONNX encoder for {name} in {target} "
             f"(once; about {build_estimate(folder, precision)} s)...")
        _build(target, folder, weights_sha256, build_pipeline, precision)
        _say(f"built the {precision} ONNX encoder in {time.perf_counter() - started:.1f} s")
        loaded = _read_verified(target, weights_sha256)
        if loaded is None:
            raise ModelIntegrityError(f"the {precision} ONNX file just built does not match the sha256 its manifest "
                                      "records; delete the folder and try again", source=str(target))
    model_bytes, manifest = loaded
    return OnnxEncoder(model_bytes, manifest, _tokenizer(folder, manifest["tokenizer"]), threads, target / MODEL_FILE)


def build_estimate(folder: Path, precision: str) -> int:
    """Seconds a first build of ``folder`` at ``precision`` takes, rounded up to 5: in proportion to the weights."""
    size = sum(p.stat().st_size for p in folder.glob("*.safetensors")) or BUILD_REFERENCE_BYTES
    return 5 * max(1, math.ceil(BUILD_SECONDS[precision] * size / BUILD_REFERENCE_BYTES / 5))


def _say(message: str) -> None:
    """A progress line on stderr, as ``grader grade`` reports progress: shown without -v, by the CLI and the server."""
    print(message, file=sys.stderr, flush=True)


def _read_verified(target: Path, weights_sha256: str) -> tuple[bytes, dict] | None:
    """(file bytes, manifest) when the cached file exists and its sha256 matches; None to (re)build."""
    model, manifest_path = target / MODEL_FILE, target / MANIFEST_FILE
    if not manifest_path.exists() and not model.exists():
        return None
    try:
        manifest = json.loads(_read_regular(manifest_path, MAX_MANIFEST_BYTES))
        data = _read_regular(model, MAX_MODEL_BYTES)
        if not isinstance(manifest, dict):
            raise ValueError("the manifest is not a JSON object")
    except (OSError, ValueError) as exc:
        log.warning("ONNX cache in %s is unreadable (%s); rebuilding it", target, exc)
        return None
    digest = hashlib.sha256(data).hexdigest()
    if manifest.get("sha256") != digest or manifest.get("source_sha256") != weights_sha256:
        log.warning("sha256 of %s is %s, its manifest records %s; rebuilding it from the verified weights",
                    model, digest, manifest.get("sha256"))
        return None
    if not is_sealed(_sealed(manifest), manifest.get("seal")):
        log.warning("the manifest of %s is not sealed by this installation (a file written into the cache by "
                    "another hand, or built with another GRADER_STATE_DIR); rebuilding it from the verified weights",
                    model)
        return None
    return data, manifest


def _sealed(manifest: dict) -> dict:
    """What the seal covers: everything the manifest says but the seal itself."""
    return {k: v for k, v in manifest.items() if k != "seal"}


def _read_regular(path: Path, limit: int) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes (a device never is)."""
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{path.name} is not a regular file")
    if info.st_size > limit:
        raise ValueError(f"{path.name} is {info.st_size} bytes, more than the {limit} an encoder file may be")
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{path.name} grew past {limit} bytes while it was read")
    return data


def _tokenizer(folder: Path, kind: str):
    if kind == "tokenizers":
        from grader.encoding.tokenizer import FastTokenizer

        return FastTokenizer(folder)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


def _build(target: Path, folder: Path, weights_sha256: str, build_pipeline: Callable[[], tuple],
           precision: str = "int8") -> None:
    """Export (and for int8 quantise) and install the cache folder ``target`` atomically."""
    _require("onnx", "to build the encoder", precision)
    from grader.encoding.tokenizer import FastTokenizer

    try:
        module, tokenizer, max_len, dimension = build_pipeline()
    except ModelError:
        raise
    except Exception as exc:  # the libraries raise many types for a broken folder
        raise ModelError(f"cannot load the model to export it: {exc}", source=str(folder)) from exc
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        type_ids = "token_type_ids" in getattr(tokenizer, "model_input_names", ())
        fp32 = staging / "fp32.onnx"
        try:
            _export(_exportable(folder, module), fp32, type_ids)
            if precision == "int8":
                quantize_rows(fp32, staging / MODEL_FILE)
                fp32.unlink()
            else:
                fp32.rename(staging / MODEL_FILE)
        except Exception as exc:
            raise ModelError(f"cannot export the encoder to {precision} ONNX: {exc}", source=str(folder)) from exc
        manifest = {
            "sha256": hashlib.sha256((staging / MODEL_FILE).read_bytes()).hexdigest(),
            "source_sha256": weights_sha256,
            "max_len": int(max_len),
            "dimension": int(dimension),
            "tokenizer": "tokenizers" if isinstance(tokenizer, FastTokenizer) else "transformers",
            "precision": precision,
            "settings": build_settings(precision),
        }
        manifest["seal"] = seal(manifest)
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
        _install(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _prune_older_formats(target)


def _prune_older_formats(target: Path) -> None:
    """Remove this model's files at this precision that an older FORMAT built; no grader reads them again.

    Files of the current format under another key (other library versions, say another
    virtual environment sharing the cache) are left alone.
    """
    stem = target.name.rsplit("-", 1)[0]  # <model>-<precision>; the key has no "-"
    for sibling in target.parent.iterdir():
        if sibling == target or not sibling.is_dir() or sibling.name.rsplit("-", 1)[0] != stem:
            continue
        try:
            old = json.loads((sibling / MANIFEST_FILE).read_text()).get("settings", {}).get("format", 0)
        except (OSError, ValueError):
            continue  # half-built by a racing process, or not ours: not ours to delete
        if isinstance(old, int) and old < FORMAT:
            log.info("removing %s, built by an older version of the ONNX export", sibling)
            shutil.rmtree(sibling, ignore_errors=True)


def _install(staging: Path, target: Path) -> None:
    """Rename ``staging`` to ``target``; a stale ``target`` is first renamed away, never edited in place."""
    if target.exists():
        stale = Path(tempfile.mkdtemp(prefix=f".{target.name}.stale.", dir=target.parent))
        try:
            os.replace(target, stale / "old")
        except OSError:
            pass  # another process moved it first
        shutil.rmtree(stale, ignore_errors=True)
    try:
        os.replace(staging, target)
    except OSError:
        if not (target / MANIFEST_FILE).is_file():  # not a racing process that finished first
            raise


def _exportable(folder: Path, module):
    """The pipeline to export: for a standard folder, the Hugging Face encoder with eager attention.

    ONNX Runtime fuses the eager attention pattern (matmul, scale, mask, softmax) into its
    own attention kernel; the exported ``scaled_dot_product_attention`` of the lean torch
    BERT is not fused. Measured on SAF-en answers: 31 against 27 answers/s.
    Pooling is the one :mod:`grader.encoding.pooled_encoder` applies.
    """
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    from grader.encoding import pooled_encoder

    spec = pooled_encoder.describe(folder)
    if spec is None:
        return module  # a sentence-transformers pipeline: exported as it is
    hf_logging.disable_progress_bar()
    encoder = AutoModel.from_pretrained(str(folder), local_files_only=True, attn_implementation="eager").eval()

    class Pooled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = encoder

        def forward(self, features: dict) -> dict:
            out = self.encoder(**features, return_dict=True).last_hidden_state
            return {"token_embeddings": out,
                    "sentence_embedding": pooled_encoder.pool(out, features["attention_mask"], spec)}

    return Pooled().eval()


def _export(module, path: Path, type_ids: bool) -> None:
    """Export the fp32 pipeline with dynamic batch and length; outputs token and sentence vectors."""
    import warnings

    import torch

    class Graph(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.pipeline = module

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            features = {"input_ids": input_ids, "attention_mask": attention_mask}
            if token_type_ids is not None:
                features["token_type_ids"] = token_type_ids
            out = self.pipeline(features)
            return out["token_embeddings"], out["sentence_embedding"]

    ids = torch.tensor([[101, 7592, 2088, 102, 0], [101, 2088, 2003, 2307, 102]], dtype=torch.long)
    mask = (ids != 0).long()
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if type_ids else [])
    args = (ids, mask, torch.zeros_like(ids)) if type_ids else (ids, mask)
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes |= {"token_embeddings": {0: "batch", 1: "sequence"}, "sentence_embedding": {0: "batch"}}
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(Graph().eval(), args, str(path), dynamo=False, opset_version=OPSET, input_names=names,
                          output_names=["token_embeddings", "sentence_embedding"], dynamic_axes=axes)

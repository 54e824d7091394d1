"""A fine-tuned scorer's folder: weights, tokenizer, ONNX files and a manifest of every file's sha256.

Layout of ``models/NAME/``::

    model.safetensors      fine-tuned weights (encoder and both heads)
    config.json            the encoder's architecture
    tokenizer.json         the base model's tokenizer (and tokenizer_config.json when it has one)
    model.onnx             fp32 export: (input_ids, attention_mask[, token_type_ids]) -> probabilities, fraction
    model-int8.onnx        the same, int8 (grader.encoding.quantize: per-row activations, per-column weights)
    combiner.json          the combiner trained on the stacked signals (when trained with one)
    combiner-new-questions.json  the combiner trained on the same rows without the scorer's signals: it grades
                           the questions the scorer was not fine-tuned on (folders written since it exists)
    manifest.json          sha256 of every file above, and how the model was made

Every load checks each file the manifest lists against its sha256 and refuses the folder
(:class:`~grader.errors.ModelIntegrityError`, naming the file) on the first mismatch or missing file.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from grader.encoding.onnx_encoder import OPSET
from grader.encoding.quantize import SCHEME, quantize_rows
from grader.encoding.weights import recorded_sha256, sha256_of
from grader.errors import ModelError, ModelIntegrityError

FORMAT = "grader-finetune/1"
MANIFEST = "manifest.json"
WEIGHTS = "model.safetensors"
ONNX_FILES = {"fp32": "model.onnx", "int8": "model-int8.onnx"}
COMBINER = "combiner.json"
NEW_QUESTIONS_COMBINER = "combiner-new-questions.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
REQUIRED = ("config.json", "tokenizer.json", WEIGHTS, *ONNX_FILES.values())


def save(trained, output: str | Path, metadata: dict | None = None, progress: bool = True) -> Path:
    """Write ``trained`` (from :func:`grader.finetune.train.finetune`) to the folder ``output``."""
    import torch
    from safetensors.torch import save_file

    from dataclasses import asdict

    out = Path(output)
    if out.exists() and not out.is_dir():
        raise ModelError("the output exists and is not a folder", source=str(out), field="output")
    out.mkdir(parents=True, exist_ok=True)
    model = trained.model.to("cpu").eval()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / WEIGHTS))
    model.encoder.config.save_pretrained(str(out))
    for name in TOKENIZER_FILES:
        if (trained.base_folder / name).is_file():
            shutil.copyfile(trained.base_folder / name, out / name)
    started = time.perf_counter()
    if progress:
        print("exporting the scorer to ONNX (fp32, int8)...", file=__import__("sys").stderr, flush=True)
    export_onnx(model, out / ONNX_FILES["fp32"])
    quantize_rows(out / ONNX_FILES["fp32"], out / ONNX_FILES["int8"])
    trained.model.to(trained.device)
    meta = {
        "base_model": trained.base_name, "base_model_spec": trained.config.model,
        "base_sha256": trained.base_sha256, "labels": list(trained.label_set),
        "label_fractions": trained.label_fractions, "max_length": trained.tokenizer.max_length,
        "pad_id": trained.tokenizer.pad_id, "token_type_ids": _uses_types(model),
        "seed": trained.config.seed, "epochs": trained.config.epochs, "config": asdict(trained.config),
        "validation": trained.validation, "train_seconds": round(trained.seconds, 1),
        "export_seconds": round(time.perf_counter() - started, 1), "opset": OPSET, "int8_scheme": SCHEME,
        "versions": _versions(),
        **(metadata or {}),
    }
    write_manifest(out, meta)
    return out


def write_manifest(folder: Path, metadata: dict) -> dict:
    """(Re)write ``manifest.json``: the sha256 of every other file of ``folder`` and ``metadata``."""
    files = {p.name: sha256_of(p) for p in sorted(folder.iterdir()) if p.is_file() and p.name != MANIFEST}
    manifest = {"format": FORMAT, "files": files, "metadata": metadata}
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    tmp.replace(folder / MANIFEST)
    return manifest


def read_manifest(folder: str | Path) -> dict:
    """The folder's manifest, checked for form; ModelError when missing or malformed."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not folder.is_dir():
        raise ModelError("not a fine-tuned scorer folder (no such folder)", source=str(folder))
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"no {MANIFEST}: not a fine-tuned scorer folder", source=str(folder)) from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {MANIFEST}: {exc}", source=str(path)) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(manifest.get("files"), dict):
        raise ModelError(f"{MANIFEST} is not a fine-tuned scorer manifest (format '{FORMAT}')", source=str(path))
    missing = [name for name in REQUIRED if name not in manifest["files"]]
    if missing:
        raise ModelError(f"{MANIFEST} does not list {missing}", source=str(path))
    return manifest


def verified_bytes(folder: Path, manifest: dict, name: str) -> bytes:
    """The bytes of ``name``, read once and checked against the manifest's sha256."""
    import hashlib

    path = folder / name
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelIntegrityError(f"{name} is missing or unreadable ({exc.strerror}); the folder is incomplete",
                                  source=str(path)) from None
    _check(path, hashlib.sha256(data).hexdigest(), manifest["files"].get(name))
    return data


def verify_folder(folder: str | Path, manifest: dict | None = None, skip: tuple[str, ...] = ()) -> dict:
    """Check every file the manifest lists (but ``skip``, checked by the caller as it reads them).

    Large files unchanged since this installation hashed them are not hashed again
    (:mod:`grader.encoding.trust`: writing a file changes its ctime, so a changed one always is).
    """
    folder = Path(folder)
    manifest = manifest or read_manifest(folder)
    for name, expected in manifest["files"].items():
        if name in skip:
            continue
        if "/" in name or "\\" in name or name.startswith("."):
            raise ModelError(f"{MANIFEST} lists '{name}', which is not a file of the folder", source=str(folder))
        path = folder / name
        if not path.is_file():
            raise ModelIntegrityError(f"{name} is missing; the folder is incomplete", source=str(path))
        _check(path, recorded_sha256(path), expected)
    return manifest


def _check(path: Path, digest: str, expected) -> None:
    if digest != expected:
        raise ModelIntegrityError(f"sha256 of {path.name} is {digest}, the manifest records {expected}: the file "
                                  "was changed or corrupted; train the scorer again or restore the folder",
                                  source=str(path))


def _uses_types(model) -> bool:
    from grader.finetune.model import input_names

    return "token_type_ids" in input_names(model)


def _versions() -> dict:
    from importlib import metadata

    out = {}
    for package in ("torch", "transformers", "onnx", "onnxruntime"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = None
    return out


def export_onnx(model, path: Path) -> None:
    """Export the fp32 graph with dynamic batch and length; outputs ``probabilities`` and ``fraction``."""
    import warnings

    import torch

    from grader.finetune.model import Exported

    types = _uses_types(model)
    ids = torch.tensor([[101, 7592, 2088, 102, 0], [101, 2088, 2003, 2307, 102]], dtype=torch.long)
    mask = (ids != 0).long()
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if types else [])
    args = (ids, mask, torch.zeros_like(ids)) if types else (ids, mask)
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes |= {"probabilities": {0: "batch"}, "fraction": {0: "batch"}}
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(Exported(model).eval(), args, str(path), dynamo=False, opset_version=OPSET,
                          input_names=names, output_names=["probabilities", "fraction"], dynamic_axes=axes)


def load_torch(folder: str | Path):
    """The fine-tuned cross-encoder of a scorer folder in torch (every file checked against the manifest first)."""
    from safetensors.torch import load_file

    from grader.finetune.model import CrossEncoder, load_encoder

    folder = Path(folder)
    manifest = verify_folder(folder, read_manifest(folder))
    labels = manifest.get("metadata", {}).get("labels") or []
    model = CrossEncoder(load_encoder(folder, config=folder), len(labels))
    try:
        model.load_state_dict(load_file(str(folder / WEIGHTS)))
    except RuntimeError as exc:
        raise ModelError(f"the weights do not fit the saved architecture: {exc}", source=str(folder / WEIGHTS)) from None
    return model.eval()

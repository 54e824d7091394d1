"""Fine-tuning the cross-encoder: deterministic under a seed, early-stopped on held-out whole questions.

The measured risk is over-fitting the few questions of a corpus: a cross-encoder
fine-tuned freely learns each question's answers rather than how answers relate to
model answers. So training is regularised on several fronts: few epochs, weight decay,
dropout in the encoder and before the heads, label smoothing, the embeddings and lower
layers kept as pre-trained, and the best of several checkpoints chosen on questions
held out whole (never on answers of questions it trains on).
"""

from __future__ import annotations

import copy
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from grader.encoding.weights import BUILTIN_MODELS, resolve_model, verify_weights
from grader.errors import ConfigError, InputDataError
from grader.finetune.pairs import Pairs
from grader.finetune.tokens import PairTokenizer, length_batches

CHECKS_PER_EPOCH = 2  # validation checkpoints per epoch


@dataclass
class FinetuneConfig:
    """How to fine-tune. Defaults fit ~1,500 answers in a few minutes on a 2-core CPU (docs/finetune.md)."""

    model: str = "minilm"
    epochs: int = 2
    max_length: int = 128
    batch_size: int = 16
    lr: float = 5e-5
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    dropout: float = 0.1
    label_smoothing: float = 0.1
    freeze_layers: int | None = None  # None: the lower third of the layers
    validation: float = 0.2  # share of questions held out whole for early stopping (none under 4 questions)
    seed: int = 0
    threads: int | None = None  # torch threads on a CPU; None: every core
    device: str | None = None  # None: CUDA when present

    def check(self) -> "FinetuneConfig":
        """``self`` when every field is in range, else a ConfigError naming the field."""
        if self.model not in BUILTIN_MODELS:
            raise ConfigError(f"`model` must be one of {list(BUILTIN_MODELS)}. Got '{self.model}'.", field="model")
        for name, low in (("epochs", 1), ("max_length", 16), ("batch_size", 1)):
            if getattr(self, name) < low:
                raise ConfigError(f"`{name}` must be >= {low}. Got {getattr(self, name)}.", field=name)
        if not 0.0 <= self.validation < 0.5:
            raise ConfigError(f"`validation` must be in [0, 0.5). Got {self.validation}.", field="validation")
        return self


@dataclass
class Trained:
    """A fine-tuned cross-encoder in torch with what saving it needs."""

    model: object  # CrossEncoder
    config: FinetuneConfig
    base_folder: Path
    base_name: str
    base_sha256: str
    label_set: tuple[str, ...]
    label_fractions: dict[str, float]
    tokenizer: PairTokenizer
    device: str
    validation: dict = field(default_factory=dict)
    seconds: float = 0.0


def seed_everything(seed: int, threads: int | None) -> int:
    """Seed random, numpy and torch, fix torch's thread count and ask for deterministic kernels."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    threads = threads or max(1, os.cpu_count() or 1)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    return threads


def _device(spec: str | None) -> str:
    import torch

    if spec:
        return spec
    return "cuda" if torch.cuda.is_available() else "cpu"


def _read_text(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.is_file() else None


def base_tokenizer(folder: Path, max_length: int) -> PairTokenizer:
    """The pair tokenizer of a model folder."""
    text = _read_text(folder / "tokenizer.json")
    if text is None:
        raise ConfigError(f"the model folder {folder} has no tokenizer.json", field="model")
    return PairTokenizer(text, max_length, PairTokenizer.pad_id_of(_read_text(folder / "tokenizer_config.json"), text))


def question_split(groups: np.ndarray, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices): ``share`` of the questions held out whole (none under 4)."""
    questions = sorted(set(groups.tolist()))
    n_val = int(round(share * len(questions))) if len(questions) >= 4 else 0
    if share > 0 and len(questions) >= 4:
        n_val = max(1, n_val)
    held = set(np.random.default_rng(seed).permutation(questions)[:n_val].tolist()) if n_val else set()
    mask = np.array([g in held for g in groups.tolist()])
    return np.flatnonzero(~mask), np.flatnonzero(mask)


class Progress:
    """A one-line progress bar with elapsed time and ETA on stderr."""

    def __init__(self, total: int, label: str, enabled: bool = True):
        self.total, self.label, self.enabled = max(1, total), label, enabled
        self.started = time.perf_counter()
        self.done = 0

    def step(self, note: str = "") -> None:
        """One more unit done."""
        self.done += 1
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.started
        eta = elapsed / self.done * (self.total - self.done)
        filled = int(30 * self.done / self.total)
        print(f"\r{self.label} [{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total} "
              f"{_clock(elapsed)} elapsed, ETA {_clock(eta)} {note}", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        """End the line."""
        if self.enabled:
            print(file=sys.stderr, flush=True)


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


def _targets(pairs: Pairs) -> np.ndarray:
    """Score fraction of each pair: its own, else its label's mean fraction (nan when neither is known)."""
    out = pairs.fractions.astype(np.float32).copy()
    for i in np.flatnonzero(~np.isfinite(out)):
        if pairs.labels[i] >= 0:
            out[i] = pairs.label_fractions.get(pairs.label_set[pairs.labels[i]], np.nan)
    return out


def finetune(pairs: Pairs, config: FinetuneConfig | None = None, progress: bool = True,
             label: str = "fine-tuning") -> Trained:
    """Fine-tune a cross-encoder on ``pairs``; returns it in torch with its validation figures."""
    import torch

    from grader.finetune.model import CrossEncoder, input_names, load_encoder

    config = (config or FinetuneConfig()).check()
    if len(pairs) < 2:
        raise InputDataError("fine-tuning needs at least 2 answers with a label or a score")
    started = time.perf_counter()
    threads = seed_everything(config.seed, config.threads)
    device = _device(config.device)
    folder, name, pinned = resolve_model(config.model)
    sha = verify_weights(folder, pinned)
    tokenizer = base_tokenizer(folder, config.max_length)
    model = CrossEncoder(load_encoder(folder), len(pairs.label_set), config.dropout)
    layers = len(model.encoder.encoder.layer)
    model.freeze_lower(layers // 3 if config.freeze_layers is None else config.freeze_layers)
    model.to(device)
    uses_types = "token_type_ids" in input_names(model)

    train_idx, val_idx = question_split(pairs.groups, config.validation, config.seed)
    encoded = tokenizer.encode(pairs.first, pairs.answers)
    fractions = _targets(pairs)
    labels = pairs.labels

    def batch_tensors(index):
        arrays = tokenizer.pad([encoded[i] for i in index])
        out = {k: torch.from_numpy(v).to(device) for k, v in arrays.items()
               if k != "token_type_ids" or uses_types}
        return out

    heads = [p for n, p in model.named_parameters() if not n.startswith("encoder.") and p.requires_grad]
    body = [p for n, p in model.named_parameters() if n.startswith("encoder.") and p.requires_grad]
    decay = [p for p in body if p.ndim > 1]
    no_decay = [p for p in body if p.ndim <= 1]
    optimizer = torch.optim.AdamW([
        {"params": decay, "lr": config.lr, "weight_decay": config.weight_decay},
        {"params": no_decay, "lr": config.lr, "weight_decay": 0.0},
        {"params": heads, "lr": config.head_lr, "weight_decay": config.weight_decay},
    ])
    rng = np.random.default_rng(config.seed)
    steps_per_epoch = math.ceil(len(train_idx) / config.batch_size)
    total = steps_per_epoch * config.epochs
    warmup = max(1, total // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup))))
    ce = torch.nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    checks = {max(1, round(steps_per_epoch * (k + 1) / CHECKS_PER_EPOCH)) for k in range(CHECKS_PER_EPOCH)}
    best, best_state, history = None, None, []
    bar = Progress(total, label, progress)
    step = 0
    for epoch in range(config.epochs):
        model.train()
        for n, index in enumerate(_epoch_batches(train_idx, [len(encoded[i][0]) for i in range(len(encoded))],
                                                 config.batch_size, rng), start=1):
            inputs = batch_tensors(index)
            logits, predicted = model(**inputs)
            loss = torch.zeros((), device=device)
            y = torch.from_numpy(labels[index]).to(device)
            known = y >= 0
            if pairs.label_set and bool(known.any()):
                loss = loss + ce(logits[known], y[known])
            f = torch.from_numpy(fractions[index]).to(device)
            scored = torch.isfinite(f)
            if bool(scored.any()):
                loss = loss + 4.0 * torch.mean((predicted[scored] - f[scored]) ** 2)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            step += 1
            bar.step(f"loss {loss.item():.3f}")
            if len(val_idx) and n in checks:
                figures = _validate(model, pairs, val_idx, tokenizer, encoded, fractions, batch_tensors)
                figures["epoch"] = round(epoch + n / steps_per_epoch, 2)
                history.append(figures)
                if best is None or figures["loss"] < best["loss"]:
                    best, best_state = figures, copy.deepcopy(model.state_dict())
                model.train()
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    validation = {"questions_held_out": sorted(set(pairs.groups[val_idx].tolist())),
                  "answers_held_out": int(len(val_idx)), "checkpoints": history, "chosen": best,
                  "torch_threads": threads} if len(val_idx) else {"note": _no_validation(config, pairs),
                                                                 "torch_threads": threads}
    return Trained(model, config, folder, name, sha, pairs.label_set, dict(pairs.label_fractions), tokenizer, device,
                   validation, time.perf_counter() - started)


def _no_validation(config: FinetuneConfig, pairs: Pairs) -> str:
    """Why no question was held out for early stopping."""
    if config.validation <= 0:
        return "no question held out (validation 0): the last checkpoint is kept"
    return f"{len(set(pairs.groups.tolist()))} question(s), fewer than 4: none held out, the last checkpoint is kept"


def _epoch_batches(index: np.ndarray, lengths: list[int], batch_size: int, rng) -> list[np.ndarray]:
    """One epoch's batches: shuffled, then grouped by length within windows of 50 batches, batches shuffled."""
    order = rng.permutation(index)
    window = batch_size * 50
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window].tolist(), key=lambda i: lengths[i])
        batches += [np.array(chunk[i : i + batch_size]) for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _validate(model, pairs, val_idx, tokenizer, encoded, fractions, batch_tensors) -> dict:
    """Loss (label cross-entropy + score squared error), label accuracy and score RMSE on held-out questions."""
    probs, predicted = predict_encoded(model, [encoded[i] for i in val_idx], batch_tensors_of=batch_tensors,
                                       index=val_idx)
    labels = pairs.labels[val_idx]
    known = labels >= 0
    out = {}
    loss = 0.0
    if pairs.label_set and known.any():
        p = probs[known, labels[known]]
        loss += float(-np.log(np.clip(p, 1e-7, 1)).mean())
        out["accuracy"] = round(float((probs[known].argmax(1) == labels[known]).mean()), 4)
    f = fractions[val_idx]
    scored = np.isfinite(f)
    if scored.any():
        mse = float(((predicted[scored] - f[scored]) ** 2).mean())
        loss += 4.0 * mse
        out["rmse"] = round(math.sqrt(mse), 4)
    out["loss"] = round(loss, 5)
    return out


def predict_encoded(model, encoded, batch_tensors_of, index, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(label probabilities, score fractions) of encoded pairs with the torch model, in length-sorted batches."""
    import torch

    model.eval()
    probs = np.zeros((len(encoded), model.label_head.out_features), np.float32)
    fraction = np.zeros(len(encoded), np.float32)
    with torch.no_grad():
        for batch in length_batches([len(e[0]) for e in encoded], batch_size):
            logits, f = model(**batch_tensors_of([index[i] for i in batch]))
            probs[batch] = torch.softmax(logits, -1).float().cpu().numpy()
            fraction[batch] = f.float().cpu().numpy()
    return probs, fraction


def predict(trained: Trained, firsts: list[str], answers: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(label probabilities, score fractions) of pairs with the torch model (training-time predictions)."""
    import torch

    from grader.finetune.model import input_names

    encoded = trained.tokenizer.encode(firsts, answers)
    uses_types = "token_type_ids" in input_names(trained.model)

    def batch_tensors(index):
        arrays = trained.tokenizer.pad([encoded[i] for i in index])
        return {k: torch.from_numpy(v).to(trained.device) for k, v in arrays.items()
                if k != "token_type_ids" or uses_types}

    if not encoded:
        return np.zeros((0, trained.model.label_head.out_features), np.float32), np.zeros(0, np.float32)
    return predict_encoded(trained.model, encoded, batch_tensors, list(range(len(encoded))))


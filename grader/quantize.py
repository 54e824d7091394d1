"""Dynamic int8 quantisation of an encoder's linear layers, for fast CPU inference."""

from __future__ import annotations

from grader.errors import ModelError


def quantize_int8(model):
    """Return ``model`` with every ``nn.Linear`` replaced by a dynamically quantised int8 layer."""
    import torch

    try:
        from torch.ao.quantization import quantize_dynamic
    except ImportError as exc:  # pragma: no cover - depends on the torch build
        raise ModelError(f"this torch build cannot quantise to int8: {exc}") from None
    torch.backends.quantized.engine = _engine(torch)
    return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def _engine(torch) -> str:
    engines = torch.backends.quantized.supported_engines
    for name in ("x86", "fbgemm", "qnnpack"):
        if name in engines:
            return name
    raise ModelError(f"no int8 engine in this torch build (supported: {engines})")

"""The one device rule of the library (in the data layer, the lowest floor, so loaders can use it too)."""
from __future__ import annotations

import torch


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``"auto"``/``None`` -> cuda when available else cpu; anything else is passed to ``torch.device``."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)

"""Methods behind one interface: `pfgm` and `pfgmpp` (any D, inf = EDM)."""

from __future__ import annotations

from pfgmctl.methods.base import LossOut, Method, PriorDraw, model_dtype
from pfgmctl.methods.exact import ExactDenoiser, ExactField
from pfgmctl.methods.pfgm import PFGM
from pfgmctl.methods.pfgmpp import PFGMPP

METHODS: dict[str, type] = {"pfgm": PFGM, "pfgmpp": PFGMPP}

__all__ = [
    "METHODS",
    "PFGM",
    "PFGMPP",
    "ExactDenoiser",
    "ExactField",
    "LossOut",
    "Method",
    "PriorDraw",
    "model_dtype",
]

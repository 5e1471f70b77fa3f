"""Residual MLP raw net for vector data: forward(x, c_noise) with an embedding of c_noise."""

from __future__ import annotations

import math

from torch import Tensor, nn

from pfgmctl.nets.embedding import FourierEmbedding, PositionalEmbedding


class _Block(nn.Module):
    """h + W2·SiLU(W1·SiLU(LayerNorm(h)) + emb)."""

    def __init__(self, hidden: int, emb: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.fc1 = nn.Linear(hidden, hidden)
        self.emb = nn.Linear(emb, hidden)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, hidden)

    def forward(self, h: Tensor, e: Tensor) -> Tensor:
        a = nn.functional.silu(self.fc1(nn.functional.silu(self.norm(h))) + self.emb(e))
        return h + self.fc2(self.drop(a))


class MLP(nn.Module):
    """Raw net for items of `item_shape`; returns [B, C + out_extra, *rest] (C = item_shape[0]).

    `out_extra` = 1 gives the PFGM field head its extra z-channel (pfgm.md §2.4).
    """

    def __init__(
        self,
        item_shape: tuple[int, ...],
        *,
        hidden: int = 256,
        blocks: int = 3,
        emb_dim: int = 64,
        embedding: str = "positional",
        dropout: float = 0.0,
        out_extra: int = 0,
        num_classes: int = 0,
        augment_dim: int = 0,
    ) -> None:
        super().__init__()
        self.item_shape = tuple(item_shape)
        rest = math.prod(self.item_shape[1:])
        self.out_shape = (self.item_shape[0] + out_extra, *self.item_shape[1:])
        n_in, n_out = math.prod(self.item_shape), math.prod(self.item_shape) + out_extra * rest
        emb_cls = FourierEmbedding if embedding == "fourier" else PositionalEmbedding
        self.embed = nn.Sequential(emb_cls(emb_dim), nn.Linear(emb_dim, emb_dim), nn.SiLU())
        self.label_embed = nn.Embedding(num_classes, emb_dim) if num_classes > 0 else None
        self.aug_embed = nn.Linear(augment_dim, emb_dim, bias=False) if augment_dim > 0 else None
        self.inp = nn.Linear(n_in, hidden)
        self.blocks = nn.ModuleList(_Block(hidden, emb_dim, dropout) for _ in range(blocks))
        self.out_norm = nn.LayerNorm(hidden)
        self.out = nn.Linear(hidden, n_out)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(
        self,
        x: Tensor,
        c_noise: Tensor,
        labels: Tensor | None = None,
        aug_labels: Tensor | None = None,
    ) -> Tensor:
        e = self.embed(c_noise)
        if self.label_embed is not None:
            if labels is None:
                raise ValueError("this model is class-conditional: pass class labels")
            e = e + self.label_embed(labels)
        if self.aug_embed is not None and aug_labels is not None:
            e = e + self.aug_embed(aug_labels.to(e.dtype))
        h = self.inp(x.flatten(1))
        for block in self.blocks:
            h = block(h, e)
        out = self.out(nn.functional.silu(self.out_norm(h)))
        return out.reshape(x.shape[0], *self.out_shape)

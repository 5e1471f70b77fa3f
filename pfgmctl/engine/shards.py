"""How one training step's global batch is cut into shards, and the stateless per-shard randomness.

- **Shards.** The global batch B_S = `train.batch_size` is cut into S equal shards of m rows
  (m = `train.micro_batch`, default B_S / world size). Rank r trains shards r·A … r·A + A − 1 one
  after the other (A = S / world size accumulation steps).
- **Randomness is stateless.** Shard s of step k draws its noise (and data transforms, and
  dropout) from generators seeded by a hash of (seed, k, s): a run is a function of (profile, S),
  whatever the world size, and resume is bit-exact with nothing but the data stream to save.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from pfgmctl.config.schema import ImageData, Profile, TrainConfig
from pfgmctl.data.augment import augment
from pfgmctl.data.transforms import dequantize, xflip
from pfgmctl.errors import ProfileError


@dataclass(frozen=True)
class Shards:
    """How one step's global batch is cut: S = batch / micro shards, A = S / world per rank."""

    batch: int  # B_S, global
    micro: int  # m, rows per shard (micro-batch)
    world: int  # ranks

    @property
    def count(self) -> int:
        """S: shards per step."""
        return self.batch // self.micro

    @property
    def accum(self) -> int:
        """A: shards (accumulation steps) per rank."""
        return self.count // self.world

    def of_rank(self, rank: int) -> range:
        """The shard indices rank `rank` trains, in order."""
        return range(rank * self.accum, (rank + 1) * self.accum)


def plan_shards(t: TrainConfig, world_size: int) -> Shards:
    """Validate `train.batch_size` / `train.micro_batch` against the world size (one-line errors).

    `micro_batch` is a per-device cap: None or ≥ batch_size / world means one shard per rank.
    """
    b = t.batch_size
    if b % world_size:
        raise ProfileError(
            f"train.batch_size={b} is not divisible by the world size {world_size}; "
            f"use a multiple of {world_size} or change --nproc_per_node"
        )
    per_rank = b // world_size
    micro = per_rank if t.micro_batch is None else min(t.micro_batch, per_rank)
    if per_rank % micro:
        fit = max(d for d in range(1, micro + 1) if per_rank % d == 0)
        raise ProfileError(
            f"train.micro_batch={micro} does not divide the per-device batch {per_rank} "
            f"(train.batch_size={b} / world size {world_size}); use train.micro_batch={fit}"
        )
    return Shards(b, micro, world_size)


def stream_seed(seed: int, step: int, shard: int, purpose: str) -> int:
    """A 63-bit seed from (train.seed, step, shard, purpose): "noise", "data" or "dropout"."""
    key = f"pfgmctl/{seed}/{step}/{shard}/{purpose}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") >> 1


def stream_generator(
    seed: int, step: int, shard: int, purpose: str, device: torch.device
) -> torch.Generator:
    """A fresh generator on `device` for one shard of one step (nothing to save for resume)."""
    return torch.Generator(device=device).manual_seed(stream_seed(seed, step, shard, purpose))


def seed_dropout(seed: int, device: torch.device) -> None:
    """Seed the default generators dropout draws from: the CPU one and `device`'s own.

    (`torch.manual_seed` would also do it, but it touches every backend and costs ~0.3 ms.)
    """
    torch.random.default_generator.manual_seed(seed)
    if device.type == "cuda":
        with torch.cuda.device(device):
            torch.cuda.manual_seed(seed)
    elif device.type == "mps":
        torch.mps.manual_seed(seed)


class ShardBatch(NamedTuple):
    """What `Method.loss` gets for one shard: y = charges[:m] when charges are used."""

    y: Tensor
    charges: Tensor | None
    labels: Tensor | None
    aug_labels: Tensor | None


def front(x: Tensor, lo: int, hi: int) -> Tensor:
    """Rows [lo, hi) moved to the front, the rest after them in order (the field is a sum)."""
    if lo == 0:
        return x
    return torch.cat([x[lo:hi], x[:lo], x[hi:]])


class Transforms(NamedTuple):
    """Per-shard data transforms: [data] xflip / dequantize (bin width from [data] scale), augment p."""

    xflip: bool = False
    dequantize: bool = False
    scale: float = 1.0
    augment: float = 0.0

    @property
    def any(self) -> bool:
        """Whether a shard needs a data generator at all."""
        return self.xflip or self.dequantize or self.augment > 0


def transforms_of(profile: Profile) -> Transforms:
    """The profile's transforms; only image sources have `xflip` / `dequantize`."""
    d = profile.data
    if not isinstance(d, ImageData):
        return Transforms(augment=profile.train.augment)
    return Transforms(d.xflip, d.dequantize, abs(d.scale), profile.train.augment)


def shard_batch(
    rows: Tensor,
    labels: Tensor | None,
    lo: int,
    m: int,
    *,
    charges: bool,
    transforms: Transforms,
    gen: torch.Generator | None,
) -> ShardBatch:
    """The shard of rows [lo, lo + m): its y, charges (PFGM), labels and transforms.

    With charges, y is moved to the front of all rows so that y = charges[:m] and the labels of
    the charges line up (`Method.loss` contract). `xflip` and `dequantize` act on every charge
    (each its own draw): the target becomes the exact empirical field of the flipped /
    dequantised data. EDM augmentation acts on y only and y's augmented rows replace its charges:
    rows drawn without augmentation (aug_labels = 0, the condition used when sampling) keep the
    exact field of the plain data as their target; augmented rows get an approximate one.
    """
    tf = transforms
    hi = lo + m
    if charges:
        x, lab = front(rows, lo, hi), None if labels is None else front(labels, lo, hi)
    else:
        x, lab = rows[lo:hi], None if labels is None else labels[lo:hi]
    if gen is not None and tf.xflip:
        x = xflip(x, gen)
    if gen is not None and tf.dequantize:
        x = dequantize(x, gen, levels=256, scale=tf.scale)
    y, aug = x[:m], None
    if gen is not None and tf.augment > 0:
        y, aug = augment(y, tf.augment, gen)
        if charges:
            x = torch.cat([y, x[m:]])
    return ShardBatch(y, x if charges else None, lab, aug)

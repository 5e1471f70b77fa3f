"""Multi-process training under torchrun (architecture.md §9): process group, DDP wrap, rank-0 I/O.

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT. Without them the run is a
single process and nothing here touches `torch.distributed`. CUDA ranks use NCCL on
`cuda:LOCAL_RANK`; CPU ranks use gloo (how the tests run two ranks on one machine).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as tdist
from torch import nn

from pfgmctl.errors import UsageError

ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class World:
    """This process's place in the job: rank, number of ranks, local rank on its node."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the only rank that writes the run dir and prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """More than one rank (a process group is active)."""
        return self.size > 1


SINGLE = World()


def launched() -> bool:
    """True under torchrun (its environment variables are set) with more than one rank."""
    return all(k in os.environ for k in ENV_KEYS) and int(os.environ["WORLD_SIZE"]) > 1


def current() -> World:
    """The world of an initialised process group, else a single process."""
    if tdist.is_available() and tdist.is_initialized():
        return World(tdist.get_rank(), tdist.get_world_size(), _env_int("LOCAL_RANK", 0))
    return SINGLE


def is_main() -> bool:
    """Rank 0 (or no process group)."""
    return current().main


def _env_int(key: str, default: int) -> int:
    value = os.environ.get(key, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise UsageError(f"environment variable {key}={value!r} is not an integer") from None


def init_from_env(device: torch.device) -> tuple[World, torch.device]:
    """Join torchrun's process group; return the world and this rank's device.

    `device` is the profile's picked device: CUDA ranks get `cuda:LOCAL_RANK` and NCCL, CPU ranks
    gloo. Not launched by torchrun (or WORLD_SIZE=1): (SINGLE, device) and no process group.
    """
    if not launched():
        return SINGLE, device
    if not tdist.is_available():
        raise UsageError("torch.distributed is not available in this torch build; run one process")
    if device.type not in ("cuda", "cpu"):
        raise UsageError(
            f"train.device={device.type}: multi-process training supports cuda and cpu only"
        )
    local = _env_int("LOCAL_RANK", 0)
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise UsageError(
                f"LOCAL_RANK={local} but only {torch.cuda.device_count()} CUDA devices are "
                "visible; lower --nproc_per_node"
            )
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not tdist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        kwargs: dict[str, Any] = {"device_id": device} if device.type == "cuda" else {}
        tdist.init_process_group(backend=backend, **kwargs)
    return World(tdist.get_rank(), tdist.get_world_size(), local), device


def barrier() -> None:
    """Wait for every rank (a no-op for a single process)."""
    if tdist.is_available() and tdist.is_initialized():
        tdist.barrier()


def broadcast_path(path: Path | None, world: World) -> Path:
    """Rank 0's `path` on every rank (rank 0 creates the run dir, the others learn its name)."""
    if not world.distributed:
        assert path is not None
        return path
    box: list[Any] = [str(path) if world.main else None]
    tdist.broadcast_object_list(box, src=0)
    return Path(str(box[0]))


def wrap_ddp(model: nn.Module, world: World, device: torch.device) -> nn.Module:
    """`DistributedDataParallel(model)` when distributed (no unused parameters), else `model`."""
    if not world.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=False)


def cleanup() -> None:
    """Leave the process group (idempotent)."""
    if tdist.is_available() and tdist.is_initialized():
        tdist.destroy_process_group()

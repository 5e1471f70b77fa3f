"""Image data sources: folder, CIFAR-10 python batches, procedural shapes (issue 3; being built)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pfgmctl.errors import DataError

if TYPE_CHECKING:
    from pfgmctl.config.schema import Cifar10Data, FolderData, ShapesData
    from pfgmctl.data import RawData


def load_images(cfg: FolderData | Cifar10Data | ShapesData) -> RawData:
    """Rows [n, C, H, W] in [−1, 1] with labels where the source has them."""
    raise DataError(f"[data] kind = '{cfg.kind}' is not available yet")

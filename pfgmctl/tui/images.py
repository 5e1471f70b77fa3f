"""Preview images: defensive PNG loading and a widget per terminal image protocol."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.widget import Widget
from textual.widgets import Static

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

PROTOCOLS = ("auto", "tgp", "sixel", "halfcell", "unicode")
"""Values of `--image-protocol` / $PFGMCTL_IMAGE_PROTOCOL."""


def load_png(path: Path) -> PILImage | None:
    """Decode a PNG fully into RGB; None if it is missing, truncated or not an image."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
            return img.convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


class PixelsImage(Static):
    """Half-cell (▄) image via rich-pixels: no terminal probing, deterministic (tests, fallback)."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self._image: PILImage | None = None

    @property
    def image(self) -> PILImage | None:
        """The picture being shown."""
        return self._image

    @image.setter
    def image(self, value: PILImage | None) -> None:
        self._image = value
        self._draw()

    def on_resize(self) -> None:
        """Refit the picture to the new size."""
        self._draw()

    def _draw(self) -> None:
        """Scale the image to the content box (2 pixels per cell vertically) and render it."""
        from rich_pixels import Pixels

        width, height = self.content_size.width, self.content_size.height * 2
        if self._image is None or width < 1 or height < 2:
            self.update("")
            return
        iw, ih = self._image.size
        scale = min(width / iw, height / ih)
        size = (max(1, int(iw * scale)), max(2, int(ih * scale)))
        self.update(Pixels.from_image(self._image.resize(size)))


def image_widget(protocol: str, widget_id: str) -> Widget:
    """A widget with an `image` attribute for `protocol`; rich-pixels when textual-image is absent.

    textual-image probes the terminal when imported, so it is imported here, before `App.run()`.
    """
    if protocol == "halfcell":
        return PixelsImage(id=widget_id)
    try:
        from textual_image import widget as ti
    except ImportError:
        return PixelsImage(id=widget_id)
    classes: dict[str, Any] = {
        "auto": ti.Image,
        "tgp": ti.TGPImage,
        "sixel": ti.SixelImage,
        "unicode": ti.UnicodeImage,
    }
    widget: Widget = classes[protocol](id=widget_id)
    return widget

"""Modal screens of the dashboard: profile viewer, run picker and the quit question."""

from __future__ import annotations

from pathlib import Path

from rich.syntax import Syntax
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, OptionList, Static
from textual.widgets.option_list import Option


class ProfileScreen(ModalScreen[None]):
    """The run's resolved profile.toml."""

    BINDINGS = [  # noqa: RUF012 - Textual's class attribute
        Binding("escape,p,q", "close", "Close"),
    ]

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text or "# profile.toml is missing or unreadable"

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="profile-box"):
            yield Static(Syntax(self.text, "toml", theme="ansi_dark"), id="profile-text")

    def action_close(self) -> None:
        """Back to the dashboard."""
        self.dismiss(None)


class RunPicker(ModalScreen[Path | None]):
    """Choose one run directory of the runs folder."""

    BINDINGS = [Binding("escape", "close", "Close")]  # noqa: RUF012

    def __init__(self, runs: list[tuple[Path, str]], current: Path) -> None:
        super().__init__()
        self.runs = runs
        self.current = current

    def compose(self) -> ComposeResult:
        options = [Option(label, id=str(i)) for i, (_, label) in enumerate(self.runs)]
        with Vertical(id="picker-box"):
            yield Label("Runs (enter to open, esc to close)")
            yield OptionList(*options, id="picker")

    def on_mount(self) -> None:
        """Highlight the run being shown."""
        for i, (path, _) in enumerate(self.runs):
            if path == self.current:
                self.query_one(OptionList).highlighted = i

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        """Open the chosen run."""
        self.dismiss(self.runs[int(event.option.id or 0)][0])

    def action_close(self) -> None:
        """Keep the current run."""
        self.dismiss(None)


class QuitScreen(ModalScreen[str | None]):
    """Asked on quit while training runs as our child: stop it or leave it running."""

    BINDINGS = [  # noqa: RUF012
        Binding("s", "choose('stop')", "Stop training"),
        Binding("l", "choose('leave')", "Leave running"),
        Binding("escape", "choose('')", "Cancel"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="quit-box"):
            yield Label("Training is still running. Stop it, or leave it running after quitting?")
            with Horizontal():
                yield Button("Stop training [s]", id="stop", variant="error")
                yield Button("Leave running [l]", id="leave", variant="primary")
                yield Button("Cancel [esc]", id="cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """Answer with the pressed button."""
        self.action_choose("" if event.button.id == "cancel" else str(event.button.id))

    def action_choose(self, choice: str) -> None:
        """Dismiss with 'stop', 'leave' or None (cancel)."""
        self.dismiss(choice or None)

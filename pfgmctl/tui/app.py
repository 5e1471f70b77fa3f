"""The `pfgmctl tui` dashboard: a pure viewer that polls one run directory (never imports torch)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Header, Log, ProgressBar, Sparkline, Static
from textual_plotext import PlotextPlot

from pfgmctl.engine.rundir import list_runs
from pfgmctl.tui.images import image_widget, load_png
from pfgmctl.tui.model import PreviewRef, RunModel, newest_preview
from pfgmctl.tui.panels import bin_labels, stats_table, trajectory_text
from pfgmctl.tui.screens import ProfileScreen, QuitScreen, RunPicker

CSS = """
#grid { grid-size: 3 3; grid-columns: 2fr 1fr 1fr; grid-rows: 3fr 2fr 2fr; }
#grid > * { border: round $primary 60%; border-title-color: $accent; }
#loss { column-span: 2; }
#preview-box { row-span: 2; }
#preview-img { width: 1fr; height: auto; max-height: 100%; }
PixelsImage#preview-img { height: 1fr; }
#preview-label { height: 1; color: $text-muted; }
#traj-text { height: 3; }
#traj-bar { height: 1; }
#traj-spark { height: 3; }
#ckpts { height: 100%; }
ProfileScreen, RunPicker, QuitScreen { align: center middle; }
#profile-box { width: 80%; height: 80%; border: round $accent; background: $surface; }
#picker-box { width: 70%; height: 60%; border: round $accent; background: $surface; }
#quit-box { width: 76; height: 9; border: round $warning; background: $surface; padding: 1; }
#quit-box Horizontal { height: 3; }
"""


class Dashboard(App[str | None]):
    """Live view of a run: loss, loss per noise bin, stats, preview, sampling trajectory, log."""

    CSS = CSS
    TITLE = "pfgmctl"
    BINDINGS = [  # noqa: RUF012 - Textual's class attribute
        Binding("q", "quit_app", "Quit"),
        Binding("z", "toggle_zoom", "Zoom recent/all"),
        Binding("g", "toggle_log", "Log/linear loss"),
        Binding("p", "show_profile", "Profile"),
        Binding("r", "pick_run", "Runs"),
    ]

    def __init__(
        self,
        run_dir: Path,
        *,
        runs_root: Path | None = None,
        image_protocol: str = "auto",
        poll_interval: float = 0.5,
        is_training: Callable[[], bool] | None = None,
    ) -> None:
        super().__init__()
        self.model = RunModel(run_dir)
        self.runs_root = runs_root if runs_root is not None else run_dir.parent
        self.image_protocol = image_protocol
        self.poll_interval = poll_interval
        self.is_training = is_training
        self.zoom = False
        self.log_scale = True
        self.preview: PreviewRef | None = None
        self._bad_preview: PreviewRef | None = None
        self._image = image_widget(image_protocol, "preview-img")

    def compose(self) -> ComposeResult:
        yield Header()
        with Grid(id="grid"):
            yield PlotextPlot(id="loss")
            with Vertical(id="preview-box"):
                yield self._image
                yield Static("no preview yet", id="preview-label")
            yield PlotextPlot(id="bins")
            yield Static(id="stats")
            with Vertical(id="traj"):
                yield Static(id="traj-text")
                yield ProgressBar(total=1.0, show_eta=False, id="traj-bar")
                yield Sparkline([], id="traj-spark")
            yield DataTable(id="ckpts", cursor_type="row", zebra_stripes=True)
            yield Log(id="log", max_lines=500)
        yield Footer()

    def on_mount(self) -> None:
        """Set titles and columns, read what exists, start polling."""
        titles = {
            "loss": "loss",
            "bins": "loss per noise bin",
            "stats": "run",
            "preview-box": "preview",
            "traj": "sampling trajectory",
            "ckpts": "checkpoints",
            "log": "events",
        }
        for wid, title in titles.items():
            self.query_one(f"#{wid}").border_title = title
        self.query_one("#ckpts", DataTable).add_columns("step", "kimg", "preview", "state")
        self._reset_view()
        if self.poll_interval > 0:
            self.set_interval(self.poll_interval, self.poll)

    def _reset_view(self) -> None:
        """Clear per-run widgets and draw the current model from scratch."""
        self.sub_title = self.model.run_dir.name
        self.query_one("#ckpts", DataTable).clear()
        self.query_one("#log", Log).clear()
        self.preview = self._bad_preview = None
        self._set_image(None, "no preview yet")
        self.poll(force=True)

    def poll(self, force: bool = False) -> None:
        """Read new lines and files from the run dir and refresh what changed."""
        n_ckpts = len(self.query_one("#ckpts", DataTable).rows)
        changed = self.model.poll()
        if force or changed & {"metrics", "missing"}:
            self._draw_loss()
            self._draw_bins()
        if force or changed:
            self.query_one("#stats", Static).update(stats_table(self.model))
        if force or "events" in changed:
            self._draw_events(n_ckpts, force)
        self._check_preview()

    def _draw_loss(self) -> None:
        """Loss over steps: log axis (toggle `g`), whole run or recent window (toggle `z`)."""
        widget = self.query_one("#loss", PlotextPlot)
        plt = widget.plt
        plt.clear_data()
        points = self.model.series(self.zoom)
        log = self.log_scale and bool(points) and all(loss > 0 for _, loss in points)
        plt.yscale("log" if log else "linear")
        if points:
            plt.plot([s for s, _ in points], [v for _, v in points], marker="braille")
        plt.xlabel("step")
        widget.border_title = (
            f"loss ({'log' if log else 'linear'}, {'recent' if self.zoom else 'all'} · z/g)"
        )
        widget.refresh()

    def _draw_bins(self) -> None:
        """Mean loss per σ (or z) bin of the newest tick."""
        widget = self.query_one("#bins", PlotextPlot)
        plt = widget.plt
        plt.clear_data()
        bins = self.model.loss_bins or {}
        means = [
            m if isinstance(m, int | float) and math.isfinite(m) else 0.0
            for m in bins.get("mean", [])
        ]
        if means:
            xs = [float(i) for i in range(len(means))]
            plt.bar(xs, means)
            plt.xticks(xs, bin_labels(list(bins.get("edges", [])), len(means)))
        var = "σ" if bins.get("var", "sigma") == "sigma" else "z"
        widget.border_title = f"loss per {var} bin (left edge)"
        widget.refresh()

    def _draw_events(self, n_ckpts: int, force: bool) -> None:
        """New checkpoints, log lines and the sampling trajectory."""
        table = self.query_one("#ckpts", DataTable)
        for ck in self.model.checkpoints[n_ckpts:]:
            table.add_row(str(ck.step), f"{ck.kimg:.1f}", ck.sample, ck.state)
        if table.row_count:
            table.move_cursor(row=table.row_count - 1)
        log = self.query_one("#log", Log)
        lines = list(self.model.log) if force else self.model.new_log
        if lines:
            log.write_lines(lines)
        self._draw_trajectory()

    def _draw_trajectory(self) -> None:
        """z or σ/r of the running sampler, its progress and log10 history."""
        traj = self.model.trajectory
        self.query_one("#traj-text", Static).update(trajectory_text(self.model))
        self.query_one("#traj-bar", ProgressBar).update(
            progress=traj.progress if traj is not None else 0.0
        )
        history = [math.log10(v) for v in traj.history] if traj is not None else []
        self.query_one("#traj-spark", Sparkline).data = history

    def _check_preview(self) -> None:
        """Show the newest samples/*.png once it decodes; a truncated one is retried next poll."""
        ref = newest_preview(self.model.run_dir)
        if ref is None or ref == self.preview:
            return
        img = load_png(ref.path)
        if img is None:
            if ref != self._bad_preview:
                self._bad_preview = ref
                self.query_one("#log", Log).write_line(f"preview {ref.path.name} unreadable yet")
            return
        self.preview = ref
        self._set_image(img, f"{ref.label} · {ref.path.name}")

    def _set_image(self, img: object, label: str) -> None:
        """Put a PIL image (or None) into the preview widget."""
        widget: Widget = self._image
        widget.image = img  # type: ignore[attr-defined]
        self.query_one("#preview-label", Static).update(label)

    def action_toggle_zoom(self) -> None:
        """Whole run ↔ the recent window."""
        self.zoom = not self.zoom
        self._draw_loss()

    def action_toggle_log(self) -> None:
        """Log ↔ linear loss axis."""
        self.log_scale = not self.log_scale
        self._draw_loss()

    def action_show_profile(self) -> None:
        """Show the resolved profile.toml."""
        self.push_screen(ProfileScreen(self.model.profile_text))

    def action_pick_run(self) -> None:
        """Choose another run of the runs folder."""
        runs = list_runs(self.runs_root)
        if len(runs) < 2:
            self.notify("only one run in " + str(self.runs_root))
            return
        labels = [(p, p.name) for p in reversed(runs)]
        self.push_screen(RunPicker(labels, self.model.run_dir), self.switch_run)

    def switch_run(self, run_dir: Path | None) -> None:
        """Show `run_dir` instead of the current run."""
        if run_dir is None or run_dir == self.model.run_dir:
            return
        self.model = RunModel(run_dir)
        self._reset_view()

    def action_quit_app(self) -> None:
        """Quit; ask first when training runs as our child process."""
        if self.is_training is not None and self.is_training():
            self.push_screen(QuitScreen(), self._after_quit_question)
        else:
            self.exit(None)

    def _after_quit_question(self, choice: str | None) -> None:
        """Exit with 'stop' or 'leave'; stay on cancel."""
        if choice is not None:
            self.exit(choice)

    @on(DataTable.RowSelected, "#ckpts")
    def _show_checkpoint_preview(self, event: DataTable.RowSelected) -> None:
        """Enter on a checkpoint shows its preview picture."""
        ck = self.model.checkpoints[event.cursor_row]
        path = self.model.run_dir / "samples" / ck.sample
        img = load_png(path) if ck.sample else None
        if img is not None:
            self._set_image(img, f"step {ck.step} · {ck.sample} (selected)")

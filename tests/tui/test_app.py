"""Headless dashboard tests: App.run_test() + Pilot on fixture run dirs (architecture §7)."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from rich.console import Console
from textual.widgets import DataTable, ProgressBar, Sparkline, Static
from textual_plotext import PlotextPlot
from tui_fixtures import append, make_run, metrics_line, sample_events, write_png

from pfgmctl.tui.app import Dashboard
from pfgmctl.tui.images import PixelsImage
from pfgmctl.tui.screens import ProfileScreen, QuitScreen, RunPicker

SIZE = (140, 44)


def dashboard(run: Path, **kwargs: object) -> Dashboard:
    """A dashboard that only polls when the test calls `app.poll()` (deterministic)."""
    return Dashboard(run, image_protocol="halfcell", poll_interval=0, **kwargs)  # type: ignore[arg-type]


def static_text(app: Dashboard, selector: str) -> str:
    """Plain text of a Static's content (str, Text or any Rich renderable)."""
    console = Console(width=200, file=io.StringIO(), record=True)
    console.print(app.query_one(selector, Static).content)
    return console.export_text()


async def test_metrics_appends_update_loss_chart(tmp_path: Path) -> None:
    run = make_run(tmp_path, steps=5)
    app = dashboard(run)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert [s for s, _ in app.model.series(zoom=False)] == [1, 2, 3, 4, 5]
        append(run / "metrics.jsonl", metrics_line(6, 0.25), partial='{"step": 7, "lo')
        app.poll()
        await pilot.pause()
        assert app.model.series(zoom=False)[-1] == (6, 0.25)
        assert app.model.n_metrics == 6
        append(run / "metrics.jsonl", partial='ss": 0.2}\n')  # the partial line completes
        app.poll()
        assert app.model.n_metrics == 7  # the completed line {"step": 7, "loss": 0.2} counts
        assert app.model.series(zoom=False)[-1] == (7, 0.2)
        await pilot.press("z")
        assert app.zoom
        assert "recent" in str(app.query_one("#loss", PlotextPlot).border_title)
        assert "loss 0.2000" in static_text(app, "#stats")


async def test_new_preview_replaces_image_and_truncated_png_is_tolerated(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    app = dashboard(run)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.preview is None
        write_png(run / "samples" / "000000005.png", (255, 0, 0))
        app.poll()
        await pilot.pause()
        image = app.query_one("#preview-img", PixelsImage).image
        assert image is not None
        assert image.getpixel((0, 0)) == (255, 0, 0)
        assert "step 5" in static_text(app, "#preview-label")
        good = (run / "samples" / "000000005.png").read_bytes()
        bad = run / "samples" / "000000010.png"
        bad.write_bytes(good[: len(good) // 2])  # a truncated PNG, newer than the first
        app.poll()
        await pilot.pause()
        assert app.query_one("#preview-img", PixelsImage).image is image  # old one kept
        write_png(bad, (0, 0, 255))
        app.poll()
        await pilot.pause()
        image = app.query_one("#preview-img", PixelsImage).image
        assert image is not None
        assert image.getpixel((0, 0)) == (0, 0, 255)
        assert "step 10" in static_text(app, "#preview-label")


async def test_sampling_events_move_the_trajectory(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    app = dashboard(run)
    events = sample_events("preview-000000005", n=4)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert "no sampling yet" in static_text(app, "#traj-text")
        append(run / "events.jsonl", *events[:3])
        app.poll()
        await pilot.pause()
        bar = app.query_one("#traj-bar", ProgressBar)
        assert bar.progress == pytest.approx(0.5)
        text = static_text(app, "#traj-text")
        assert "step 2/4" in text
        assert "NFE 4" in text
        assert "σ = 0.4" in text
        assert len(app.query_one("#traj-spark", Sparkline).data or []) == 2
        append(
            run / "events.jsonl",
            *events[3:],
            {"type": "sample_done", "job": "preview-000000005", "nfe": 8, "seconds": 1.5},
        )
        app.poll()
        await pilot.pause()
        assert app.query_one("#traj-bar", ProgressBar).progress == pytest.approx(1.0)
        assert "done" in static_text(app, "#traj-text")
        assert "0.002" in static_text(app, "#traj-text")


async def test_checkpoints_log_and_deleted_run_dir(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    app = dashboard(run)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.query_one("#ckpts", DataTable)
        assert table.row_count == 1
        ck = {"type": "checkpoint", "step": 9, "kimg": 0.6, "state": "t.pt", "sample": "b.png"}
        append(run / "events.jsonl", ck, {"type": "run_end", "status": "done", "step": 9})
        app.poll()
        await pilot.pause()
        assert table.row_count == 2
        assert app.model.status == "done"
        assert any("run_end done" in line for line in app.model.log)
        shutil.rmtree(run)
        app.poll()
        await pilot.pause()
        assert "run directory deleted" in static_text(app, "#stats")
        await pilot.press("q")
    assert app.return_value is None


async def test_profile_picker_and_quit_question(tmp_path: Path) -> None:
    old, new = make_run(tmp_path, 0), make_run(tmp_path, 1, steps=2)
    app = dashboard(new, is_training=lambda: True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("p")
        assert isinstance(app.screen, ProfileScreen)
        await pilot.press("escape")
        await pilot.press("r")
        assert isinstance(app.screen, RunPicker)
        await pilot.press("down", "enter")
        await pilot.pause()
        assert app.model.run_dir == old
        assert app.model.n_metrics == 5
        await pilot.press("q")
        assert isinstance(app.screen, QuitScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, QuitScreen)
        await pilot.press("q", "l")
    assert app.return_value == "leave"


async def test_screenshot_has_no_clock_and_shows_panels(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    append(run / "events.jsonl", *sample_events("job", n=4))
    write_png(run / "samples" / "000000005.png", (0, 128, 255))
    app = dashboard(run)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        svg = app.export_screenshot()
    for needle in ("loss per σ bin", "sampling trajectory", "checkpoints", "step 4/4", "Quit"):
        assert needle.replace(" ", "&#160;") in svg or needle in svg


@pytest.mark.parametrize("steps", [0, 1])
async def test_empty_and_single_point_runs_render(tmp_path: Path, steps: int) -> None:
    run = make_run(tmp_path, steps=steps)
    (run / "profile.toml").unlink()
    app = dashboard(run)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("g", "g", "z")
        svg = app.export_screenshot()
    assert "loss" in svg
    assert app.model.n_metrics == steps

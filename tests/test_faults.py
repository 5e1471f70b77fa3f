"""Reliability (issue 8): numerical faults, write failures, SIGTERM, crash hooks and kill -9.

Contract for metrics.jsonl under kills: a resume rewrites it atomically without torn lines and
without lines past the resumed checkpoint's step, so after any number of kill/resume cycles the
file holds each tick step exactly once, in order. events.jsonl is a journal: it may hold events
past the checkpoint (a killed attempt), but never a torn line.

The subprocess kill harness is marked `slow`: the full suite (CI) runs it, `-m "not slow"` skips it.
"""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from pfgmctl.cli import app
from pfgmctl.config.load import load_profile
from pfgmctl.data import build_dataset
from pfgmctl.engine import checkpoint as ckpt_mod
from pfgmctl.engine import faults
from pfgmctl.engine import train as train_mod
from pfgmctl.engine.build import resolve
from pfgmctl.engine.checkpoint import load_state
from pfgmctl.engine.faults import trim_metrics, trim_torn_tail
from pfgmctl.engine.rundir import RunSink, create_run_dir, read_latest
from pfgmctl.errors import PfgmctlError
from pfgmctl.methods.base import LossOut

runner = CliRunner()


def _invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), prog_name="pfgmctl")
    return result.exit_code, result.stdout, result.stderr


def _error_line(code: int, err: str, expected: int, *needles: str) -> str:
    """Training prints its run header first; the error is then exactly one last `error:` line."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == expected, err
    assert [ln for ln in lines if ln.startswith("error:")] == lines[-1:], err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[-1], (needle, lines[-1])
    return lines[-1]


class _NanAt:
    """Wraps a Method: the loss is NaN on the calls whose 1-based index is in `bad`."""

    def __init__(self, inner: Any, bad: set[int]) -> None:
        self.inner, self.bad, self.calls = inner, bad, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def loss(self, *args: Any, **kwargs: Any) -> LossOut:
        self.calls += 1
        out = self.inner.loss(*args, **kwargs)
        if self.calls in self.bad:
            return LossOut(out.loss * float("nan"), out.noise)
        return out


def _inject_nan(monkeypatch: pytest.MonkeyPatch, bad: set[int]) -> None:
    real = train_mod.build_method
    monkeypatch.setattr(train_mod, "build_method", lambda prof: _NanAt(real(prof), bad))


def _setup(tmp_path: Path, tiny_keys: list[str], *extra: str) -> tuple[Any, Any, Path]:
    prof = load_profile(
        "toy2d-edm", [*tiny_keys, "train.tick_kimg=0.128", "train.preview_n=0", *extra]
    )
    dataset = build_dataset(prof.data)
    prof = resolve(prof, dataset)
    return prof, dataset, create_run_dir(tmp_path / "runs", prof.name)


def _metrics(run: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def test_nan_loss_steps_are_skipped_and_counted(
    tmp_path: Path, tiny_keys: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _inject_nan(monkeypatch, {3, 4, 7})
    prof, dataset, run = _setup(tmp_path, tiny_keys)
    before = {
        k: v.clone()
        for k, v in train_mod._init_state(prof, dataset, torch.device("cpu"))
        .model.state_dict()
        .items()
    }
    result = train_mod.train(prof, dataset, run, device=torch.device("cpu"), sink=RunSink(run))
    assert (result.status, result.step) == ("done", 10)
    rows = _metrics(run)
    assert [r["skipped_steps"] for r in rows] == [0, 2, 0, 1, 0]
    # NaN losses stay out of the tick mean; a tick with no good step has loss null
    assert [r["loss"] is None for r in rows] == [False, True, False, False, False]
    state = load_state(run / "checkpoints" / "state-000000010.pt")
    assert all(torch.isfinite(v).all() for v in state["net"].values())
    assert any(not torch.equal(before[k], v) for k, v in state["net"].items())


def test_consecutive_bad_steps_stop_the_run_keeping_last_good_checkpoint(
    tiny: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _inject_nan(monkeypatch, set(range(5, 100)))
    code, _, err = _invoke(
        "train",
        "-p",
        "toy2d-edm",
        *tiny,
        "--set",
        "train.preview_n=0",
        "--set",
        "train.max_bad_steps=3",
        "--json",
    )
    line = _error_line(code, err, 1, "step 7", "train.max_bad_steps=3", "step 4")
    assert "not finite" in line
    run = next(Path("runs").iterdir())
    assert read_latest(run)["step"] == 4  # type: ignore[index]
    assert sorted(p.name for p in (run / "checkpoints").glob("state-*.pt")) == [
        "state-000000004.pt"
    ]
    last = json.loads((run / "events.jsonl").read_text().splitlines()[-1])
    assert (last["type"], last["status"], last["step"]) == ("run_end", "failed", 7)


@pytest.mark.parametrize(("err_no", "text"), [(errno.ENOSPC, "No space"), (errno.EACCES, "denied")])
def test_checkpoint_write_failure_keeps_previous(
    tiny: list[str], monkeypatch: pytest.MonkeyPatch, err_no: int, text: str
) -> None:
    real, calls = ckpt_mod.atomic_write_bytes, {"n": 0}

    def failing(path: Path, data: bytes, crash: str = "") -> None:
        calls["n"] += 1
        if calls["n"] >= 3:  # state + ema at step 4 succeed, the state file at step 8 fails
            raise OSError(err_no, os.strerror(err_no), str(path))
        real(path, data, crash)

    monkeypatch.setattr(ckpt_mod, "atomic_write_bytes", failing)
    code, _, err = _invoke("train", "-p", "toy2d-edm", *tiny, "--set", "train.preview_n=0")
    _error_line(code, err, 1, "step-8", text, "(step 4) is intact", "--resume latest")
    run = next(Path("runs").iterdir())
    assert read_latest(run)["step"] == 4  # type: ignore[index]
    assert load_state(run / "checkpoints" / "state-000000004.pt")["step"] == 4
    assert not list((run / "checkpoints").glob("*.tmp"))
    monkeypatch.setattr(ckpt_mod, "atomic_write_bytes", real)
    code, out, err = _invoke("train", "--resume", "latest", "--json")
    assert code == 0, err
    assert json.loads(out)["step"] == 10
    assert [r["step"] for r in _metrics(run)] == [2, 4, 6, 8, 10]


def test_sigterm_saves_and_restores_handler(tmp_path: Path, tiny_keys: list[str]) -> None:
    prof, dataset, run = _setup(tmp_path, tiny_keys)
    old = signal.getsignal(signal.SIGTERM)
    seen = {"n": 0}

    def sink(event: dict[str, Any]) -> None:
        RunSink(run)(event)
        if event["type"] == "progress":
            seen["n"] += 1
            if seen["n"] == 3:
                os.kill(os.getpid(), signal.SIGTERM)

    result = train_mod.train(prof, dataset, run, device=torch.device("cpu"), sink=sink)
    assert (result.status, result.signal, result.step) == ("interrupted", "SIGTERM", 3)
    assert read_latest(run)["step"] == 3  # type: ignore[index]
    assert signal.getsignal(signal.SIGTERM) is old


def test_trim_metrics_drops_torn_and_future_lines(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"step":2}\n{"step":4}\n{"step":6}\n{"st')
    assert trim_metrics(path, 4) == 2
    assert path.read_bytes() == b'{"step":2}\n{"step":4}\n'
    assert trim_metrics(path, 4) == 0
    events = tmp_path / "events.jsonl"
    events.write_bytes(b'{"type":"a"}\n{"ty')
    assert trim_torn_tail(events)
    assert events.read_bytes() == b'{"type":"a"}\n'


def test_engine_stops_at_first_bad_step_when_limit_is_one(
    tmp_path: Path, tiny_keys: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _inject_nan(monkeypatch, {1})
    prof, dataset, run = _setup(tmp_path, tiny_keys, "train.max_bad_steps=1")
    with pytest.raises(PfgmctlError, match=r"at step 1 .*last good checkpoint.*: none"):
        train_mod.train(prof, dataset, run, device=torch.device("cpu"), sink=RunSink(run))
    assert read_latest(run) is None


def test_crash_hook_counts_hits_and_is_inert_without_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(faults.CRASH_ENV, raising=False)
    assert not faults.crash_armed("metrics-write")
    monkeypatch.setattr(faults, "_hits", {})
    monkeypatch.setenv(faults.CRASH_ENV, "metrics-write:3")
    hits = [faults.crash_armed("metrics-write") for _ in range(4)]
    assert hits == [False, False, True, False]
    assert not faults.crash_armed("checkpoint-write")


def test_first_signal_is_deferred_second_raises() -> None:
    with faults.deferred_interrupts() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.signal == "SIGTERM"  # noted, not raised
        with pytest.raises(faults.Terminated):
            os.kill(os.getpid(), signal.SIGTERM)
        with pytest.raises(faults.Terminated):
            stop.check()


# ---------------------------------------------------------------------------------------------
# Subprocess harness: kill -9 at random moments and at the crash-hook points
# ---------------------------------------------------------------------------------------------

HARNESS = [
    "data.n=256",
    "net.hidden=16",
    "net.blocks=1",
    "net.emb_dim=8",
    "train.batch_size=32",
    "train.kimg=12.8",  # 400 steps, about 10 s on one CPU thread
    "train.tick_kimg=0.064",  # a metrics line every 2 steps
    "train.ckpt_ticks=3",  # a checkpoint every 6 steps
    "train.warmup_kimg=0.1",
    "train.preview_n=0",
    "train.keep_ckpts=2",
    "train.device=cpu",
]
TOTAL = 400


def _cmd(outdir: Path, resume: bool) -> list[str]:
    cmd = [sys.executable, "-m", "pfgmctl", "train", "-p", "toy2d-edm", "-o", str(outdir)]
    for item in HARNESS:
        cmd += ["--set", item]
    return [*cmd, "--resume", "latest"] if resume else cmd


def _env(crash: str | None = None) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("PFGMCTL_CRASH_AT", None)
    if crash:
        env["PFGMCTL_CRASH_AT"] = crash
    return env


def _has_checkpoint(outdir: Path) -> bool:
    runs = sorted(outdir.glob("0*")) if outdir.is_dir() else []
    return bool(runs) and read_latest(runs[-1]) is not None


def _check_run(run: Path) -> dict[str, int]:
    """Every line parses, steps strictly increase; the checkpoint named in latest.json loads."""
    raw = (run / "metrics.jsonl").read_bytes() if (run / "metrics.jsonl").exists() else b""
    lines = raw.split(b"\n")
    torn = 1 if lines and lines[-1] else 0
    steps = [json.loads(x)["step"] for x in lines[:-1]]
    events = [json.loads(ev) for ev in (run / "events.jsonl").read_bytes().split(b"\n")[:-1]]
    starts = [ev["step"] for ev in events if ev["type"] == "run_start"]
    latest = read_latest(run)
    saved = load_state(run / "checkpoints" / latest["state"])["step"] if latest else 0
    dupes = len(steps) - len(set(steps))
    return {
        "torn": torn,
        "dupes": dupes,
        "ordered": steps == sorted(steps),
        "saved": saved,
        "n": len(steps),
        "start": starts[-1] if starts else -1,
    }


def _events_size(outdir: Path) -> int:
    return sum(p.stat().st_size for p in outdir.glob("0*/events.jsonl")) if outdir.is_dir() else 0


def _kill_during_training(proc: subprocess.Popen[bytes], outdir: Path, delay: float) -> None:
    """Wait for the attempt's run_start event (start-up done), then SIGKILL after `delay` s."""
    size0, t0 = _events_size(outdir), time.monotonic()
    while proc.poll() is None and _events_size(outdir) == size0 and time.monotonic() - t0 < 60:
        time.sleep(0.02)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)


def _attempt(
    outdir: Path, crash: str | None, rng: random.Random, fresh: bool
) -> tuple[int, bool, str]:
    """One trainer process (resuming when a checkpoint exists); (return code, resumed, stderr)."""
    resume = not fresh and _has_checkpoint(outdir)
    proc = subprocess.Popen(
        _cmd(outdir, resume), env=_env(crash), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    if crash is None:
        _kill_during_training(proc, outdir, rng.uniform(0.0, 3.0))
    _, err = proc.communicate(timeout=120)
    return proc.returncode, resume, err.decode()


@pytest.mark.slow
def test_kill9_random_and_crash_points_then_resume(tmp_path: Path) -> None:
    rng = random.Random(8)
    outdir = tmp_path / "runs"
    stats = {
        "kills": 0,
        "random_kills": 0,
        "resumes": 0,
        "continued": 0,
        "advanced": 0,
        "finished_early": 0,
    }
    crash_points = ["checkpoint-write:2", "latest-write:3", "metrics-write:5"]
    deadline, saved_before, fresh = time.monotonic() + 500, 0, False
    for attempt in range(60):  # crash points first, then random kills until 20 landed
        if attempt >= len(crash_points) and stats["random_kills"] >= 20:
            break
        crash = crash_points[attempt] if attempt < len(crash_points) else None
        assert time.monotonic() < deadline, stats
        code, resumed, err = _attempt(outdir, crash, rng, fresh)
        fresh = code == 0
        run = sorted(outdir.glob("0*"))[-1]
        report = _check_run(run)
        assert report["dupes"] == 0, report
        assert report["ordered"], report
        if code == 0:  # the kill came after the end: count it and start a fresh run next time
            assert report["saved"] == TOTAL
            stats["finished_early"] += 1
            saved_before = 0
            continue
        assert code in (-signal.SIGKILL, 137), err
        stats["kills"] += 1
        stats["random_kills"] += int(crash is None)
        stats["resumes"] += int(resumed)
        if resumed:  # the attempt started exactly at the checkpoint it resumed from
            assert report["start"] == saved_before, (report, saved_before)
            stats["continued"] += 1
        stats["advanced"] += int(report["saved"] > saved_before)
        saved_before = report["saved"]
    final = subprocess.run(
        _cmd(outdir, True), env=_env(), capture_output=True, check=False, timeout=120
    )
    assert final.returncode == 0, final.stderr.decode()
    run = sorted(outdir.glob("0*"))[-1]
    report = _check_run(run)
    assert report == {**report, "torn": 0, "dupes": 0, "ordered": True, "saved": TOTAL}
    assert report["n"] == TOTAL // 2  # every tick line of the run present once: 0 lines lost
    assert stats["random_kills"] >= 20, stats
    print(f"\nkill harness: {stats}; final run {run.name}: {report}")


@pytest.mark.slow
def test_sigterm_cli_exit_143_and_resume(tmp_path: Path) -> None:
    outdir = tmp_path / "runs"
    proc = subprocess.Popen(_cmd(outdir, False), env=_env(), stderr=subprocess.PIPE)
    size0, t0 = _events_size(outdir), time.monotonic()
    while _events_size(outdir) == size0 and time.monotonic() - t0 < 60:
        time.sleep(0.02)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err.decode()
    assert "SIGTERM" in err.decode()
    run = sorted(outdir.glob("0*"))[-1]
    last = json.loads((run / "events.jsonl").read_text().splitlines()[-1])
    assert (last["status"], last["signal"]) == ("interrupted", "SIGTERM")
    assert read_latest(run)["step"] == last["step"]  # type: ignore[index]
    done = subprocess.run(_cmd(outdir, True), env=_env(), capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert _check_run(run)["n"] == TOTAL // 2


# ---------------------------------------------------------------------------------------------
# `sample` writing its output: kill -9 at random moments, a crash mid-write, SIGINT and SIGTERM
# ---------------------------------------------------------------------------------------------

SAMPLE_WORKER = r'''
"""Imports torch once, then forks one `pfgmctl sample` child per attempt and kills it."""
import io, json, os, random, signal, sys, time
from pathlib import Path

import numpy as np
from PIL import Image

import pfgmctl.cli  # noqa: F401  (registers every command before the first fork)

root = Path(sys.argv[1])
rng = random.Random(int(sys.argv[2]))
KINDS = {"npz": (6000, 8), "png": (1500, 8)}  # n, euler steps: well under a second each


def args(kind, seed):
    n, steps = KINDS[kind]
    return ["sample", "--exact", str(root / "ok.npy"), "-n", str(n), "--seed", str(seed),
            "--solver", "euler", "--steps", str(steps), "--out", str(root / f"out.{kind}"),
            "--force", "--json", "--device", "cpu"]


def child(argv, crash):
    code = 70
    try:
        sink = os.open(os.devnull, os.O_WRONLY)
        os.dup2(sink, 1)
        os.dup2(sink, 2)
        if crash:  # die with half of the output in its temp file (the PFGMCTL_CRASH_AT hook)
            from pfgmctl.engine import faults, grid, rundir
            os.environ[faults.CRASH_ENV] = "sample-write"
            real = rundir.atomic_write_bytes
            hooked = lambda path, data, crash="": real(path, data, "sample-write")
            rundir.atomic_write_bytes = grid.atomic_write_bytes = hooked
        from pfgmctl.cli import app
        try:
            app(argv, prog_name="pfgmctl")
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    finally:
        os._exit(code)


def attempt(kind, seed, *, delay=None, sig=signal.SIGKILL, crash=False):
    pid = os.fork()
    if pid == 0:
        child(args(kind, seed), crash)
    t0 = time.monotonic()
    if delay is not None:
        time.sleep(delay)
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), time.monotonic() - t0


def content(kind, seed):
    """'new' (complete output of seed), 'other' (a complete output of another seed) or 'torn'."""
    path = root / f"out.{kind}"
    n = KINDS[kind][0]
    try:
        data = path.read_bytes()
        if kind == "npz":
            with np.load(io.BytesIO(data), allow_pickle=False) as f:
                x, seeds = f["samples"], f["seeds"]
            if x.shape != (n, 2) or not np.isfinite(x).all():
                return "torn"
            first = int(seeds[0])
        else:
            img = Image.open(io.BytesIO(data))
            img.load()
            first = int(img.text["seeds"].split("-")[0])
    except Exception:
        return "torn"
    return "new" if first == seed else "other"


out = {"kills": [], "crash": [], "signals": {}, "timing": {}, "tmp_left": 0}
seed = 0
from pfgmctl.cli import app

for kind in KINDS:  # warm up in this process: every lazy import happens once, before the forks
    assert app(args(kind, seed), prog_name="pfgmctl", standalone_mode=False) == 0, kind
for kind in KINDS:
    code, secs = attempt(kind, seed)  # a complete first output, and the duration of one run
    assert code == 0 and content(kind, seed) == "new", (kind, code)
    out["timing"][kind] = secs
for i in range(int(sys.argv[3])):
    kind = "npz" if i % 3 else "png"
    before = (root / f"out.{kind}").read_bytes()
    (root / f"out.{kind}.tmp").unlink(missing_ok=True)
    seed += 1
    span = out["timing"][kind]  # every other kill aims at the end: the write of the output
    delay = rng.uniform(0.0, 1.1 * span) if i % 2 else rng.uniform(0.85 * span, 1.05 * span)
    code, _ = attempt(kind, seed, delay=delay)
    state = content(kind, seed)
    if state == "other":
        state = "old" if (root / f"out.{kind}").read_bytes() == before else "torn"
    out["kills"].append({"kind": kind, "code": code, "state": state})
    out["tmp_left"] += int((root / f"out.{kind}.tmp").exists())
for kind in KINDS:
    before = (root / f"out.{kind}").read_bytes()
    seed += 1
    code, _ = attempt(kind, seed, crash=True)
    out["crash"].append({
        "kind": kind, "code": code, "intact": (root / f"out.{kind}").read_bytes() == before,
        "tmp_left": (root / f"out.{kind}.tmp").exists(),
    })
for name, sig in (("SIGINT", signal.SIGINT), ("SIGTERM", signal.SIGTERM)):
    (root / "out.npz.tmp").unlink(missing_ok=True)
    before = (root / "out.npz").read_bytes()
    seed += 1
    code, _ = attempt("npz", seed, delay=0.4 * out["timing"]["npz"], sig=sig)
    out["signals"][name] = {"code": code, "intact": (root / "out.npz").read_bytes() == before,
                            "tmp_left": (root / "out.npz.tmp").exists()}
print(json.dumps(out))
'''
SAMPLE_KILLS = 30


@pytest.fixture(scope="module")
def sample_harness(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One worker process (one torch import) forks, kills and checks every `sample` attempt."""
    import numpy as np

    root = tmp_path_factory.mktemp("sample-kills")
    rows = np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32)
    np.save(root / "ok.npy", rows)
    (root / "worker.py").write_text(SAMPLE_WORKER)
    env = {**_env(), "XDG_CONFIG_HOME": str(root / "config")}
    done = subprocess.run(
        [sys.executable, str(root / "worker.py"), str(root), "8", str(SAMPLE_KILLS)],
        env=env,
        cwd=root,
        capture_output=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.decode().splitlines()[-1])
    print(f"\nsample harness: {result}")
    return result


@pytest.mark.slow
def test_sample_kill9_never_leaves_a_partial_output(sample_harness: dict[str, Any]) -> None:
    kills = sample_harness["kills"]
    assert len(kills) == SAMPLE_KILLS
    # after every kill the output is the previous complete file or the complete new one
    assert all(k["state"] in ("old", "new") for k in kills), kills
    assert all(k["code"] in (0, -signal.SIGKILL) for k in kills), kills
    assert sum(k["code"] == -signal.SIGKILL for k in kills) >= SAMPLE_KILLS // 2, kills
    # a crash with half the bytes written: the target keeps its old bytes, the half is in .tmp
    for crash in sample_harness["crash"]:
        assert crash["code"] == faults.CRASH_EXIT, crash
        assert crash["intact"], crash


@pytest.mark.slow
def test_sample_sigint_sigterm_write_nothing(sample_harness: dict[str, Any]) -> None:
    for name, res in sample_harness["signals"].items():
        assert res["intact"], (name, res)
        assert not res["tmp_left"], (name, res)


@pytest.mark.slow
def test_sample_sigint_exits_130(sample_harness: dict[str, Any]) -> None:
    assert sample_harness["signals"]["SIGINT"]["code"] == 130


@pytest.mark.slow
def test_sample_sigterm_exits_143(sample_harness: dict[str, Any]) -> None:
    assert sample_harness["signals"]["SIGTERM"]["code"] == 143


# ---------------------------------------------------------------------------------------------
# `distill`: the same guarantees as `train` under kill -9 (crash points and random kills)
# ---------------------------------------------------------------------------------------------

DISTILL_HARNESS = [
    "distill.batch_size=16",
    "distill.kimg=1.6",  # 100 generator steps
    "distill.tick_kimg=0.032",  # a metrics line every 2 steps
    "distill.ckpt_ticks=3",  # a checkpoint every 6 steps
    "distill.preview_n=0",
    "distill.keep_ckpts=2",
    "train.device=cpu",
]
DISTILL_TOTAL = 100


def _distill_cmd(teacher: Path, outdir: Path, resume: bool) -> list[str]:
    cmd = [sys.executable, "-m", "pfgmctl", "distill", "--teacher", str(teacher), "-o", str(outdir)]
    for item in DISTILL_HARNESS:
        cmd += ["--set", item]
    return [*cmd, "--resume", "latest"] if resume else cmd


@pytest.mark.slow
def test_distill_kill9_crash_points_and_random_kills_then_resume(tmp_path: Path) -> None:
    teacher_out = tmp_path / "teacher"
    train = [*_cmd(teacher_out, False), "--set", "train.kimg=0.32"]
    subprocess.run(train, env=_env(), capture_output=True, check=True, timeout=120)
    teacher = sorted(teacher_out.glob("0*"))[-1]
    outdir, rng = tmp_path / "runs", random.Random(3)
    crashes: list[str | None] = ["checkpoint-write:2", "latest-write:3", "metrics-write:5"]
    kills, saved_before = 0, 0
    for crash in [*crashes, *([None] * 6)]:
        resume = _has_checkpoint(outdir)
        proc = subprocess.Popen(
            _distill_cmd(teacher, outdir, resume),
            env=_env(crash),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        if crash is None:
            _kill_during_training(proc, outdir, rng.uniform(0.0, 1.5))
        _, err = proc.communicate(timeout=120)
        report = _check_run(sorted(outdir.glob("0*"))[-1])
        assert report["dupes"] == 0, report
        assert report["ordered"], report
        if proc.returncode == 0:
            break  # finished before the kill landed
        assert proc.returncode in (-signal.SIGKILL, 137), err.decode()
        kills += 1
        if resume:  # the attempt started exactly at the checkpoint it resumed from
            assert report["start"] == saved_before, (report, saved_before)
        saved_before = report["saved"]
    final = subprocess.run(
        _distill_cmd(teacher, outdir, True), env=_env(), capture_output=True, timeout=120
    )
    assert final.returncode == 0, final.stderr.decode()  # a finished run resumes to "done"
    run = sorted(outdir.glob("0*"))[-1]
    report = _check_run(run)
    assert report == {**report, "torn": 0, "dupes": 0, "ordered": True, "saved": DISTILL_TOTAL}
    assert report["n"] == DISTILL_TOTAL // 2  # every tick line present once
    assert kills >= 3
    print(f"\ndistill kill harness: {kills} kills; final run {run.name}: {report}")

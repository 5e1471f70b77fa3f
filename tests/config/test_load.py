"""Profile lookup, `--set` overrides, one-line validation errors and the TOML round trip."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import tomli

from pfgmctl.config import load
from pfgmctl.config.load import (
    DEFAULT_PROFILE,
    find_profile,
    list_profiles,
    load_profile,
    profile_from_text,
    profile_to_toml,
    user_dir,
)
from pfgmctl.config.schema import ArrayData, PFGMMethod, PFGMPPMethod, ToyData
from pfgmctl.errors import ProfileError


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A fake built-in directory and an XDG config home; returns (builtin, user)."""
    builtin = tmp_path / "builtin"
    builtin.mkdir()
    monkeypatch.setattr(load, "builtin_dir", lambda: builtin)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    user = user_dir()
    assert user == tmp_path / "xdg" / "pfgmctl" / "profiles"
    user.mkdir(parents=True)
    return builtin, user


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def _error(text: str = "", overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(ProfileError) as info:
        profile_from_text(text, "x", overrides)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


# --- lookup ----------------------------------------------------------------------------------


def test_find_profile_path_user_builtin(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    builtin, user = dirs
    b = _write(builtin, "demo", 'description = "built-in"\n')
    assert find_profile("demo") == b
    assert find_profile("demo.toml") == b
    assert find_profile("no/such/dir/demo.toml") == b
    u = _write(user, "demo", 'description = "mine"\n')
    assert find_profile("demo") == u
    local = _write(tmp_path, "local", "")
    assert find_profile(str(local)) == local


def test_find_profile_not_found(dirs: tuple[Path, Path]) -> None:
    _, user = dirs
    with pytest.raises(ProfileError) as info:
        find_profile("nope")
    msg = str(info.value)
    assert "'nope' not found" in msg
    assert str(user) in msg
    assert "pfgmctl profile list" in msg


def test_load_default_and_name_from_stem(dirs: tuple[Path, Path]) -> None:
    builtin, _ = dirs
    _write(builtin, DEFAULT_PROFILE, "[train]\nlr = 0.01\n")
    p = load_profile()
    assert p.name == DEFAULT_PROFILE
    assert p.train.lr == 0.01
    _write(builtin, "named", 'name = "other"\n')
    assert load_profile("named").name == "other"
    assert load_profile("named", ["name=z"]).name == "z"


def test_missing_kind_takes_default(dirs: tuple[Path, Path]) -> None:
    builtin, _ = dirs
    _write(builtin, "p", "[method]\naug_dim = 64\n[net]\nhidden = 32\n[data]\nname = 'moons'\n")
    p = load_profile("p")
    assert isinstance(p.method, PFGMPPMethod)
    assert p.method.aug_dim == 64.0
    assert p.net.hidden == 32
    assert isinstance(p.data, ToyData)
    assert p.data.name == "moons"


def test_toml_syntax_error_is_one_line_naming_file(dirs: tuple[Path, Path]) -> None:
    builtin, _ = dirs
    path = _write(builtin, "bad", "[train\nlr = 1\n")
    with pytest.raises(ProfileError) as info:
        load_profile("bad")
    msg = str(info.value)
    assert str(path) in msg
    assert "invalid TOML" in msg
    assert "line 1" in msg
    assert "\n" not in msg


# --- overrides -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "table", "key", "expected", "typ"),
    [
        (["train.lr=1e-4"], "train", "lr", 1e-4, float),
        (["train.batch_size=64"], "train", "batch_size", 64, int),
        (["method.aug_dim=inf"], "method", "aug_dim", math.inf, float),
        (["method.kind=pfgm", "method.prior_clip=false"], "method", "prior_clip", False, bool),
        (["data.kind=array", "data.path=foo.npy"], "data", "path", "foo.npy", str),
        (["sample.solver=rk4"], "sample", "solver", "rk4", str),
        (['data.name="moons"'], "data", "name", "moons", str),
        (["train.seed=-3"], "train", "seed", -3, int),
    ],
)
def test_overrides_are_typed(
    overrides: list[str], table: str, key: str, expected: object, typ: type
) -> None:
    p = profile_from_text("", "x", overrides)
    value = getattr(getattr(p, table), key)
    assert value == expected
    assert type(value) is typ


def test_override_beats_file() -> None:
    p = profile_from_text("[train]\nlr = 0.5\n", "x", ["train.lr=0.25"])
    assert p.train.lr == 0.25


@pytest.mark.parametrize(
    ("override", "table", "key", "expected"),
    [
        ("lr=0.01", "train", "lr", 0.01),
        ("aug_dim=64", "method", "aug_dim", 64.0),
        ("hidden=32", "net", "hidden", 32),
        ("holdout=0.1", "data", "holdout", 0.1),
        ("steps=7", "sample", "steps", 7),
    ],
)
def test_bare_key_lookup(override: str, table: str, key: str, expected: object) -> None:
    p = profile_from_text("", "x", [override])
    assert getattr(getattr(p, table), key) == expected


def test_bare_key_follows_current_kinds() -> None:
    p = profile_from_text("[method]\nkind = 'pfgm'\n", "x", ["z_max=40", "restrict_m=false"])
    assert isinstance(p.method, PFGMMethod)
    assert p.method.z_max == 40.0
    assert p.method.restrict_m is False
    p = profile_from_text("", "x", ["data.kind=array", "path=a.npy", "key=xs"])
    assert isinstance(p.data, ArrayData)
    assert (p.data.path, p.data.key) == ("a.npy", "xs")


def test_bare_top_level_keys() -> None:
    p = profile_from_text("", "x", ["name=demo", "description=two words"])
    assert (p.name, p.description) == ("demo", "two words")


def test_bare_key_ambiguous_lists_candidates() -> None:
    msg = _error(overrides=("seed=1",))
    assert "ambiguous" in msg
    assert "data.seed" in msg
    assert "train.seed" in msg
    msg = _error(overrides=("kind=x",))
    assert "method.kind" in msg
    assert "net.kind" in msg
    assert "data.kind" in msg


def test_bare_key_unknown() -> None:
    msg = _error(overrides=("bogus=1",))
    assert "'bogus'" in msg
    assert "unknown key" in msg
    msg = _error(overrides=("prior_clip=false",))  # a pfgm key while the method is pfgmpp
    assert "method.kind=pfgm" in msg


def test_override_without_equals() -> None:
    msg = _error(overrides=("train.lr",))
    assert "key=value" in msg
    assert "train.lr" in msg


def test_override_into_scalar_is_error() -> None:
    msg = _error(overrides=("train.lr.x=1",))
    assert "train.lr" in msg


# --- validation errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["train.lr=abc"], "train.lr: expected a number, got str 'abc'"),
        (["train.foo=1"], "train.foo: unknown key (valid keys: batch_size, lr, beta1"),
        (["method.aug_dim=-1"], "method.aug_dim: must be > 0 (got -1)"),
        (["method.aug_dim=nan"], "method.aug_dim: must be > 0 (got nan)"),
        (
            ["data.kind=x"],
            "data.kind: must be one of 'toy', 'array', 'digits', 'folder', 'cifar10', 'shapes' (got 'x')",
        ),
        (["method.aug_dim=3", "method.kind=pfgm"], "method.aug_dim: unknown key (valid keys: kind"),
        (["train.batch_size=1.5"], "train.batch_size: expected an integer, got float 1.5"),
        (
            ["train.device=tpu"],
            "train.device: must be one of 'auto', 'cpu', 'cuda', 'mps' (got 'tpu')",
        ),
        (["method.p_mean=inf"], "method.p_mean: must be a finite number (got inf)"),
        (["net.hidden=0"], "net.hidden: must be > 0 (got 0)"),
        (["net.dropout=-0.5"], "net.dropout: must be >= 0 (got -0.5)"),
        (["train.beta1=1"], "train.beta1: must be < 1 (got 1)"),
        (["method.kind=pfgm", 'method.restrict_m="yes"'], "method.restrict_m: expected true or"),
        (["name=3"], "name: expected a string, got int 3"),
        (["method=3"], "method: expected a table, got int 3"),
        (["oops.x=1"], "oops: unknown key (valid keys: name, description, method"),
        (["train.lr=true"], "train.lr: expected a number, got bool True"),
    ],
)
def test_validation_errors_one_line_dotted(overrides: list[str], expected: str) -> None:
    msg = _error(overrides=tuple(overrides))
    assert msg.startswith("profile 'x': ")
    assert expected in msg
    assert ".pfgmpp." not in msg
    assert ".pfgm." not in msg
    assert ".mlp." not in msg


def test_errors_from_file_are_joined() -> None:
    text = "[train]\nlr = 'abc'\nfoo = 1\n[net]\nhidden = -2\n"
    msg = _error(text)
    assert msg.count("; ") >= 2
    for key in ("train.lr:", "train.foo:", "net.hidden:"):
        assert key in msg


def test_error_names_the_source(dirs: tuple[Path, Path]) -> None:
    builtin, _ = dirs
    path = _write(builtin, "p", "[train]\nlr = 'abc'\n")
    with pytest.raises(ProfileError, match=r"train\.lr") as info:
        load_profile("p")
    assert str(path) in str(info.value)


# --- round trip ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["method.aug_dim=inf", "name=edm", "description=the D = inf limit"],
        ["method.kind=pfgm", "method.m=291.0", "net.precond=field"],
        ["data.kind=array", "data.path=a.npz", "data.n=10", "data.key=xs", "train.ema_rampup=0"],
    ],
)
def test_round_trip(overrides: list[str]) -> None:
    p = profile_from_text("", "x", overrides)
    text = profile_to_toml(p)
    assert profile_from_text(text, "x") == p
    assert list(tomli.loads(text)) == [
        "name",
        "description",
        "method",
        "net",
        "data",
        "train",
        "sample",
    ]


def test_round_trip_inf_is_written_as_toml_inf() -> None:
    p = profile_from_text("", "x", ["method.aug_dim=inf"])
    text = profile_to_toml(p)
    assert "aug_dim = inf" in text
    assert math.isinf(profile_from_text(text, "y").method.aug_dim)  # type: ignore[union-attr]


def test_to_toml_drops_none_and_is_explicit() -> None:
    p = profile_from_text("", "x", ["method.kind=pfgm"])
    raw = tomli.loads(profile_to_toml(p))
    assert "m" not in raw["method"]
    assert "precond" not in raw["net"]
    assert raw["method"]["sigma"] == 0.01
    assert raw["train"]["batch_size"] == 256


# --- listing ---------------------------------------------------------------------------------


def test_list_profiles(dirs: tuple[Path, Path]) -> None:
    builtin, user = dirs
    _write(builtin, "b", 'description = "built-in b"\n')
    _write(builtin, "a", 'description = "built-in a"\n')
    _write(user, "b", 'description = "user b"\n')
    _write(user, "c", "")
    _write(builtin, "d", "[train\n")
    _write(user, "e", "[train]\nlr = 'x'\n")
    infos = list_profiles()
    assert [i.name for i in infos] == ["a", "b", "c", "d", "e"]
    by = {i.name: i for i in infos}
    assert (by["a"].source, by["a"].description) == ("built-in", "built-in a")
    assert (by["b"].source, by["b"].description, by["b"].path) == (
        "user",
        "user b",
        user / "b.toml",
    )
    assert by["c"].description == ""
    assert by["d"].description.startswith("(invalid: ")
    assert "train.lr" in by["e"].description
    assert all("\n" not in i.description for i in infos)


def test_list_profiles_without_user_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(load, "builtin_dir", lambda: tmp_path / "missing")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "none"))
    assert list_profiles() == []

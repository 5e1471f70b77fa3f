"""Profile lookup, TOML parsing, `--set` overrides and one-line validation errors (architecture.md §6)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, get_args

import platformdirs
import tomli
import tomli_w
from pydantic import BaseModel, ValidationError

from pfgmctl.config.schema import DistillConfig, Profile
from pfgmctl.errors import ProfileError

DEFAULT_PROFILE = "toy2d-pfgmpp"


@dataclass(frozen=True)
class ProfileInfo:
    """One entry of `pfgmctl profile list`."""

    name: str
    source: str  # "user" | "built-in"
    path: Path
    description: str


def builtin_dir() -> Path:
    """Directory holding the profiles shipped with pfgmctl."""
    return Path(__file__).parent / "profiles"


def user_dir() -> Path:
    """Directory holding the user's own profiles (shadows built-ins of the same name)."""
    return platformdirs.user_config_path("pfgmctl", appauthor=False) / "profiles"


# ---------------------------------------------------------------------------------------------
# Lookup
# ---------------------------------------------------------------------------------------------


def find_profile(ref: str) -> Path:
    """Resolve `ref`: an existing file, else a user profile, else a built-in one."""
    path = Path(ref).expanduser()
    if path.is_file():
        return path
    name = path.name.removesuffix(".toml")
    if name:
        for folder in (user_dir(), builtin_dir()):
            candidate = folder / f"{name}.toml"
            if candidate.is_file():
                return candidate
    raise ProfileError(
        f"profile '{ref}' not found (not a file, not in {user_dir()}, not built-in); "
        "try 'pfgmctl profile list'"
    )


def list_profiles() -> list[ProfileInfo]:
    """All user and built-in profiles, sorted by name; user profiles shadow built-ins."""
    found: dict[str, ProfileInfo] = {}
    for source, folder in (("built-in", builtin_dir()), ("user", user_dir())):
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.toml")):
            found[path.stem] = ProfileInfo(path.stem, source, path, _describe_file(path))
    return [found[name] for name in sorted(found)]


def _describe_file(path: Path) -> str:
    """The profile's description, or "(invalid: ...)" when it does not load."""
    try:
        return load_profile(str(path)).description
    except ProfileError as err:
        return f"(invalid: {err})"


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def load_profile(ref: str | None = None, overrides: Sequence[str] = ()) -> Profile:
    """Find, parse, override and validate a profile (`ref` None: the default profile)."""
    path = find_profile(DEFAULT_PROFILE if ref is None else ref)
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ProfileError(f"profile file '{path}' cannot be read: {_one_line(err)}") from err
    raw = _parse_toml(text, str(path))
    raw.setdefault("name", path.stem)
    return _build(raw, str(path), overrides)


def profile_from_text(text: str, source: str, overrides: Sequence[str] = ()) -> Profile:
    """Parse, override and validate a profile given as TOML text (e.g. stored in a checkpoint)."""
    return _build(_parse_toml(text, source), source, overrides)


def _parse_toml(text: str, source: str) -> dict[str, Any]:
    """TOML text -> raw dict; syntax errors become a one-line ProfileError."""
    try:
        return tomli.loads(text)
    except tomli.TOMLDecodeError as err:
        raise ProfileError(f"profile '{source}': invalid TOML: {_one_line(err)}") from err


def _build(raw: dict[str, Any], source: str, overrides: Sequence[str]) -> Profile:
    """Apply overrides to the raw dict, fill default kinds, then validate."""
    explicit: set[tuple[str, ...]] = set()
    for item in overrides:
        explicit.add(_apply_override(raw, item, explicit))
    _fill_kinds(raw)
    try:
        return Profile.model_validate(raw)
    except ValidationError as err:
        msgs = "; ".join(_format_error(e) for e in err.errors())
        raise ProfileError(f"profile '{source}': {msgs}") from None


def _fill_kinds(raw: dict[str, Any]) -> None:
    """A table without `kind` gets the default kind (pydantic's tagged unions need the tag)."""
    for table, kinds in _table_models().items():
        if "" not in kinds and isinstance(raw.get(table), dict):
            raw[table].setdefault("kind", _default_kind(table))


def _one_line(err: BaseException) -> str:
    """An exception's message squeezed onto one line."""
    return " ".join(str(err).split())


# ---------------------------------------------------------------------------------------------
# Schema introspection
# ---------------------------------------------------------------------------------------------


@cache
def _table_models() -> dict[str, dict[str, type[BaseModel]]]:
    """Each table of Profile -> {kind: model}; untagged tables map "" to their model."""
    out: dict[str, dict[str, type[BaseModel]]] = {}
    for name, field in Profile.model_fields.items():
        members = get_args(field.annotation) or (field.annotation,)
        models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
        if models:
            out[name] = {_kind_of(m): m for m in models}
    return out


def _kind_of(model: type[BaseModel]) -> str:
    """The `kind` tag a model answers to ("" for untagged tables)."""
    field = model.model_fields.get("kind")
    return str(field.default) if field is not None else ""


@cache
def _default_kind(table: str) -> str:
    """The kind a table takes when it does not say (pfgmpp, mlp, toy)."""
    return str(getattr(getattr(Profile(), table), "kind", ""))


def _model_for(table: str, kind: object) -> type[BaseModel] | None:
    """The model validating `table` with the given kind (None: unknown kind or table)."""
    kinds = _table_models().get(table, {})
    if "" in kinds:
        return kinds[""]
    return kinds.get(str(kind))


def _current_model(raw: dict[str, Any], table: str) -> type[BaseModel] | None:
    """The model that will validate `raw[table]`, taking its kind from the raw dict."""
    section = raw.get(table)
    kind = section.get("kind") if isinstance(section, dict) else None
    return _model_for(table, _default_kind(table) if kind is None else kind)


# ---------------------------------------------------------------------------------------------
# Overrides
# ---------------------------------------------------------------------------------------------


def _parse_value(text: str) -> Any:
    """A TOML value (`1e-4`, `inf`, `false`, `"x"`, `[1, 2]`), else the raw string."""
    try:
        return tomli.loads("v = " + text)["v"]
    except tomli.TOMLDecodeError:
        return text


def _apply_override(
    raw: dict[str, Any], item: str, explicit: set[tuple[str, ...]] | None = None
) -> tuple[str, ...]:
    """Apply one `key=value` override to the raw profile dict in place; returns the key path.

    Switching a table's `kind` resets the table to the new kind's defaults: the file's keys
    belong to the old kind (a toy's `n` = 20000 points means nothing to a folder of images), so
    only keys set by overrides are kept.
    """
    key, sep, value = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ProfileError(f"override '{item}' must be key=value (e.g. train.lr=1e-4)")
    parts = key.split(".") if "." in key else _resolve_bare(raw, key)
    node = raw
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            prefix = ".".join(parts[: i + 1])
            raise ProfileError(f"override '{item}': '{prefix}' is not a table")
        node = child
    new = _parse_value(value.strip())
    if len(parts) == 2 and parts[1] == "kind" and node.get("kind", _default_kind(parts[0])) != new:
        _drop_foreign_keys(node, parts[0], new, explicit or set())
    node[parts[-1]] = new
    return tuple(parts)


def _drop_foreign_keys(
    section: dict[str, Any], table: str, kind: object, explicit: set[tuple[str, ...]]
) -> None:
    """Drop the file's keys of a table whose kind changes; keys set by overrides stay."""
    if _model_for(table, kind) is None:
        return  # validation will name the unknown kind
    for key in [k for k in section if (table, k) not in explicit]:
        del section[key]


def _resolve_bare(raw: dict[str, Any], key: str) -> list[str]:
    """Find the one table whose (current-kind) model has field `key`."""
    if key in Profile.model_fields:
        return [key]
    tables = []
    for table in _table_models():
        model = _current_model(raw, table)
        if model is not None and key in model.model_fields:
            tables.append(table)
    if not tables:
        raise ProfileError(f"override '{key}': unknown key{_other_kinds_hint(key)}")
    if len(tables) > 1 and "distill" in tables:  # [distill] repeats train keys: dotted form only
        tables.remove("distill")
    if len(tables) > 1:
        where = ", ".join(f"{t}.{key}" for t in tables)
        raise ProfileError(f"override '{key}' is ambiguous ({where}); use the dotted form")
    return [tables[0], key]


def _other_kinds_hint(key: str) -> str:
    """Where an unknown bare key would be valid, e.g. `; only method kind 'pfgm' has it ...`."""
    owners = [
        (table, kind)
        for table, kinds in _table_models().items()
        for kind, model in kinds.items()
        if kind and key in model.model_fields
    ]
    if not owners:
        return "; use a dotted key such as train.lr (see 'pfgmctl profile show')"
    where = " / ".join(f"{table} kind '{kind}'" for table, kind in owners)
    table, kind = owners[0]
    return f"; only {where} has it: add {table}.kind={kind} before it"


# ---------------------------------------------------------------------------------------------
# Error messages
# ---------------------------------------------------------------------------------------------


def _format_error(err: Any) -> str:
    """One pydantic error -> `dotted.key: message`."""
    loc = _strip_tag(tuple(err["loc"]))
    if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
        loc = (*loc, "kind")
    key = ".".join(str(p) for p in loc) or "<profile>"
    return f"{key}: {_message(err)}"


def _strip_tag(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop the discriminator tag pydantic inserts: ('method', 'pfgmpp', 'x') -> ('method', 'x')."""
    if len(loc) >= 2:
        kinds = _table_models().get(str(loc[0]), {})
        if "" not in kinds and loc[1] in kinds:
            return (loc[0], *loc[2:])
    return loc


_EXPECTED = {
    "float_type": "expected a number",
    "int_type": "expected an integer",
    "bool_type": "expected true or false",
    "string_type": "expected a string",
    "list_type": "expected an array",
    "dict_type": "expected a table",
    "model_type": "expected a table",
    "model_attributes_type": "expected a table",
}

_BOUNDS = {
    "greater_than": ("gt", ">"),
    "greater_than_equal": ("ge", ">="),
    "less_than": ("lt", "<"),
    "less_than_equal": ("le", "<="),
}


def _message(err: Any) -> str:
    """A plain-words message for a pydantic error, falling back to pydantic's own."""
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    if kind in _EXPECTED:
        return f"{_EXPECTED[kind]}, got {_got(value)}"
    if kind in _BOUNDS:
        name, op = _BOUNDS[kind]
        return f"must be {op} {_num(ctx.get(name))} (got {_short(value)})"
    if kind == "extra_forbidden":
        return f"unknown key (valid keys: {', '.join(_valid_keys(tuple(err['loc'])))})"
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace(" or ", ", ")
        return f"must be one of {expected} (got {_short(value)})"
    if kind == "union_tag_invalid":
        return f"must be one of {ctx.get('expected_tags')} (got {_short(ctx.get('tag'))})"
    if kind == "union_tag_not_found":
        return "missing (the table needs a kind)"
    if kind == "finite_number":
        return f"must be a finite number (got {_short(value)})"
    if kind == "missing":
        return "required key missing"
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    return f"{msg} (got {_short(value)})"


def _valid_keys(loc: tuple[Any, ...]) -> list[str]:
    """Field names of the model that owns the unknown key at `loc`."""
    if len(loc) == 1:
        return list(Profile.model_fields)
    kinds = _table_models().get(str(loc[0]), {})
    model = kinds.get("") or (kinds.get(str(loc[1])) if len(loc) >= 3 else None)
    return list(model.model_fields) if model is not None else []


_TYPE_NAMES: dict[type, str] = {dict: "table", list: "array"}


def _got(value: object) -> str:
    """`str 'abc'`, `int 3`, `table {...}`: the type and a short repr of a bad value."""
    return f"{_TYPE_NAMES.get(type(value), type(value).__name__)} {_short(value)}"


def _short(value: object) -> str:
    """A repr cut to 40 characters, with floats in TOML spelling (inf, nan)."""
    text = _num(value) if isinstance(value, float) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _num(value: object) -> str:
    """Format a bound or value: 0.0 -> 0, inf -> inf."""
    if isinstance(value, float):
        if math.isinf(value) or math.isnan(value):
            return str(value)
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
    return repr(value) if isinstance(value, str) else str(value)


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


def profile_to_toml(profile: Profile) -> str:
    """A fully explicit TOML rendering (None values dropped: TOML has no null).

    A `[distill]` table left at its defaults is omitted (it only matters to distillation runs).
    """
    raw = profile.model_dump(mode="python", exclude_none=True)
    if profile.distill == DistillConfig():
        del raw["distill"]
    return tomli_w.dumps(raw)

"""`pfgmctl profile list|show`: built-in and user profiles."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from pfgmctl.cli.app import app, err_console
from pfgmctl.cli.common import emit_json
from pfgmctl.cli.train import SetOpt
from pfgmctl.config.load import list_profiles, load_profile, profile_to_toml, user_dir

profile_app = typer.Typer(help="List and show profiles (built-in and user).", no_args_is_help=True)
app.add_typer(profile_app, name="profile", rich_help_panel="Configuration")


@profile_app.command("list")
def list_(
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """List the profiles `--profile NAME` can use."""
    infos = list_profiles()
    if json_out:
        emit_json(
            {
                "profiles": [
                    {
                        "name": i.name,
                        "source": i.source,
                        "path": str(i.path),
                        "description": i.description,
                    }
                    for i in infos
                ]
            }
        )
        return
    table = Table("name", "source", "description", box=None, pad_edge=False)
    for info in infos:
        table.add_row(info.name, info.source, info.description)
    err_console.print(table)
    err_console.print(f"user profiles: {user_dir()}", highlight=False)


@profile_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="Profile name or TOML path.")],
    set_: SetOpt = None,
    resolve: Annotated[
        bool, typer.Option(help="Derive data-dependent keys (loads the data set).")
    ] = True,
) -> None:
    """Print the fully resolved profile as TOML (what a run would write to profile.toml)."""
    prof = load_profile(name, tuple(set_ or ()))
    if resolve:
        from pfgmctl.data import build_dataset
        from pfgmctl.engine.build import resolve as resolve_profile
        from pfgmctl.errors import DataError

        try:
            dataset = build_dataset(prof.data)
        except DataError as err:  # e.g. cifar10 before the data is there: show it unresolved
            err_console.print(
                f"note: data-dependent keys are not derived ({err})",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
        else:
            prof = resolve_profile(prof, dataset)
    typer.echo(profile_to_toml(prof), nl=False)

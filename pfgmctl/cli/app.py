"""The Typer app and its error policy: every user error is one line on stderr, exit 2 or 1."""

from __future__ import annotations

import sys
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from typer._click import exceptions as click_exc
from typer.core import TyperGroup
from typer.exceptions import Abort

from pfgmctl.errors import PfgmctlError

err_console = Console(stderr=True, highlight=False)


def fail(message: str) -> None:
    """Print one `error:` line on stderr."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)


class Group(TyperGroup):
    """Root group: maps PfgmctlError and click usage errors to one line and an exit code."""

    def main(  # type: ignore[override]
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            code = rv if isinstance(rv, int) else 0
        except PfgmctlError as err:
            fail(str(err))
            code = err.exit_code
        except click_exc.UsageError as err:
            where = f" (see '{err.ctx.command_path} --help')" if err.ctx is not None else ""
            fail(err.format_message() + where)
            code = 2
        except click_exc.ClickException as err:
            fail(err.format_message())
            code = err.exit_code
        except Abort:
            fail("aborted")
            code = 1
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    cls=Group,
    name="pfgmctl",
    help="Poisson flow generative models (PFGM, PFGM++) from the terminal.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

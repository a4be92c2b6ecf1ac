"""The ``sereca`` command.

Each area registers its own commands from its own module (``sereca.cli.tee``,
``sereca.cli.cas``, ...) so that the modules stay small and independent.
Errors derived from :class:`sereca.SerecaError` are printed as one clear
message and exit with status 2 (unusable input) or 1 (a check failed),
never as a traceback.
"""

from __future__ import annotations

import importlib
import sys

import typer
from rich.console import Console
from rich.markup import escape

from sereca.errors import SerecaError

# Modules that contribute commands; each defines ``register(app: typer.Typer)``.
COMMAND_MODULES = (
    "sereca.cli.tee",
    "sereca.cli.cas",
    "sereca.cli.run",
    "sereca.cli.water",
    "sereca.cli.demo",
)


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="sereca",
        help="SERECA: attested, end-to-end sealed microservices on an untrusted cloud.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )

    @app.command()
    def version() -> None:
        """Print the SERECA version."""
        from sereca import __version__

        typer.echo(__version__)

    for module_name in COMMAND_MODULES:
        module = importlib.import_module(module_name)
        module.register(app)
    return app


def main() -> None:
    app = build_app()
    try:
        app()
    except SerecaError as exc:
        Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()

"""`parley lake ...`: analysts' access to the lakehouse."""

from __future__ import annotations

import typer

lake_app = typer.Typer(no_args_is_help=True, help="Query the lakehouse (DuckDB over the Delta tables).")

"""The `stance` command: data, cache and model utilities. Training is `python -m stance.train` (Hydra)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Stance, topic and claim classification utilities.", no_args_is_help=True)
data_app = typer.Typer(help="List, describe and validate corpora.", no_args_is_help=True)
cache_app = typer.Typer(help="Inspect or clear the embedding cache.", no_args_is_help=True)
models_app = typer.Typer(help="Prepare packaged embedding models.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(cache_app, name="cache")
app.add_typer(models_app, name="models")


# --- stance data ---------------------------------------------------------------------------------------------------


# --- stance cache --------------------------------------------------------------------------------------------------


# --- stance models -------------------------------------------------------------------------------------------------


if __name__ == "__main__":
    app()

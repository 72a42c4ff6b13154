"""`stance data`: list, describe and validate corpora (a part of the `stance` command, stance/cli.py)."""

from __future__ import annotations

import typer

data_app = typer.Typer(help="List, describe and validate corpora.", no_args_is_help=True)

# --- stance data ---------------------------------------------------------------------------------------------------

# Imports sit inside the data commands: they are heavy (datasets, Hydra), and keeping them here leaves the rest of
# this file, which other sections share, untouched.
SPLIT_ORDER = ("train", "validation", "test")


def load_corpus(name: str, root: str | None) -> dict:
    """A corpus's DatasetDict from its data config (`conf/data/<name>.yaml`), labels mapped as in training."""
    from stance.config import load_data
    from stance.data.registry import corpora

    names = list(corpora())
    if name not in names:
        raise typer.BadParameter(f"unknown corpus {name!r}; choose from {', '.join(names)}.", param_hint="NAME")
    return load_data(name, *([f'data.root="{root}"'] if root else []))


@data_app.command("list")
def data_list(root: str = typer.Option(None, help="Folder holding the corpora (default: $STANCE_DATA).")) -> None:
    """Every corpus (each `conf/data/<name>.yaml` with a `corpus` node) with its task, splits and split sizes."""
    import pandas as pd

    from stance.data.registry import corpora
    from stance.data.schema import DataError

    rows, problems = [], []
    for name, corpus in corpora().items():
        try:
            sizes = {split: ds.num_rows for split, ds in load_corpus(name, root).items()}
        except DataError as err:
            sizes = {}
            problems.append(f"{name}: {err}")
        row = {"name": name, "task": corpus.task, "splits": ",".join(sizes) or "(unreadable)"}
        rows.append(row | {split: sizes.get(split, "-") for split in SPLIT_ORDER})
    typer.echo(pd.DataFrame(rows).to_string(index=False))
    for problem in problems:
        typer.echo(problem, err=True)


@data_app.command("describe")
def data_describe(
    name: str = typer.Argument(..., help="Corpus name, as in `stance data list`."),
    top: int = typer.Option(20, help="Show this many most frequent targets."),
    root: str = typer.Option(None, help="Folder holding the corpora (default: $STANCE_DATA)."),
) -> None:
    """Split x label and split x target counts, and text lengths in characters."""
    import pandas as pd

    from stance.data.registry import corpora
    from stance.data.schema import to_frame

    data = load_corpus(name, root)
    corpus = corpora()[name]
    typer.echo(f"{name} ({corpus.task}): {corpus.description}")
    splits = list(data)
    frame = pd.concat([to_frame(ds).assign(split=split) for split, ds in data.items()], ignore_index=True)
    frame["target"] = frame["target"].replace("", "(none)")
    n_targets = frame["target"].nunique()
    targets = frame[frame["target"].isin(frame["target"].value_counts().index[:top])]
    by_target = pd.crosstab(targets["target"], targets["split"]).reindex(columns=splits, fill_value=0)
    sections = {
        "split x label": pd.crosstab(frame["split"], frame["label"], margins=True, margins_name="total").reindex(
            [*splits, "total"]
        ),
        f"target x split, top {min(top, n_targets)} of {n_targets} targets": by_target.assign(
            total=by_target.sum(axis=1)
        ).sort_values("total", ascending=False),
        "text length in characters": frame.assign(chars=frame["text"].str.len())
        .groupby("split")["chars"]
        .describe()
        .reindex(splits),
    }
    for title, table in sections.items():
        typer.echo(f"\n{name}: {title}\n{table.round(1).to_string()}")


def _pairs(text: str | None) -> dict[str, str]:
    """`a=b,c=d` as a dict."""
    return dict(item.split("=", 1) for item in text.split(",")) if text else {}


@data_app.command("validate")
def data_validate(
    paths: list[str] = typer.Argument(
        ..., help="One file (split in three, as training does) or files as SPLIT=PATH (or PATH: split = file stem)."
    ),
    columns: str = typer.Option(None, help="Schema name=your column, e.g. text=Tweet,label=Stance,target=Target."),
    targets: str = typer.Option(None, help="Multi-target: target column=label column, e.g. 'Target 1=Stance 1'."),
    split_column: str = typer.Option(None, help="Column holding the split, when one file has all splits."),
    labels: str = typer.Option(None, help="Allowed labels, comma-separated (default: any)."),
    encoding: str = typer.Option(None, help="File encoding (default: UTF-8, else detected)."),
    task: str = typer.Option("stance", help="stance (labels AGAINST/FAVOR/NONE unless --labels), topic or claim."),
    validation_size: float = typer.Option(None, help="As data.validation_size (default: training's)."),
    test_size: float = typer.Option(None, help="As data.test_size, for one file (default: training's)."),
) -> None:
    """Check and split your files as training would: columns, encoding, texts, labels, splits, duplicates, leakage."""
    from pathlib import Path

    from stance.config import compose_config
    from stance.data.files import files
    from stance.data.schema import DataError, reader_report, split_table, to_frame, validate

    trained = compose_config("data=files").data  # training's defaults, so both give the same verdict
    one_file = len(paths) == 1 and "=" not in paths[0]
    named = dict(p.split("=", 1) if "=" in p else (Path(p).stem, p) for p in paths)
    try:
        data = files(
            next(iter(named.values())) if split_column or one_file else named,
            columns=_pairs(columns),
            targets=_pairs(targets),
            split_column=split_column,
            labels=labels.split(",") if labels else None,
            encoding=encoding,
            validation_size=trained.validation_size if validation_size is None else validation_size,
            test_size=trained.test_size if test_size is None else test_size,
            seed=trained.seed,
            task=task,
        )
    except DataError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
    frames = {split: to_frame(ds) for split, ds in data.items()}
    _, report = validate(frames, report=reader_report(data))
    for note in report.notes:
        typer.echo(note)
    typer.echo(split_table(frames))
    for warning in report.warnings:
        typer.echo(f"warning: {warning}")
    typer.echo("ok" if not report.warnings else f"{len(report.warnings)} warning(s)")

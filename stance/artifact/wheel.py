"""A wheel of the running `stance` package, written without a build backend, to ship inside each logged model.

Why written by hand: the wheel is built at every `log_model`, from whatever `stance` is running (a checkout, an
editable install or an installed wheel on a cluster node). A build backend would need the source tree, setuptools
and seconds per run; a pure-Python wheel is a zip of the package folder plus four metadata files, written in
milliseconds from the files actually imported, byte-identical for identical code.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import tomllib
import zipfile
from pathlib import Path

import stance.conf

PACKAGE = "stance"
_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed zip timestamps: the same code gives the same bytes
_SKIP_DIRS = {"__pycache__"}
_SKIP_SUFFIXES = {".pyc", ".pyo"}


def package_dir() -> Path:
    """The folder of the imported `stance` package (this module is in `stance/artifact/`)."""
    return Path(__file__).resolve().parents[1]


def package_folders() -> dict[str, Path]:
    """Each folder that goes into the wheel, by its path inside it: `stance/`, and `stance/conf/` wherever it lives.

    In a checkout or an editable install the configs sit in the top-level `conf/` (mapped to `stance.conf`); in an
    installed wheel they are already inside `stance/`.
    """
    root, conf = package_dir(), Path(stance.conf.__file__).resolve().parent
    return {PACKAGE: root} if conf.is_relative_to(root) else {PACKAGE: root, f"{PACKAGE}/conf": conf}


def _pyproject() -> dict | None:
    """The checkout's `[project]` table when `stance` runs from a source tree, else None."""
    path = package_dir().parent / "pyproject.toml"
    if not path.is_file():
        return None
    project = tomllib.loads(path.read_text(encoding="utf-8")).get("project", {})
    return project if project.get("name") == PACKAGE else None


def _metadata(project: dict) -> str:
    """Core metadata (METADATA) from a pyproject `[project]` table."""
    lines = ["Metadata-Version: 2.1", f"Name: {project['name']}", f"Version: {project['version']}"]
    if project.get("description"):
        lines.append(f"Summary: {project['description']}")
    if project.get("requires-python"):
        lines.append(f"Requires-Python: {project['requires-python']}")
    lines += [f"Requires-Dist: {dep}" for dep in project.get("dependencies", [])]
    for extra, deps in project.get("optional-dependencies", {}).items():
        lines.append(f"Provides-Extra: {extra}")
        lines += [f'Requires-Dist: {dep}; extra == "{extra}"' for dep in deps]
    return "\n".join(lines) + "\n"


def _entry_points(project: dict) -> str:
    scripts = project.get("scripts", {})
    return "[console_scripts]\n" + "".join(f"{name} = {target}\n" for name, target in scripts.items())


def distribution_files() -> tuple[str, str, str]:
    """(version, METADATA, entry_points.txt) of the running package: from the checkout, else its installed record."""
    project = _pyproject()
    if project is not None:
        return project["version"], _metadata(project), _entry_points(project)
    try:
        dist = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise RuntimeError(
            f"Cannot package stance for the model: {package_dir()} has no pyproject.toml beside it and no installed "
            "metadata. Run from the checkout or install the package (pip install .)."
        ) from None
    return dist.version, dist.read_text("METADATA") or "", dist.read_text("entry_points.txt") or ""


def wheel_name(version: str) -> str:
    """The wheel's file name: pure Python, any platform."""
    return f"{PACKAGE}-{version}-py3-none-any.whl"


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_wheel(folder: Path) -> Path:
    """Write the running package as `stance-<version>-py3-none-any.whl` into `folder`; returns its path."""
    version, metadata, entry_points = distribution_files()
    files: dict[str, bytes] = {}
    for prefix, root in package_folders().items():
        for path in sorted(root.rglob("*")):
            relative = path.relative_to(root)
            if path.is_dir() or _SKIP_DIRS & set(relative.parts) or path.suffix in _SKIP_SUFFIXES:
                continue
            files[f"{prefix}/{relative.as_posix()}"] = path.read_bytes()
    info = f"{PACKAGE}-{version}.dist-info"
    files[f"{info}/METADATA"] = metadata.encode()
    files[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: stance\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    if entry_points.strip():
        files[f"{info}/entry_points.txt"] = entry_points.encode()
    record = [_record_line(name, data) for name, data in files.items()] + [f"{info}/RECORD,,"]
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / wheel_name(version)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            entry = zipfile.ZipInfo(name, _EPOCH)
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, data)
    return path

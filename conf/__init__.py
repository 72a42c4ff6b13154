"""The Hydra configs, shipped as the package `stance.conf` (pyproject maps it to the top-level `conf/`)."""

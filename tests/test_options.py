"""The option lists in README.md and docs/experiments.md come from `conf/` and stay true; `stance config options`."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

from stance.options import config_options, rewrite
from tests.helpers import REPO


def test_the_readme_and_the_experiments_guide_list_every_option_of_every_group(tmp_path):
    for name in ("README.md", "docs/experiments.md"):
        copy = tmp_path / name.replace("/", "_")
        shutil.copy(REPO / name, copy)
        assert not rewrite(copy), f"{name} lists other options than conf/ has: run `make docs` and commit the result"
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for group, options in config_options().items():
        line = re.search(rf"^- `{re.escape(group)}`: (.*)$", readme, re.M)
        assert line, group
        assert re.findall(r"`([^`]+)`", line.group(1)) == list(options)


def test_a_stale_list_is_rewritten_from_conf(tmp_path):
    guide = tmp_path / "guide.md"
    guide.write_text("before\n<!-- options:groups -->\n- stale\n<!-- /options -->\nafter\n", encoding="utf-8")
    assert rewrite(guide)
    text = guide.read_text(encoding="utf-8")
    assert text.startswith("before\n<!-- options:groups -->\n- `data`: ") and text.endswith(
        "<!-- /options -->\nafter\n"
    )
    assert "- stale" not in text and "`entailment`" in text and not rewrite(guide)


def test_stance_config_options_prints_each_option_with_its_summary():
    done = subprocess.run(
        [sys.executable, "-m", "stance.cli", "config", "options", "task"], capture_output=True, text=True, check=True
    )
    assert done.stdout.splitlines()[0] == "task:"
    assert re.search(r"^  stance +Stance of `text` toward `target` \(FAVOR / AGAINST / NONE", done.stdout, re.M)
    assert len(done.stdout.splitlines()) == 1 + len(config_options()["task"])

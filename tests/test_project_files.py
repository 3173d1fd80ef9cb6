"""What a new user reads: the license, the extras, help texts that speak of the user's setting (issue 15, item 9)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from smile_video.cli import VERBS, main

ROOT = Path(__file__).resolve().parents[1]


def test_license_is_the_apache_2_text_the_readme_and_pyproject_name():
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert 'license = { text = "Apache-2.0" }' in (ROOT / "pyproject.toml").read_text()
    assert "Apache-2.0 (`LICENSE`)" in (ROOT / "README.md").read_text()


def test_every_user_extra_is_in_the_readme():
    pyproject = (ROOT / "pyproject.toml").read_text()
    section = pyproject.split("[project.optional-dependencies]")[1].split("\n[")[0]
    extras = re.findall(r"^(\w+) = \[", section, flags=re.M)
    readme = (ROOT / "README.md").read_text()
    assert "hf" in extras
    for extra in extras:
        assert f'.[{extra}]' in readme, extra


@pytest.mark.parametrize("argv", [[v.name, "--help"] for v in VERBS] + [["bench", "motion", "--help"],
                                                                         ["bench", "train-step", "--help"]])
def test_help_speaks_of_the_users_setting_not_of_our_issues(argv, capsys):
    with pytest.raises(SystemExit):
        main(argv)
    text = capsys.readouterr().out
    assert text and not re.search(r"\bissue", text, flags=re.I), text

"""TOML configuration: defaults, remapped codepoints, and errors that name the key and the problem."""

from __future__ import annotations

import pytest

from fmipfast import config
from fmipfast.constants import DEFAULT_CODEPOINTS, Codepoints
from fmipfast.errors import ConfigError


def test_empty_file_is_all_defaults():
    cfg = config.loads("")
    assert cfg == config.Config()
    assert cfg.codepoints.profile() == DEFAULT_CODEPOINTS


def test_defaults_toml_round_trips():
    assert config.loads(config.DEFAULTS_TOML) == config.Config()


def test_remapped_codepoints():
    cfg = config.loads("[codepoints]\ntype = 240\nattach = 17\n[logging]\nlevel = 'debug'\n")
    assert cfg.codepoints.profile() == Codepoints(type=240, attach=17)
    assert cfg.logging.level == "debug"


@pytest.mark.parametrize("text, key, problem", [
    ("[codepoints]\ntype = 300\n", "codepoints.type", "out of range 128-255"),
    ("[codepoints]\ntype = 'x'\n", "codepoints.type", "expected an integer"),
    ("[codepoints]\ntype = 133\n", "codepoints.type", "already used by echo/ND"),
    ("[codepoints]\nattach = 1\n", "codepoints.attach", "also used by handover_redirect"),
    ("[codepoints]\nhandover = -1\n", "codepoints.handover", "out of range 0-255"),
    ("[codepoints]\ntypo = 1\n", "codepoints.typo", "unknown key"),
    ("[nope]\n", "nope", "unknown section"),
    ("codepoints = 3\n", "codepoints", "expected a table"),
    ("[logging]\nlevel = 'loud'\n", "logging.level", "not one of"),
    ("[codepoints]\ntype = true\n", "codepoints.type", "expected an integer"),
])
def test_errors_name_key_and_problem(text, key, problem):
    with pytest.raises(ConfigError) as info:
        config.loads(text, source="x.toml")
    assert info.value.key == key
    assert problem in info.value.problem
    assert str(info.value).startswith(f"x.toml: {key}: ")


def test_syntax_error_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.loads("[codepoints\n")
    with pytest.raises(ConfigError, match="cannot read"):
        config.load(tmp_path / "missing.toml")
    bad = tmp_path / "bin.toml"
    bad.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        config.load(bad)


def test_config_is_frozen():
    cfg = config.Config()
    with pytest.raises(AttributeError):
        cfg.codepoints = None  # type: ignore[misc]
    with pytest.raises(AttributeError):
        DEFAULT_CODEPOINTS.type = 1  # type: ignore[misc]

from pathlib import Path

import pytest

from bastion.errors import ConfigError
from bastion.findings import Severity
from bastion.runs.config import load_config, parse_config_text

GOOD = """\
name: fraud
seed: 3
target:
  path: models/m.onnx
  query_budget: 100
  security_decision: true
  input:
    immutable: [port]
data:
  path: data.csv
  label: y
probes:
  - robustness.noise
  - id: exposure.output_granularity
    params: {n_samples: 50}
gate:
  fail_on: Important
"""


def test_good_config_parses_and_resolves_paths(tmp_path: Path):
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text(GOOD)
    cfg = load_config(cfg_file)
    assert cfg.name == "fraud" and cfg.seed == 3
    t = cfg.targets[0]
    assert t.display_name == "m" and t.query_budget == 100 and t.security_decision
    assert cfg.resolve(t.path) == tmp_path / "models/m.onnx"
    assert [p.id for p in cfg.probes] == ["robustness.noise", "exposure.output_granularity"]
    assert cfg.probes[1].params == {"n_samples": 50}
    assert cfg.gate.fail_on is Severity.IMPORTANT
    assert cfg.data_for(t).label == "y"


def test_fingerprint_ignores_reporting_but_not_probes():
    a = parse_config_text(GOOD, base_dir=Path("/x"))
    b = parse_config_text(GOOD.replace("fail_on: Important", "fail_on: low"), base_dir=Path("/x"))
    c = parse_config_text(GOOD.replace("n_samples: 50", "n_samples: 60"), base_dir=Path("/x"))
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            GOOD.replace("query_budget", "query_budgt"),
            r"line 5: 'target\.query_budgt' is not a known field",
        ),
        (
            GOOD.replace("query_budget: 100", "query_budget: -1"),
            r"line 5: 'target\.query_budget' input should be greater",
        ),
        (
            GOOD.replace("fail_on: Important", "fail_on: severe"),
            r"line 17: 'gate\.fail_on' must be one of low",
        ),
        (GOOD.replace("  path: data.csv\n", ""), r"'data' give exactly one of 'builtin' or 'path'"),
        ("target: {path: a}\n", r"has no data"),
        ("target: [unclosed\n", r"line 2: not valid YAML"),
        ("- just a list\n", r"must be a YAML mapping"),
        ("targets: []\ndata: {builtin: digits}\n", r"'targets' needs at least one entry"),
        ("target: {url: ftp://x}\ndata: {builtin: digits}\n", r"must start with http"),
    ],
)
def test_bad_configs_say_where_and_what(text: str, expected: str):
    with pytest.raises(ConfigError, match=expected):
        parse_config_text(text, "cfg.yaml")


def test_missing_config_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="No config file at"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="is a folder"):
        load_config(tmp_path)

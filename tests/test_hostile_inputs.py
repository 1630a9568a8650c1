"""Hostile and careless inputs through the real CLI: each ends with exit 2, a message naming
the file, key or column at fault, no Python traceback, and nothing registered in MLflow."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from conftest import make_pipeline, mlflow_client, registered_versions, run_cli, state_env
from risk_assets._yaml import MAX_ALIAS_NODES, MAX_YAML_BYTES

EXIT_CONFIG = 2


def _refused(spec: Path, state: Path, *culprits: str) -> str:
    """Run ``spec`` with the real CLI; assert exit 2, every culprit named on stderr, no
    traceback and an empty registry. Returns stderr."""
    proc = run_cli("run", str(spec), env=state_env(state))
    err = proc.stderr
    assert proc.returncode == EXIT_CONFIG, (proc.returncode, err[-2000:], proc.stdout[-2000:])
    assert "Traceback" not in err and "Traceback" not in proc.stdout, err[-3000:]
    message = err[err.index("risk-assets: error:") :]
    for culprit in culprits:
        assert culprit in message, (culprit, message)
    assert registered_versions(mlflow_client()) == []
    return message


def _billion_laughs(levels: int = 9, width: int = 9) -> str:
    lines = [f"lol0: &lol0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels + 1):
        lines.append(f"lol{i}: &lol{i} [{', '.join([f'*lol{i - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def _append(text: str) -> Callable[[str], str]:
    return lambda doc: doc + text


# ---------------------------------------------------------------------------------------
# 1. YAML bombs, oversized and pathological YAML in a spec or a policy
# ---------------------------------------------------------------------------------------

YAML_CASES = {
    # a billion laughs appended to a valid file: refused while composing, before any
    # value is built or validated
    "billion_laughs": (_append(_billion_laughs()), ("MAX_ALIAS_NODES", str(MAX_ALIAS_NODES))),
    "billion_laughs_in_a_value": (
        lambda doc: doc.replace("\n", "\n" + _billion_laughs().replace("lol", "x"), 1),
        ("MAX_ALIAS_NODES",),
    ),
    "recursive_alias": (_append("loop: &loop [*loop]\n"), ("*loop", "contains it")),
    "larger_than_1_mib": (
        _append("# " + "x" * MAX_YAML_BYTES + "\n"),
        ("larger than", str(MAX_YAML_BYTES), "MAX_YAML_BYTES"),
    ),
    "nested_too_deeply": (
        _append("deep: " + "[" * 20000 + "]" * 20000 + "\n"),
        ("nested too deeply",),
    ),
    "python_object_tag": (
        _append("evil: !!python/object/apply:os.system ['touch pwned']\n"),
        ("not valid YAML", "python/object/apply"),
    ),
}


@pytest.mark.parametrize("which", ["spec", "policy"])
@pytest.mark.parametrize("case", sorted(YAML_CASES))
def test_hostile_yaml_is_refused_naming_the_file(tmp_path, state, which, case):
    edit, expected = YAML_CASES[case]
    spec = make_pipeline(tmp_path / "p")
    target = spec if which == "spec" else tmp_path / "p" / "policy.yaml"
    target.write_text(edit(target.read_text()))
    _refused(spec, state, str(target), *expected)
    assert not (tmp_path / "p" / "pwned").exists() and not Path("pwned").exists()


def test_anchors_and_aliases_within_the_bound_still_load(tmp_path):
    """A policy that reuses an anchored block stays valid: the bound is on expansion."""
    from risk_assets.policy import load_policy

    make_pipeline(tmp_path / "p")
    policy = tmp_path / "p" / "policy.yaml"
    doc = yaml.safe_load(policy.read_text())
    text = yaml.safe_dump(doc, sort_keys=False)
    # the owner of the first risk, anchored and reused by the second
    owner = doc["risks"][0]["owner"]
    first = text.index(f"owner: {owner}")
    text = text[:first] + f"owner: &who {owner}" + text[first + len(f"owner: {owner}") :]
    second = text.index(f"owner: {doc['risks'][1]['owner']}", first + 10)
    text = (
        text[:second] + "owner: *who" + text[second + len(f"owner: {doc['risks'][1]['owner']}") :]
    )
    policy.write_text(text)
    loaded = load_policy(policy)
    assert loaded.policy.risks[1].owner == owner

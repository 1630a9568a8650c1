"""Hostile and careless inputs through the real CLI: each ends with exit 2, a message naming
the file, key or column at fault, no Python traceback, and nothing registered in MLflow."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
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


# ---------------------------------------------------------------------------------------
# 2. Repeated column names: refused as written in the header, before pandas renames them
# ---------------------------------------------------------------------------------------


def _repeat_header(data: Path, column: str, times: int = 2) -> None:
    """Rewrite ``data`` so that ``column`` appears ``times`` times (its values copied)."""
    frame = pd.read_csv(data)
    for i in range(1, times):
        frame[f"{column}__copy{i}"] = frame[column]
    text = frame.to_csv(index=False)
    header, rest = text.split("\n", 1)
    header = ",".join(
        column if name.startswith(f"{column}__copy") else name for name in header.split(",")
    )
    data.write_text(header + "\n" + rest)


@pytest.mark.parametrize(
    ("column", "times", "positions"),
    [
        ("age", 2, "10, 11"),  # a protected attribute
        ("duration", 3, "8, 11, 12"),  # a model feature, three times
        ("risk", 2, "1, 11"),  # the target
    ],
)
def test_a_repeated_column_name_is_refused(tmp_path, state, column, times, positions):
    spec = make_pipeline(tmp_path / "p")
    data = tmp_path / "p" / "data.csv"
    _repeat_header(data, column, times)
    assert f"{column}.1" in pd.read_csv(data).columns  # what pandas would have trained on
    _refused(spec, state, str(data), f"{column!r} at positions {positions}", "repeated column")


def test_a_second_column_under_an_existing_name_is_refused(tmp_path, state, credit):
    """Two different columns under one name: pandas would keep both, one as 'sex.1'."""
    frame = credit.copy()
    frame.insert(1, "sex_again", frame["housing"])
    spec = make_pipeline(tmp_path / "p", data=frame)
    data = tmp_path / "p" / "data.csv"
    data.write_text(data.read_text().replace("sex_again", "sex", 1))
    _refused(spec, state, str(data), "'sex' at positions 2, 3")


# ---------------------------------------------------------------------------------------
# 3. A column of numbers that also holds words or booleans: refused, values shown
# ---------------------------------------------------------------------------------------


def _mixed(column: str, values: list) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.copy()
        out[column] = out[column].astype(object)
        for i, value in enumerate(values):
            out.loc[range(i * 7, len(out), 7 * len(values)), column] = value
        return out

    return edit


MIXED_CASES = {
    "numbers_words_and_booleans": (
        _mixed("duration", ["unknown", True, False]),
        "duration",
        ["False", "True", "unknown"],
    ),
    "numbers_and_booleans": (_mixed("credit_amount", [True]), "credit_amount", ["True"]),
    "two_placeholders": (_mixed("duration", ["n.a.", "?"]), "duration", ["?", "n.a."]),
    "a_budgeted_feature": (
        _mixed("credit_amount", ["none", "lots"]),
        "credit_amount",
        ["lots", "none"],
    ),
}


@pytest.mark.parametrize("case", sorted(MIXED_CASES))
def test_a_column_of_numbers_mixed_with_other_values_is_refused(tmp_path, state, credit, case):
    edit, column, shown = MIXED_CASES[case]
    spec = make_pipeline(tmp_path / "p", data=edit(credit))
    data = tmp_path / "p" / "data.csv"
    _refused(spec, state, str(data), f"{column!r} holds {shown}")


def test_a_parquet_column_of_numbers_as_text_mixed_with_words_is_refused(tmp_path, state, credit):
    frame = _mixed("duration", ["abc", "False"])(credit)
    frame["duration"] = frame["duration"].astype(str)
    spec = make_pipeline(tmp_path / "p", spec={"source": {"path": "data.parquet"}})
    data = tmp_path / "p" / "data.parquet"
    frame.to_parquet(data, index=False)
    _refused(spec, state, str(data), "'duration' holds ['False', 'abc']")


def test_which_columns_count_as_numbers_mixed_with_text():
    from risk_assets.data import numbers_mixed_with_text

    frame = pd.DataFrame(
        {
            "placeholder": ["1", "2", "unknown", "3", None],  # one word: the suite's finding
            "words": ["1", "2", "unknown", "n/a", "3"],
            "boolean": [1, 2, True, 4, 5],  # a Python bool among numbers
            "mostly_text": ["a", "b", "c", "1", "2"],  # a category that has numbers in it
            "numbers": [1.0, 2.0, None, 4.0, 5.0],
            "flags": [True, False, True, True, False],
        }
    )
    assert numbers_mixed_with_text(frame, list(frame.columns)) == {
        "words": ["n/a", "unknown"],
        "boolean": ["True"],
    }


def test_a_declared_category_may_mix_codes_and_words(credit):
    """``categorical_features`` says the column is a category: codes and words are both
    categories, trained as such, and not refused."""
    from risk_assets.data import select_columns
    from risk_assets.errors import DataError

    frame = _mixed("job", ["none", "other"])(credit)
    with pytest.raises(DataError, match=r"'job' holds \['none', 'other'\]"):
        select_columns(frame, target="risk", features=None, source="data.csv")
    kept, features = select_columns(
        frame, target="risk", features=None, source="data.csv", categorical=["job"]
    )
    assert "job" in features and set(kept["job"]) >= {"none", "other"}


# ---------------------------------------------------------------------------------------
# 4. A target of more than two classes: binary classification only
# ---------------------------------------------------------------------------------------


def _target(values: Callable[[pd.DataFrame], list]) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.copy()
        out["risk"] = values(out)
        return out

    return edit


TARGET_CASES = {
    "three_integer_classes": (_target(lambda f: [i % 3 for i in range(len(f))]), "[0, 1, 2]"),
    "three_words": (
        _target(lambda f: [("good", "bad", "unknown")[i % 3] for i in range(len(f))]),
        "['bad', 'good', 'unknown']",
    ),
    "one_stray_third_value": (
        _target(lambda f: [2 if i == 500 else v for i, v in enumerate(f["risk"])]),
        "[0, 1, 2]",
    ),
    "a_continuous_target": (
        _target(lambda f: list(f["credit_amount"])),
        "and ",  # many classes: the first ten, then how many more
    ),
}


@pytest.mark.parametrize("case", sorted(TARGET_CASES))
def test_a_target_of_more_than_two_classes_is_refused(tmp_path, state, credit, case):
    edit, shown = TARGET_CASES[case]
    spec = make_pipeline(tmp_path / "p", data=edit(credit))
    data = tmp_path / "p" / "data.csv"
    _refused(spec, state, str(data), "target column 'risk'", shown, "binary classification only")


def test_a_yaml_bomb_in_a_models_mlmodel_file_is_refused_without_expanding(tmp_path):
    """The MLmodel file of a model folder comes from an artefact store: a billion-laughs
    document there is refused by the safe loader, naming the file."""
    from risk_assets.errors import IntegrityError
    from risk_assets.registry._models import load_model_dir

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "MLmodel").write_text(_billion_laughs() + "flavors: *lol9\n", encoding="utf-8")
    with pytest.raises(IntegrityError, match="MLmodel.*MAX_ALIAS_NODES|MLmodel.*alias"):
        load_model_dir(folder, expected_sha256="0" * 64)

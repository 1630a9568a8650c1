"""Hostile and careless inputs, at the level of the functions that refuse them.

Through the command line (exit 2, the culprit named, no traceback, nothing registered or
half-written) every such input is a case of the table in tests/test_bad_inputs.py: YAML
bombs, oversized and pathological YAML, repeated column names, columns of numbers mixed
with words or booleans, targets of more than two classes. Here: what the refusals rest on,
and what must still be accepted.
"""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from test_bad_inputs import billion_laughs

from conftest import ROOT, make_pipeline
from risk_assets.errors import DataError, SpecError


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


def test_a_yaml_syntax_error_is_one_line_naming_file_line_and_column(tmp_path):
    """PyYAML's own message spans several lines and calls the file "<unicode string>"."""
    from risk_assets.spec import load_spec

    spec = tmp_path / "spec.yaml"
    spec.write_text("name: x\ntarget: [unclosed\n")
    with pytest.raises(SpecError) as err:
        load_spec(spec)
    message = str(err.value)
    assert "\n" not in message and "<unicode string>" not in message
    assert message.startswith(f"{spec}: not valid YAML: line 3, column 1: ")
    assert "while parsing a flow sequence: expected ',' or ']'" in message


def _outcome(load, text: str) -> tuple[str, object]:
    """What loading ``text`` gives: the value, or the kind and text of the error."""
    try:
        return ("value", load(text))
    except RecursionError:
        return ("RecursionError", "")
    except yaml.YAMLError as exc:
        return (type(exc).__name__, str(exc))


@pytest.mark.parametrize(
    "path",
    sorted(
        p
        for pattern in (
            "pipelines/**/*.yaml",
            "risk_assets/**/*.yaml",
            "docker/**/*.yaml",
            "*.yaml",
        )
        for p in ROOT.glob(pattern)
    ),
    ids=lambda p: p.relative_to(ROOT).as_posix(),
)
def test_libyaml_and_the_counting_loader_read_every_shipped_file_alike(path):
    """A document without aliases is parsed by libyaml (fast); it must give exactly what
    the counting (pure Python) loader gives."""
    from risk_assets import _yaml

    assert _yaml._FAST_LOADER is yaml.CSafeLoader, "the fast path is off: it is untested"
    text = path.read_text(encoding="utf-8")
    assert _outcome(_yaml.safe_load_bounded, text) == _outcome(_yaml._load_counting, text)


@pytest.mark.parametrize(
    "text",
    [
        "name: x\ntarget: [unclosed\n",
        "a: 1\n  b: 2\n",
        "a: 1\na: 2\n",
        "[" * 2000 + "]" * 2000,
        "".join("  " * i + f"k{i}:\n" for i in range(1500)) + "  " * 1500 + "v: 1\n",
        "key: !!python/object:os.system 'true'\n",
        "key: !!python/name:os.system\n",
        "key: !!python/tuple [1]\n",
        "one: 1\n---\ntwo: 2\n",
        "a: " + "[" * 300 + "]" * 300,
        "a: " + "[" * 999 + "]" * 999,
        "a: " + "[" * 99 + "]" * 99,
        "when: 2020-13-45\n",
        "count: !!int\n",
        "at: !!timestamp x\n",
    ],
    ids=[
        "unclosed",
        "bad_indent",
        "repeated_key",
        "deep_flow",
        "deep_block",
        "python_tag",
        "python_name",
        "python_tuple",
        "two_documents",
        "nested_300",
        "nested_999",
        "nested_100_allowed",
        "bad_date",
        "empty_int",
        "bad_timestamp",
    ],
)
def test_a_document_libyaml_refuses_gets_the_counting_loaders_answer(text):
    """Errors read the same whichever parser met them first: the counting loader has the
    last word, and each of these is an error or value of its own (never a RecursionError
    or a bare ValueError)."""
    from risk_assets import _yaml

    fast, counted = _outcome(_yaml.safe_load_bounded, text), _outcome(_yaml._load_counting, text)
    assert fast == counted
    assert fast[0] in {
        "value",
        "YamlBoundError",
        "ConstructorError",
        "ScannerError",
        "ParserError",
        "ComposerError",
    }, fast


def test_deep_documents_are_refused_at_the_bound_with_where():
    from risk_assets._yaml import MAX_NESTING, YamlBoundError, safe_load_bounded

    assert safe_load_bounded("a: " + "[" * (MAX_NESTING - 1) + "]" * (MAX_NESTING - 1))
    for text in (
        "a: " + "[" * MAX_NESTING + "]" * MAX_NESTING,  # libyaml reads it: caught after
        "a: " + "[" * 5000 + "]" * 5000,  # libyaml refuses it: caught by the counting loader
    ):
        with pytest.raises(YamlBoundError, match=f"more than {MAX_NESTING} levels .* column"):
            safe_load_bounded(text)


def test_a_libyaml_without_a_nesting_limit_is_not_used():
    """PyYAML built on libyaml before 0.2.6 recurses without a limit, so a deep enough
    document would overflow the C stack: such a loader fails the probe. PyYAML's own
    Python loader, given the stack to do it, is one that reads 1,001 levels."""
    import sys

    from risk_assets import _yaml

    assert _yaml._limits_nesting(yaml.CSafeLoader)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(50_000)
    try:
        assert not _yaml._limits_nesting(yaml.SafeLoader)
    finally:
        sys.setrecursionlimit(limit)


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

    frame = credit.copy()
    frame["job"] = frame["job"].astype(object)
    frame.loc[range(0, len(frame), 14), "job"] = "none"
    frame.loc[range(7, len(frame), 14), "job"] = "other"
    with pytest.raises(DataError, match=r"'job' holds \['none', 'other'\]"):
        select_columns(frame, target="risk", features=None, source="data.csv")
    kept, features = select_columns(
        frame, target="risk", features=None, source="data.csv", categorical=["job"]
    )
    assert "job" in features and set(kept["job"]) >= {"none", "other"}


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        ("a,b,y\n1,2,0,\n3,4,1,\n", 4),  # a delimiter at the end of each data line
        ("a,b,y\n1,2,0,8,9\n3,4,1\n", 5),  # a first row longer than the header
        ("id,b,y\n\n0,2,0,\n1,4,1,\n", 4),  # row numbers read as the index look like none
    ],
)
def test_rows_longer_than_the_header_are_refused_not_read_shifted(tmp_path, text, fields):
    """pandas reads the leading fields of such rows as the index: the first column would
    hold the second's values and the target none of its own."""
    from risk_assets.data import read_source

    path = tmp_path / "data.csv"
    path.write_text(text)
    with pytest.raises(DataError) as err:
        read_source(path, "csv")
    line = 3 if "\n\n" in text else 2
    assert str(err.value).startswith(
        f"{path}: line {line} has {fields} fields, the header 3 column names"
    )
    path.write_text("a,b,y\n1,2,0\n3,4,1\n")
    assert read_source(path, "csv").to_dict("list") == {"a": [1, 3], "b": [2, 4], "y": [0, 1]}


def test_a_reader_error_is_one_line(tmp_path):
    """pandas ends a parser error with a newline: the CLI prints one line per error."""
    from risk_assets.data import read_source

    path = tmp_path / "data.csv"
    path.write_text("a,b,y\n1,2,0\n3,4,1,7\n")
    with pytest.raises(DataError, match="Expected 3 fields in line 3, saw 4") as err:
        read_source(path, "csv")
    assert "\n" not in str(err.value)


def test_a_yaml_bomb_in_a_models_mlmodel_file_is_refused_without_expanding(tmp_path):
    """The MLmodel file of a model folder comes from an artefact store: a billion-laughs
    document there is refused by the safe loader, naming the file."""
    from risk_assets.errors import IntegrityError
    from risk_assets.registry._models import load_model_dir

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "MLmodel").write_text(billion_laughs() + "flavors: *lol9\n", encoding="utf-8")
    with pytest.raises(IntegrityError, match="MLmodel.*MAX_ALIAS_NODES|MLmodel.*alias"):
        load_model_dir(folder, expected_sha256="0" * 64)

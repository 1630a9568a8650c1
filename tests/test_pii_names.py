"""The person-name detector of the PII gate: categorical codes that look like names pass,
real names (whole values, capitals, inside free text) are found, every pandas dtype scans."""

from __future__ import annotations

import json
from itertools import product

import numpy as np
import pandas as pd

from conftest import policy_params
from risk_assets.controls._pii import scan_pii

# Written here, independent of the lexicon the control ships: common first names of several
# origins and common surnames.
FIRST = [
    "Maria", "John", "Emily", "Robert", "Linda", "James", "Patricia", "Michael", "Jennifer",
    "David", "Susan", "Thomas", "Karen", "Daniel", "Nancy", "Paul", "Laura", "Kevin", "Sarah",
    "Jose", "Ana", "Carlos", "Rosa", "Juan", "Elena", "Hans", "Ingrid", "Giuseppe", "Olga",
    "Peter", "Helen", "Andrew", "Sandra", "Steven", "Julia", "Brian", "Anna", "Eric", "Monica",
    "George",
]  # fmt: skip
LAST = [
    "Schmidt", "Garcia", "Smith", "Nguyen", "Johnson", "Miller", "Rossi", "Kowalski", "Brown",
    "Martinez", "Müller", "Jones", "Davis", "Lopez", "Wilson", "Anderson", "Taylor", "Moore",
    "Fischer", "Silva", "Novak", "Dubois", "Hansen", "Costa", "O'Brien",
]  # fmt: skip
STATES = [
    "Alabama", "Alaska", "Arizona", "Arkansas", "California", "Colorado", "Connecticut",
    "Delaware", "Florida", "Georgia", "Hawaii", "Idaho", "Illinois", "Indiana", "Iowa",
    "Kansas", "Kentucky", "Louisiana", "Maine", "Maryland", "Massachusetts", "Michigan",
    "Minnesota", "Mississippi", "Missouri", "Montana", "Nebraska", "Nevada", "New Hampshire",
    "New Jersey", "New Mexico", "New York", "North Carolina", "North Dakota", "Ohio",
    "Oklahoma", "Oregon", "Pennsylvania", "Rhode Island", "South Carolina", "South Dakota",
    "Tennessee", "Texas", "Utah", "Vermont", "Virginia", "Washington", "West Virginia",
    "Wisconsin", "Wyoming",
]  # fmt: skip
COUNTRIES = [
    "United States", "United Kingdom", "Germany", "France", "South Africa", "New Zealand",
    "Canada", "Mexico", "Brazil", "India", "China", "Japan", "South Korea", "North Korea",
    "Saudi Arabia", "United Arab Emirates", "Sri Lanka", "El Salvador", "Costa Rica",
    "Puerto Rico", "Dominican Republic", "Czech Republic", "Central African Republic",
    "Burkina Faso", "Sierra Leone", "Ivory Coast", "Marshall Islands", "Solomon Islands",
    "Cape Verde", "Equatorial Guinea", "Papua New Guinea", "Trinidad and Tobago",
    "Bosnia and Herzegovina", "Antigua and Barbuda", "Hong Kong", "San Marino", "Saint Lucia",
    "Vatican City", "East Timor", "North Macedonia", "Ireland", "Italy", "Spain", "Poland",
    "Netherlands", "Belgium", "Sweden", "Norway", "Denmark", "Finland", "Argentina", "Chile",
    "Peru", "Colombia", "Nigeria", "Kenya", "Egypt", "Morocco", "Turkey", "Israel",
]  # fmt: skip


def _skewed(values: list[str], n: int, seed: int) -> np.ndarray:
    """``n`` draws where every value occurs and frequencies fall off like a power law."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, len(values) + 1) ** 1.2
    draws = rng.choice(values, size=n - len(values), p=weights / weights.sum())
    out = np.concatenate([values, draws])
    rng.shuffle(out)
    return out


def _people(n: int) -> list[str]:
    pairs = [f"{first} {last}" for first, last in product(FIRST, LAST)]
    return [pairs[i % len(pairs)] for i in range(n)]


def _kinds(result) -> dict[tuple[str, str], float]:
    return {(r["column"], r["kind"]): r["share"] for r in result.table}


def _scan(df: pd.DataFrame):
    params = policy_params("PRIV-001")
    return scan_pii(df, max_share=params["max_share"], sample_size=params["sample_size"])


def test_verification_status_column_is_a_category_not_names(credit):
    rng = np.random.default_rng(3)
    status = rng.choice(
        ["Verified", "Not Verified", "Source Verified"], size=len(credit), p=[0.3, 0.31, 0.39]
    )
    result = _scan(credit.assign(verification_status=status))
    assert result.passed, result.summary
    assert result.table == []


def test_us_state_column_passes(credit):
    result = _scan(credit.assign(addr_state=_skewed(STATES, len(credit), seed=4)))
    assert result.passed, result.summary


def test_country_column_passes_though_some_countries_start_with_a_first_name(credit):
    countries = _skewed(COUNTRIES, len(credit), seed=5)
    assert {"Marshall Islands", "Sierra Leone", "Solomon Islands"} <= set(countries)
    result = _scan(credit.assign(country=countries))
    assert result.passed, result.summary


def test_high_cardinality_column_of_person_names_is_flagged(credit):
    names = _people(len(credit))
    assert len(set(names)) == len(credit)
    result = _scan(credit.assign(applicant=names))
    assert not result.passed
    assert _kinds(result) == {("applicant", "person_name"): 1.0}


def test_repeated_names_and_names_in_capitals_are_flagged(credit):
    """200 people over 1,000 rows is a category by cardinality, but its rows name people."""
    repeated = _people(200) * 5
    capitals = [name.upper() for name in _people(len(credit))]
    result = _scan(credit.assign(customer=repeated, holder=capitals))
    found = _kinds(result)
    assert found[("customer", "person_name")] == 1.0
    assert found[("holder", "person_name")] == 1.0  # "MARIA MÜLLER", "JOSE O'BRIEN" too


def test_names_inside_free_text_are_found(credit):
    people = _people(len(credit))
    notes = [
        f"Called {people[i]} about the loan of {amount} DM"
        if i % 4 == 0
        else f"Applicant asked for {amount} DM over {months} months for {purpose}"
        for i, (amount, months, purpose) in enumerate(
            zip(credit["credit_amount"], credit["duration"], credit["purpose"], strict=True)
        )
    ]
    result = _scan(credit.assign(note=notes))
    assert not result.passed
    assert _kinds(result) == {("note", "person_name"): 0.25}


def test_name_inside_a_repeated_sentence_still_counts(credit):
    notes = [
        "Called Maria Schmidt about the loan" if i % 10 == 0 else "No contact" for i in range(1000)
    ]
    assert _kinds(_scan(credit.assign(note=notes))) == {("note", "person_name"): 0.1}


def test_clean_loan_descriptions_pass(credit):
    templates = [
        "Debt consolidation for my credit cards ({amount} DM)",
        "Home improvement, {months} months",
        "Credit Card Refinancing {amount}",
        "Major Purchase of {amount} DM",
        "Home Improvement",
        "Paying off my Chase Bank card and a Wells Fargo loan, {amount} DM",
        "Moving to New York in May, need {amount} DM",
        "Will Pay Off Sallie Mae Student Loan In {months} Months",
        "Used car, a Mercedes Benz, {amount} DM over {months} months",
        "Business expansion: New Equipment For The Shop",
    ]
    descriptions = [
        templates[i % len(templates)].format(amount=amount, months=months)
        for i, (amount, months) in enumerate(
            zip(credit["credit_amount"], credit["duration"], strict=True)
        )
    ]
    result = _scan(credit.assign(desc=descriptions, title=credit["purpose"].str.title()))
    assert result.passed, result.summary


def test_every_dtype_pandas_reads_scans_and_passes_when_clean(credit):
    n = len(credit)
    rng = np.random.default_rng(6)
    df = credit.copy()
    df["flag"] = credit["risk"] == 1
    df["flag_nullable"] = pd.array([True, False, None, True] * (n // 4), dtype="boolean")
    df["count_nullable"] = pd.array([1, None, 3, 4] * (n // 4), dtype="Int64")
    df["ratio"] = np.where(rng.random(n) < 0.1, np.nan, rng.random(n))
    df["whole_with_gaps"] = credit["credit_amount"].astype(float).where(credit["age"] > 25)
    df["ratio_inf"] = np.where(credit["duration"] > 40, np.inf, credit["duration"].astype(float))
    df["huge"] = credit["credit_amount"] * 1e20
    df["segment"] = credit["purpose"].astype("category")
    df["opened"] = pd.Timestamp("2020-01-01") + pd.to_timedelta(np.arange(n), unit="D")
    df["opened_utc"] = df["opened"].dt.tz_localize("UTC")
    df["waited"] = pd.to_timedelta(credit["duration"], unit="D")
    df["purpose_obj"] = credit["purpose"].astype(object)
    df["purpose_str"] = credit["purpose"].astype("string")
    df["empty_obj"] = pd.Series([None] * n, dtype=object)
    df["empty_float"] = np.nan
    df["empty_str"] = pd.Series([pd.NA] * n, dtype="string")
    df["mixed"] = pd.Series([1, "a", 2.5, None] * (n // 4), dtype=object)
    df["self"] = credit["housing"]
    result = _scan(df)
    assert result.passed, result.summary
    assert result.table == []


def test_every_dtype_still_finds_names_where_they_are(credit):
    names = _people(len(credit))
    df = credit.assign(
        as_object=pd.Series(names, dtype=object),
        as_string=pd.Series(names, dtype="string"),
        as_category=pd.Series(names, dtype="category"),
    )
    df["self"] = names
    found = _kinds(_scan(df))
    for col in ("as_object", "as_string", "as_category", "self"):
        assert found[(col, "person_name")] == 1.0


def test_a_million_rows_sampled(credit):
    """Sampled 10,000 of 1,000,000 rows: states stay a category, names stay names."""
    big = credit.sample(n=1_000_000, replace=True, random_state=0).reset_index(drop=True)
    big["addr_state"] = _skewed(STATES, len(big), seed=7)
    big["verification_status"] = np.random.default_rng(8).choice(
        ["Verified", "Not Verified", "Source Verified"], size=len(big)
    )
    big["applicant"] = _people(len(big))
    result = _scan(big)
    assert result.sample_size == 10_000
    assert _kinds(result) == {("applicant", "person_name"): 1.0}


def test_no_raw_values_in_the_evidence(credit):
    people = _people(len(credit))
    df = credit.assign(
        applicant=people,
        note=[f"Called {p} about the loan" for p in people],
        country=_skewed(COUNTRIES, len(credit), seed=9),
    )
    result = _scan(df)
    assert not result.passed
    rendered = json.dumps(list(result.table)) + result.summary + json.dumps(result.to_dict())
    for word in {w for p in people for w in p.split()} | {"Marshall", "Sierra"}:
        assert word not in rendered
    assert {r["kind"] for r in result.table} == {"person_name"}


def test_duplicate_column_names_are_scanned_apart(credit):
    names = pd.Series(_people(len(credit)), name="purpose")
    df = pd.concat([credit, names], axis=1)
    assert list(df.columns).count("purpose") == 2
    assert _kinds(_scan(df)) == {("purpose", "person_name"): 1.0}

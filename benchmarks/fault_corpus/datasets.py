"""The corpus's data sets: two real ones and two generated ones, each with a role.

``tuned`` data sets are those thresholds were chosen on (German credit: the outlier
allowance, the PII name rules; breast cancer: the outlier allowance and the drift
distances); ``held-out`` ones (the two generated sets) were used for no threshold
choice. The generated data sets are written by this module from a seeded numpy
generator (the project's own data, Apache-2.0); nothing generated is committed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
GERMAN_CREDIT = ROOT / "pipelines" / "data" / "german_credit.csv"


@dataclass(frozen=True)
class DataSet:
    """One data set of the corpus and what the faults need to know about it."""

    name: str
    role: str  # "tuned" or "held-out"
    target: str
    favourable: object  # the label that favours a person (for the fairness fault)
    make: Callable[[], pd.DataFrame]
    protected: tuple[str, ...] = ()
    text_column: str | None = None
    description: str = ""
    notes: list[str] = field(default_factory=list)

    def frame(self) -> pd.DataFrame:
        return self.make()


# ---------------------------------------------------------------------------- real data


def _german_credit() -> pd.DataFrame:
    return pd.read_csv(GERMAN_CREDIT)


def _breast_cancer() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    # the column names as scikit-learn gives them ("mean radius", ...): spaces included
    return bunch.frame.copy()


# ---------------------------------------------------------------------------- generated

US_STATES = {
    "California": 39.0, "Texas": 30.0, "Florida": 22.0, "New York": 19.6,
    "Pennsylvania": 13.0, "Illinois": 12.5, "Ohio": 11.8, "Georgia": 11.0,
    "North Carolina": 10.8, "Michigan": 10.0, "New Jersey": 9.3, "Virginia": 8.7,
    "Washington": 7.8, "Arizona": 7.4, "Tennessee": 7.1, "Massachusetts": 7.0,
    "Indiana": 6.8, "Missouri": 6.2, "Maryland": 6.2, "Wisconsin": 5.9,
    "Colorado": 5.8, "Minnesota": 5.7, "South Carolina": 5.3, "Alabama": 5.1,
    "Louisiana": 4.6, "Kentucky": 4.5, "Oregon": 4.2, "Oklahoma": 4.0,
    "Connecticut": 3.6, "Utah": 3.4, "Iowa": 3.2, "Nevada": 3.2, "Arkansas": 3.0,
    "Mississippi": 2.9, "Kansas": 2.9, "New Mexico": 2.1, "Nebraska": 2.0,
    "Idaho": 1.9, "West Virginia": 1.8, "Hawaii": 1.4, "New Hampshire": 1.4,
    "Maine": 1.4, "Montana": 1.1, "Rhode Island": 1.1, "Delaware": 1.0,
    "South Dakota": 0.9, "North Dakota": 0.8, "Alaska": 0.7, "Vermont": 0.6,
    "Wyoming": 0.6,
}  # fmt: skip

_PURPOSES = {
    "debt_consolidation": 0.45,
    "credit_card": 0.2,
    "home_improvement": 0.09,
    "major_purchase": 0.05,
    "small_business": 0.04,
    "car": 0.05,
    "medical": 0.04,
    "other": 0.08,
}
_DESCRIPTIONS = {
    "debt_consolidation": [
        "Consolidating {n} credit cards into one lower payment",
        "Paying off high interest debt",
        "One payment instead of {n} bills each month",
        "Refinancing store cards and a personal loan",
    ],
    "credit_card": [
        "Pay off my credit card balance",
        "Moving a card balance to a lower rate",
        "Credit card refinance, {n} cards",
    ],
    "home_improvement": [
        "New roof for the house",
        "Kitchen remodel",
        "Replacing the furnace before winter",
        "Bathroom repairs and new windows",
    ],
    "major_purchase": ["New appliances", "Furniture for our first apartment", "Buying a piano"],
    "small_business": [
        "Inventory for my shop",
        "Equipment for a food truck",
        "Working capital for a small bakery",
    ],
    "car": ["Buying a used car", "Car repairs after an accident", "Down payment on a truck"],
    "medical": ["Dental work not covered by insurance", "Paying off hospital bills"],
    "other": ["Moving expenses", "Wedding costs", "Tuition for a certificate course"],
}


def _choice(rng: np.random.Generator, weights: dict, n: int) -> np.ndarray:
    keys = list(weights)
    p = np.array([weights[k] for k in keys], dtype=float)
    return rng.choice(np.array(keys, dtype=object), size=n, p=p / p.sum())


def make_loans(n: int = 4000, *, seed: int = 7) -> pd.DataFrame:
    """Consumer loans: a string target good/bad, a boolean, a nullable integer with gaps,
    free-text descriptions, verification status, US states, gender and age, lumpy counts,
    skewed incomes."""
    rng = np.random.default_rng(seed)
    age = np.clip(np.round(rng.normal(42, 12, n)), 21, 80).astype(int)
    gender = rng.choice(np.array(["Female", "Male"], dtype=object), n, p=[0.45, 0.55])
    income = np.round(np.exp(rng.normal(np.log(62_000), 0.55, n)) * (1 + (age - 42) / 200), -2)
    emp = pd.array(np.clip(rng.poisson(5, n), 0, 10), dtype="Int64")
    emp[rng.random(n) < 0.07] = pd.NA
    home = rng.choice(np.array(["RENT", "MORTGAGE", "OWN"], dtype=object), n, p=[0.42, 0.46, 0.12])
    verification = rng.choice(
        np.array(["Verified", "Not Verified", "Source Verified"], dtype=object),
        n,
        p=[0.35, 0.33, 0.32],
    )
    state = _choice(rng, US_STATES, n)
    purpose = _choice(rng, _PURPOSES, n)
    fico = np.clip(np.round(rng.normal(700, 35, n)), 620, 850).astype(int)
    term = rng.choice(np.array([36, 60]), n, p=[0.72, 0.28])
    amount = np.round(np.clip(np.exp(rng.normal(np.log(12_000), 0.6, n)), 1_000, 40_000), -2)
    dti = np.round(np.clip(rng.gamma(4.0, 4.5, n), 0, 45), 2)
    delinq = np.where(rng.random(n) < 0.82, 0, rng.poisson(1.2, n) + 1)
    inq = rng.poisson(0.7, n)
    revol = np.round(np.clip(rng.beta(2, 2.5, n) * 100, 0, 100), 1)
    revol[rng.random(n) < 0.02] = np.nan
    cosigner = rng.random(n) < 0.08
    rate = np.round(
        np.clip(5 + (770 - fico) / 9 + 2.2 * (term == 60) + rng.normal(0, 1.5, n), 5.3, 30.9), 2
    )
    texts = []
    for p in purpose:
        if rng.random() < 0.15:
            texts.append(None)
        else:
            t = rng.choice(_DESCRIPTIONS[p])
            texts.append(t.format(n=int(rng.integers(2, 6))))
    logit = (
        -1.6
        + 0.11 * (rate - 13)
        + 0.45 * delinq
        + 0.035 * (dti - 18)
        - 0.6 * np.log(income / 62_000)
        + 0.18 * inq
        + 0.35 * (term == 60)
        - 0.5 * cosigner
        + 0.4 * (purpose == "small_business")
        + 0.3 * (verification == "Not Verified")
    )
    bad = rng.random(n) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame(
        {
            "loan_amnt": amount,
            "term_months": term,
            "int_rate": rate,
            "annual_inc": income,
            "emp_length": emp,
            "home_ownership": home,
            "verification_status": verification,
            "purpose": purpose,
            "description": pd.array(texts, dtype=object),
            "state": state,
            "fico": fico,
            "dti": dti,
            "delinq_2yrs": delinq,
            "inq_last_6mths": inq,
            "revol_util": revol,
            "has_cosigner": cosigner,
            "gender": gender,
            "age": age,
            "loan_status": np.where(bad, "bad", "good"),
        }
    )


_COUNTRIES = {
    "Germany": 0.24,
    "France": 0.2,
    "Italy": 0.15,
    "Spain": 0.14,
    "Netherlands": 0.08,
    "Poland": 0.09,
    "Sweden": 0.05,
    "Portugal": 0.05,
}


def make_readmission(n: int = 3000, *, seed: int = 11, sentinel: bool = False) -> pd.DataFrame:
    """Hospital stays and 30-day readmission: mostly categorical, a yes/no target, a
    country column, one numeric protected attribute (age). With ``sentinel``, 2 % of
    ``days_since_last_visit`` hold 999999 ("never visited"), as exports often do."""
    rng = np.random.default_rng(seed)
    age = np.clip(np.round(rng.normal(63, 15, n)), 18, 97).astype(int)
    country = _choice(rng, _COUNTRIES, n)
    admission = _choice(
        rng, {"Emergency": 0.53, "Elective": 0.19, "Urgent": 0.18, "Transfer": 0.1}, n
    )
    discharge = _choice(
        rng,
        {"Home": 0.58, "Home health": 0.14, "Skilled nursing": 0.14, "Rehab": 0.06, "Other": 0.08},
        n,
    )
    diagnosis = _choice(
        rng,
        {
            "Circulatory": 0.3,
            "Respiratory": 0.14,
            "Diabetes": 0.09,
            "Digestive": 0.09,
            "Injury": 0.07,
            "Musculoskeletal": 0.05,
            "Neoplasms": 0.04,
            "Other": 0.22,
        },
        n,
    )
    insurance = _choice(rng, {"Public": 0.55, "Private": 0.38, "Self-pay": 0.07}, n)
    a1c = _choice(rng, {"not_measured": 0.83, "Norm": 0.05, ">7": 0.04, ">8": 0.08}, n)
    insulin = _choice(rng, {"No": 0.47, "Steady": 0.3, "Up": 0.11, "Down": 0.12}, n)
    stay = np.clip(np.round(rng.gamma(2.2, 2.0, n)), 1, 14).astype(int)
    labs = np.clip(np.round(rng.normal(43, 19, n) + 2 * stay), 1, 132).astype(int)
    meds = np.clip(np.round(rng.gamma(4.0, 4.0, n) + stay), 1, 81).astype(int)
    inpatient = np.where(rng.random(n) < 0.66, 0, rng.poisson(1.4, n) + 1)
    emergency = np.where(rng.random(n) < 0.88, 0, rng.poisson(0.8, n) + 1)
    diagnoses = np.clip(np.round(rng.normal(7.4, 1.9, n)), 1, 16).astype(int)
    last_visit = np.clip(np.round(rng.exponential(120, n)), 1, 1500).astype(int)
    if sentinel:
        last_visit[rng.random(n) < 0.02] = 999_999
    logit = (
        -1.5
        + 0.55 * np.minimum(inpatient, 4)
        + 0.35 * np.minimum(emergency, 3)
        + 0.06 * (stay - 4)
        + 0.4 * (discharge == "Skilled nursing")
        + 0.25 * (discharge == "Home health")
        + 0.3 * (diagnosis == "Diabetes")
        + 0.25 * (a1c == ">8")
        + 0.2 * (insulin == "Up")
        - 0.2 * (admission == "Elective")
        + 0.04 * (diagnoses - 7)
        + 0.004 * (age - 63)
    )
    yes = rng.random(n) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame(
        {
            "country": country,
            "age": age,
            "admission_type": admission,
            "discharge_to": discharge,
            "primary_diagnosis": diagnosis,
            "insurance": insurance,
            "a1c_result": a1c,
            "insulin": insulin,
            "time_in_hospital": stay,
            "num_lab_procedures": labs,
            "num_medications": meds,
            "number_inpatient": inpatient,
            "number_emergency": emergency,
            "number_diagnoses": diagnoses,
            "days_since_last_visit": last_visit,
            "readmitted": np.where(yes, "yes", "no"),
        }
    )


DATASETS: dict[str, DataSet] = {
    d.name: d
    for d in [
        DataSet(
            name="german_credit",
            role="tuned",
            target="risk",
            favourable=1,
            protected=("sex", "age"),
            make=_german_credit,
            description="German credit (pipelines/data), 1000 rows: 0/1 target, "
            "categorical and numeric features, numeric codes (job)",
        ),
        DataSet(
            name="loans",
            role="held-out",
            target="loan_status",
            favourable="good",
            protected=("gender", "age"),
            text_column="description",
            make=make_loans,
            description="generated consumer loans, 4000 rows: good/bad target, boolean, "
            "nullable integer with gaps, free text, US states, skewed incomes, "
            "mostly-zero counts",
        ),
        DataSet(
            name="breast_cancer",
            role="tuned",
            target="target",
            favourable=1,
            make=_breast_cancer,
            description="scikit-learn's breast cancer data, 569 rows: 30 numeric features "
            "whose names contain spaces, 0/1 target, no protected attribute",
        ),
        DataSet(
            name="readmission",
            role="held-out",
            target="readmitted",
            favourable="no",
            protected=("age",),
            make=make_readmission,
            description="generated hospital readmissions, 3000 rows: yes/no target, "
            "mostly categorical, a country column, a numeric protected attribute only",
        ),
        DataSet(
            name="readmission_sentinel",
            role="held-out",
            target="readmitted",
            favourable="no",
            protected=("age",),
            make=lambda: make_readmission(sentinel=True),
            description="readmission with 999999 in 2 % of days_since_last_visit "
            "(optional, not in the default corpus)",
        ),
    ]
}

#: The default corpus (``--datasets`` may add ``readmission_sentinel``).
DEFAULT_DATASETS = ("german_credit", "loans", "breast_cancer", "readmission")

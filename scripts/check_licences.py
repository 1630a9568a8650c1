"""Check the licence of every distribution installed in this interpreter's environment.

Each distribution's licence is read from its metadata, in this order: the SPDX
``License-Expression`` (core metadata 2.4), else its ``License ::`` trove classifiers, else
a short ``License`` field. Every licence found must be on ALLOWED (permissive and
weak-copyleft licences); an expression passes when its ``OR`` alternatives offer one that
is allowed and its ``AND`` parts are all allowed. A distribution whose metadata names no
licence we recognise fails, naming the package, unless EXCEPTIONS lists it with the
licence read from its licence file (checked again on every run).

alibi-detect is under the Business Source License 1.1 (BUSL-1.1: no production use
without a licence from Seldon). It belongs to the optional ``alibi`` extra only:
``--alibi`` allows it in that extra's environment (.venv-alibi), and nowhere else.

    .venv/bin/python scripts/check_licences.py
    .venv-alibi/bin/python scripts/check_licences.py --alibi

Exit status 0 when every distribution passes, 1 otherwise; one line per failure.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable
from importlib import metadata

#: SPDX identifiers allowed everywhere: OSI-approved permissive and weak-copyleft licences,
#: plus CC0-1.0 (a public-domain dedication; numpy ships code under it).
ALLOWED = frozenset(
    {
        "0BSD",
        "Apache-2.0",
        "BSD-2-Clause",
        "BSD-3-Clause",
        "BSL-1.0",  # the Boost Software License, not the Business Source License (BUSL)
        "CC0-1.0",
        "CNRI-Python",
        "HPND",
        "ISC",
        "LGPL-2.0-only",
        "LGPL-2.0-or-later",
        "LGPL-2.1-only",
        "LGPL-2.1-or-later",
        "LGPL-3.0-only",
        "LGPL-3.0-or-later",
        "MIT",
        "MIT-0",
        "MIT-CMU",
        "MPL-2.0",
        "PSF-2.0",
        "Python-2.0",
        "Unlicense",
        "Zlib",
        # families named without a version or clause count by classifiers and free text
        "Apache",
        "BSD",
        "LGPL",
    }
)

#: Distributions allowed under the Business Source License with ``--alibi`` only.
BUSL_IN_ALIBI_ENVIRONMENT = frozenset({"alibi-detect"})

#: Distributions whose metadata names no licence we can read, each with the licence its
#: licence file states, a phrase of that file that must still be there, and why it passes.
EXCEPTIONS: dict[str, tuple[str, str, str]] = {
    # metadata: no License-Expression, an empty License field and no licence classifier
    "huey": (
        "MIT",
        "Permission is hereby granted, free of charge",
        "LICENSE (Charles Leifer) is the MIT licence",
    ),
    # metadata: the bare classifier "License :: OSI Approved", which names no licence
    "skops": (
        "MIT",
        "Permission is hereby granted, free of charge",
        "LICENSE (Hugging Face Inc.) is the MIT licence",
    ),
}

_CLASSIFIERS = {
    "OSI Approved :: Apache Software License": "Apache",
    "OSI Approved :: BSD License": "BSD",
    "OSI Approved :: Boost Software License 1.0 (BSL-1.0)": "BSL-1.0",
    "OSI Approved :: GNU Lesser General Public License v2 (LGPLv2)": "LGPL-2.0-only",
    "OSI Approved :: GNU Lesser General Public License v2 or later (LGPLv2+)": (
        "LGPL-2.0-or-later"
    ),
    "OSI Approved :: GNU Lesser General Public License v3 (LGPLv3)": "LGPL-3.0-only",
    "OSI Approved :: GNU Lesser General Public License v3 or later (LGPLv3+)": (
        "LGPL-3.0-or-later"
    ),
    "OSI Approved :: GNU Library or Lesser General Public License (LGPL)": "LGPL",
    "OSI Approved :: Historical Permission Notice and Disclaimer (HPND)": "HPND",
    "OSI Approved :: ISC License (ISCL)": "ISC",
    "OSI Approved :: MIT License": "MIT",
    "OSI Approved :: MIT No Attribution License (MIT-0)": "MIT-0",
    "OSI Approved :: Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "OSI Approved :: Python Software Foundation License": "PSF-2.0",
    "OSI Approved :: The Unlicense (Unlicense)": "Unlicense",
    "OSI Approved :: zlib/libpng License": "Zlib",
    "CC0 1.0 Universal (CC0 1.0) Public Domain Dedication": "CC0-1.0",
}
# classifiers that say a licence exists but not which one
_UNINFORMATIVE_CLASSIFIERS = frozenset({"OSI Approved", "Freely Distributable"})

# free-text License fields, lowercased, with runs of spaces and punctuation made one space
_ALIASES = {
    "mit": "MIT",
    "mit license": "MIT",
    "mit licence": "MIT",
    "the mit license": "MIT",
    "bsd": "BSD",
    "bsd license": "BSD",
    "new bsd": "BSD-3-Clause",
    "new bsd license": "BSD-3-Clause",
    "modified bsd license": "BSD-3-Clause",
    "3 clause bsd license": "BSD-3-Clause",
    "bsd 3 clause license": "BSD-3-Clause",
    "bsd 2 clause license": "BSD-2-Clause",
    "apache 2": "Apache-2.0",
    "apache 2 0": "Apache-2.0",
    "apache license 2 0": "Apache-2.0",
    "apache license version 2 0": "Apache-2.0",
    "apache software license": "Apache",
    "isc license": "ISC",
    "psf": "PSF-2.0",
    "psfl": "PSF-2.0",
    "python software foundation license": "PSF-2.0",
    "mozilla public license 2 0": "MPL-2.0",
    "lgpl": "LGPL",
    "lgpl with exceptions": "LGPL",  # psycopg2: LGPL-3.0-or-later with an OpenSSL exception
    "business source license 1 1": "BUSL-1.1",
    "bsl 1 1": "BUSL-1.1",
}

_SPDX_TOKEN = re.compile(r"\(|\)|[A-Za-z0-9.+:\-]+")


def _spdx(expression: str) -> tuple[bool, list[str]] | None:
    """Whether an SPDX expression is allowed, and its licence identifiers; None when the
    text is no expression (free text such as "Dual License" or "Apache 2.0")."""
    tokens = _SPDX_TOKEN.findall(expression)
    if "".join(tokens) != re.sub(r"\s+", "", expression) or not tokens:
        return None
    ids: list[str] = []
    position = 0

    def peek() -> str | None:
        return tokens[position] if position < len(tokens) else None

    def take() -> str:
        nonlocal position
        position += 1
        return tokens[position - 1]

    def disjunction() -> bool:
        ok = conjunction()
        while peek() == "OR":
            take()
            ok = conjunction() or ok
        return ok

    def conjunction() -> bool:
        ok = term()
        while peek() == "AND":
            take()
            ok = term() and ok
        return ok

    def term() -> bool:
        if peek() == "(":
            take()
            ok = disjunction()
            if take() != ")":
                raise ValueError(expression)
            return ok
        licence = take()
        if licence in ("(", ")", "AND", "OR", "WITH"):
            raise ValueError(expression)
        ids.append(licence)
        if peek() == "WITH":  # an exception only adds permissions: the licence decides
            take()
            take()
        return licence in ALLOWED

    try:
        ok = disjunction()
    except (IndexError, ValueError):
        return None
    if position != len(tokens):
        return None
    return ok, ids


def _normalised(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def licences_of(dist: metadata.Distribution) -> tuple[list[str], bool | None, str]:
    """The licence identifiers a distribution's metadata names, whether they pass the
    allow-list (None: no licence found), and where they were read."""
    meta = dist.metadata
    expression = meta.get("License-Expression")
    if expression:
        parsed = _spdx(expression)
        if parsed is None:
            return [expression], False, "License-Expression"
        ok, ids = parsed
        return ids, ok, "License-Expression"
    classifiers = [
        c.removeprefix("License :: ")
        for c in meta.get_all("Classifier") or []
        if c.startswith("License :: ")
    ]
    named = [c for c in classifiers if c not in _UNINFORMATIVE_CLASSIFIERS]
    if named:
        # several classifiers: every one must pass (they may be parts, not alternatives)
        ids = [_CLASSIFIERS.get(c, c) for c in named]
        return ids, all(i in ALLOWED for i in ids), "classifiers"
    field = (meta.get("License") or "").strip()
    if field and "\n" not in field:
        parsed = _spdx(field)
        if parsed is not None:
            ok, ids = parsed
            return ids, ok, "License field"
        alias = _ALIASES.get(_normalised(field))
        if alias is not None:
            return [alias], alias in ALLOWED, "License field"
    return [], None, "metadata"


def _business_source(dist: metadata.Distribution) -> bool:
    """Whether the metadata puts a distribution under the Business Source License, however
    else it is classified (alibi-detect: "License :: Other/Proprietary License")."""
    expression = dist.metadata.get("License-Expression") or ""
    field = dist.metadata.get("License") or ""
    return "BUSL-1.1" in expression or "business source license" in field.lower()


def _licence_text(dist: metadata.Distribution) -> str:
    """The text of the licence files a distribution ships in its metadata directory."""
    texts = []
    for file in dist.files or ():
        parts = file.parts
        if parts and parts[0].endswith((".dist-info", ".egg-info")):
            name = file.name.upper()
            if name.startswith(("LICENSE", "LICENCE", "COPYING")):
                try:
                    texts.append(file.read_text(encoding="utf-8"))
                except (OSError, UnicodeDecodeError):
                    continue
    return "\n".join(texts)


def problems(
    dists: Iterable[metadata.Distribution], *, alibi: bool
) -> tuple[list[str], int, list[str]]:
    """One message per distribution whose licence is not allowed here, how many
    distributions were checked, and those passed under the Business Source License."""
    found: list[str] = []
    seen: set[str] = set()
    business_source: list[str] = []
    for dist in dists:
        raw = dist.metadata.get("Name")
        if not raw:
            found.append(f"a distribution at {dist._path} has no name in its metadata")  # type: ignore[attr-defined]
            continue
        name = re.sub(r"[-_.]+", "-", raw).lower()
        if name in seen:
            continue
        seen.add(name)
        label = f"{raw} {dist.version}"
        ids, ok, source = licences_of(dist)
        if "BUSL-1.1" in ids or _business_source(dist):
            if alibi and name in BUSL_IN_ALIBI_ENVIRONMENT:
                business_source.append(label)
                continue
            where = (
                "allowed for alibi-detect in the alibi extra's environment only"
                if name in BUSL_IN_ALIBI_ENVIRONMENT
                else "allowed for no package but alibi-detect, in the alibi extra's environment"
            )
            found.append(f"{label}: Business Source License (BUSL-1.1): {where}")
            continue
        if ok:
            continue
        if ok is False:
            found.append(
                f"{label}: licence {' / '.join(ids)} (from {source}) is not on the allow-list"
            )
            continue
        exception = EXCEPTIONS.get(name)
        if exception is None:
            found.append(
                f"{label}: no licence in its metadata (License-Expression, licence "
                "classifiers or a short License field): read its licence file and add it "
                "to EXCEPTIONS in scripts/check_licences.py, or drop the package"
            )
        elif exception[1] not in _licence_text(dist):
            found.append(
                f"{label}: listed in EXCEPTIONS as {exception[0]}, but its licence file "
                f"no longer says {exception[1]!r}: read it again"
            )
    return found, len(seen), business_source


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--alibi",
        action="store_true",
        help="the alibi extra's environment: alibi-detect's BUSL-1.1 is allowed",
    )
    args = parser.parse_args(argv)
    found, checked, business_source = problems(metadata.distributions(), alibi=args.alibi)
    for line in found:
        print(f"licence check: {line}", file=sys.stderr)
    if found:
        print(f"licence check: {len(found)} of {checked} distributions fail", file=sys.stderr)
        return 1
    extra = f" ({', '.join(business_source)} under BUSL-1.1: the alibi extra)" * bool(
        business_source
    )
    print(f"licence check: {checked} distributions, all on the allow-list{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

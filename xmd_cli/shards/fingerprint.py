"""What made a store's values: named components and one stable hash of them.

A store is only reusable by a consumer that would have computed the same values,
so every input that changes a value (teacher kind, weights hash, preprocessing,
manifest hash, dtype, xmd version) is a named component. The hash is the sha256
of canonical JSON, so key order and the process that computed it do not matter;
the names are kept next to the hash so that a mismatch can say *what* differs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

SHORT = 12  # hex digits of the hash in a store's directory name


def canonical_json(value) -> str:
    """JSON with sorted keys and no spaces, the form every hash of xmd is taken of.

    Examples
    --------
    >>> canonical_json({"b": 1, "a": [1.5, "é"]})
    '{"a":[1.5,"é"],"b":1}'
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


@dataclass(frozen=True)
class Fingerprint:
    """The named components that made a store's values, and the sha256 of their canonical JSON.

    Examples
    --------
    >>> fp = Fingerprint({"teacher": "facenet", "dtype": "float16"})
    >>> fp.digest == Fingerprint({"dtype": "float16", "teacher": "facenet"}).digest, len(fp.digest), len(fp.short)
    (True, 64, 12)
    """

    components: Mapping

    def __post_init__(self):
        try:  # fail where the fingerprint is made, not when the store is written
            canonical_json(dict(self.components))
        except (TypeError, ValueError) as e:
            raise ValueError(f"fingerprint components must be plain JSON values: {e}") from None

    @property
    def digest(self) -> str:
        return hashlib.sha256(canonical_json(dict(self.components)).encode()).hexdigest()

    @property
    def short(self) -> str:
        return self.digest[:SHORT]


def _shown(value) -> str:
    text = value if isinstance(value, str) else canonical_json(value)
    return text if len(text) <= 20 else text[:16] + "…"


def diff(expected: Mapping, found: Mapping, *, only_expected_keys: bool = False) -> list[str]:
    """One readable line per differing component, e.g. `weights_sha256: expected 3f2a… but the store has 9b1c…`.

    `only_expected_keys` ignores components the store has and the consumer did not
    ask about (a reader that does not care about, say, the xmd version).

    Examples
    --------
    >>> expected = {"teacher": "facenet", "dtype": "float16"}
    >>> for line in diff(expected, {"teacher": "facenet", "dtype": "float32", "xmd_version": "0.1"}):
    ...     print(line)
    dtype: expected float16 but the store has float32
    xmd_version: the store has 0.1, which this run does not set
    >>> diff(expected, {"teacher": "facenet", "dtype": "float16", "xmd_version": "0.1"}, only_expected_keys=True)
    []
    """
    lines = []
    keys = sorted(set(expected) | (set() if only_expected_keys else set(found)))
    for key in keys:
        if key not in found:
            lines.append(f"{key}: expected {_shown(expected[key])} but the store does not record it")
        elif key not in expected:
            lines.append(f"{key}: the store has {_shown(found[key])}, which this run does not set")
        elif canonical_json(expected[key]) != canonical_json(found[key]):
            lines.append(f"{key}: expected {_shown(expected[key])} but the store has {_shown(found[key])}")
    return lines


def store_dir(root: Path, kind: str, components: Mapping) -> Path:
    """The conventional home of a store: ROOT/<kind>/<short hash>/ (kind: teacher or quality).

    Examples
    --------
    >>> path = store_dir(Path("work"), "teacher", {"teacher": "facenet"})
    >>> path.parent.as_posix(), path.name == Fingerprint({"teacher": "facenet"}).short
    ('work/teacher', True)
    """
    return Path(root) / kind / Fingerprint(components).short

"""The ``where`` language of :class:`ruvector.Collection`, compiled to SQL.

A ``where`` is a dict over the top-level keys of a document's metadata::

    {"lang": "en"}                                  # equality
    {"year": {"$gte": 2020, "$lt": 2024}}           # ranges (numbers or strings)
    {"lang": {"$in": ["en", "de"]}, "draft": {"$ne": True}}
    {"$or": [{"lang": "en"}, {"tags": {"$contains": "faq"}}]}
    {"$not": {"source": {"$exists": True}}}

Operators: ``$eq $ne $gt $gte $lt $lte $in $nin $exists $contains`` on a
key, ``$and $or $not`` on wheres; several keys (or several operators on
one key) in one dict are all required. The rules, which the SQL below and
the reference evaluator of the tests implement alike:

* values are compared within one kind: numbers (``int`` and ``float``,
  compared numerically, so ``1 == 1.0``), strings, booleans, ``None``;
  ``True`` is not ``1``;
* a range matches only a value of the same kind (a number or a string);
* ``$ne`` and ``$nin`` are the negations of ``$eq`` and ``$in``: they also
  match a document without the key;
* ``$contains`` matches a list value holding an equal scalar element;
  ``$eq`` never matches a list or a dict value;
* ``$exists`` tells whether the key is present (whatever its value).

The store keeps one row per scalar value (and per scalar list element) in
the ``fields`` table, a ``WITHOUT ROWID`` table whose primary key is
``(key, elem, kind, val, doc)``, so each condition is a range of that one
b-tree (covering: the documents come with it) and
``$and``/``$or``/``$not`` are ``INTERSECT``/``UNION``/``EXCEPT``. Internal.
"""

from __future__ import annotations

import math
import numbers
from typing import List, Mapping, Optional, Sequence, Tuple, cast

from ruvector_common.errors import InvalidArgument

__all__ = [
    "as_int",
    "as_mapping",
    "as_list",
    "KIND_NULL",
    "KIND_BOOL",
    "KIND_NUM",
    "KIND_STR",
    "KIND_OTHER",
    "scalar_kind",
    "compile_where",
    "ALL_DOCS",
]

KIND_NULL = 0
KIND_BOOL = 1
KIND_NUM = 2
KIND_STR = 3
KIND_OTHER = 4  # a list or dict value: only its presence is recorded at elem 0

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
#: Every document, as a SELECT producing the column ``doc``.
ALL_DOCS = "SELECT doc FROM docs"
_KEY_OPS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$contains")
#: Nesting deeper than this is refused (SQLite's parser has its own limit).
MAX_DEPTH = 32
#: Values in one ``$in``/``$nin`` list (SQLite binds at most 32766 variables).
MAX_IN_VALUES = 10_000


def as_mapping(value: object) -> Optional[Mapping[object, object]]:
    """``value`` as a mapping whose keys and values are still to be checked
    (``None`` when it is not a mapping)."""
    return cast("Mapping[object, object]", value) if isinstance(value, Mapping) else None


def as_list(value: object) -> Optional[Sequence[object]]:
    """``value`` (a list or tuple) as a sequence of unchecked items, else ``None``."""
    return cast("Sequence[object]", value) if isinstance(value, (list, tuple)) else None


def as_int(value: object) -> Optional[int]:
    """``value`` as an ``int`` when it is an integer (Python or NumPy, never
    a ``bool``), else ``None``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        return None
    return int(value)


def scalar_kind(value: object) -> Optional[Tuple[int, object]]:
    """``(kind, stored value)`` of a scalar metadata value, ``None`` for a
    list or dict. Raises :class:`InvalidArgument` for values SQLite or JSON
    cannot hold exactly (ints beyond 64 bits, NaN, infinities, other types).
    """
    if value is None:
        return KIND_NULL, None
    if isinstance(value, bool):
        return KIND_BOOL, int(value)
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise InvalidArgument(f"metadata integers must fit in 64 bits, got {value}")
        return KIND_NUM, int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidArgument(f"metadata numbers must be finite, got {value!r}")
        return KIND_NUM, value
    if isinstance(value, str):
        return KIND_STR, value
    if isinstance(value, (list, tuple, dict)):
        return None
    raise InvalidArgument(
        f"metadata values must be str, int, float, bool, None, lists or dicts, got {type(value).__name__}"
    )


def _operand(op: str, value: object) -> Tuple[int, object]:
    """The kind and stored value of a scalar operand of ``op``."""
    found = scalar_kind(value)
    if found is None:
        raise InvalidArgument(f"{op} takes a str, int, float, bool or None, got {type(value).__name__}")
    return found


class _Compiler:
    def __init__(self) -> None:
        self.params: List[object] = []

    def where(self, where: object, depth: int) -> str:
        if depth > MAX_DEPTH:
            raise InvalidArgument(f"where nests deeper than {MAX_DEPTH} levels")
        mapping = as_mapping(where)
        if mapping is None:
            raise InvalidArgument(f"a where must be a dict, got {type(where).__name__}")
        parts: List[str] = []
        for key, cond in mapping.items():
            if not isinstance(key, str):
                raise InvalidArgument(f"where keys must be strings, got {key!r}")
            if key in ("$and", "$or"):
                subs_in = as_list(cond)
                if not subs_in:
                    raise InvalidArgument(f"{key} takes a non-empty list of wheres, got {cond!r}")
                subs = [self.where(sub, depth + 1) for sub in subs_in]
                joiner = " INTERSECT " if key == "$and" else " UNION "
                parts.append(joiner.join(f"SELECT doc FROM ({s})" for s in subs))
            elif key == "$not":
                parts.append(f"{ALL_DOCS} EXCEPT SELECT doc FROM ({self.where(cond, depth + 1)})")
            elif key.startswith("$"):
                raise InvalidArgument(f"unknown where operator {key!r}; expected $and, $or, $not or a metadata key")
            else:
                parts.append(self.key(key, cond))
        if not parts:
            return ALL_DOCS
        return " INTERSECT ".join(f"SELECT doc FROM ({p})" for p in parts)

    def key(self, key: str, cond: object) -> str:
        ops = as_mapping(cond)
        if ops and all(isinstance(k, str) and k.startswith("$") for k in ops):
            sqls = [self.op(key, str(op), value) for op, value in ops.items()]
            return " INTERSECT ".join(f"SELECT doc FROM ({o})" for o in sqls)
        if ops is not None:
            raise InvalidArgument(
                f"the condition on {key!r} must be a value or a dict of operators ({', '.join(_KEY_OPS)}), got {cond!r}"
            )
        return self.op(key, "$eq", cond)

    def _eq(self, key: str, kinds_values: Sequence[Tuple[int, object]], elem: int) -> str:
        """Documents whose ``key`` (or a list element of it) equals one of the values."""
        by_kind: dict[int, List[object]] = {}
        for kind, value in kinds_values:
            by_kind.setdefault(kind, []).append(value)
        if not by_kind:
            return "SELECT doc FROM fields WHERE 0"
        ors: List[str] = []
        self.params += [key, elem]
        for kind, values in by_kind.items():
            if kind == KIND_NULL:
                ors.append("kind = ?")
                self.params.append(kind)
            else:
                ors.append(f"(kind = ? AND val IN ({', '.join('?' * len(values))}))")
                self.params += [kind, *values]
        return f"SELECT doc FROM fields WHERE key = ? AND elem = ? AND ({' OR '.join(ors)})"

    def op(self, key: str, op: str, value: object) -> str:
        if op in ("$eq", "$ne"):
            eq = self._eq(key, [_operand(op, value)], 0)
            return eq if op == "$eq" else f"{ALL_DOCS} EXCEPT {eq}"
        if op in ("$in", "$nin"):
            values = as_list(value)
            if values is None:
                raise InvalidArgument(f"{op} takes a list, got {type(value).__name__}")
            if len(values) > MAX_IN_VALUES:
                raise InvalidArgument(f"{op} takes at most {MAX_IN_VALUES} values, got {len(values)}")
            eq = self._eq(key, [_operand(op, v) for v in values], 0)
            return eq if op == "$in" else f"{ALL_DOCS} EXCEPT {eq}"
        if op in ("$gt", "$gte", "$lt", "$lte"):
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise InvalidArgument(f"{op} takes a number or a string, got {value!r}")
            kind, stored = _operand(op, value)
            sql_op = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}[op]
            self.params += [key, kind, stored]
            return f"SELECT doc FROM fields WHERE key = ? AND elem = 0 AND kind = ? AND val {sql_op} ?"
        if op == "$exists":
            if not isinstance(value, bool):
                raise InvalidArgument(f"$exists takes True or False, got {value!r}")
            self.params.append(key)
            present = "SELECT doc FROM fields WHERE key = ? AND elem = 0"
            return present if value else f"{ALL_DOCS} EXCEPT {present}"
        if op == "$contains":
            return self._eq(key, [_operand(op, value)], 1)
        raise InvalidArgument(f"unknown operator {op!r} on {key!r}; expected one of {', '.join(_KEY_OPS)}")


def compile_where(where: object) -> Tuple[str, List[object]]:
    """A SELECT of the column ``doc`` (the documents matching ``where``) and its parameters."""
    compiler = _Compiler()
    sql = compiler.where(where, 0)
    return sql, compiler.params

"""EventBridge event pattern matching, so local events reach exactly the handlers AWS would invoke.

Covers what rules use in practice: value lists, nested fields, arrays in events (any element matches),
`prefix`, `suffix`, `equals-ignore-case`, `anything-but` (values, prefix, suffix), `exists`, `numeric`,
`wildcard` and `$or`.
"""

from __future__ import annotations

import fnmatch
import operator
from collections.abc import Callable, Mapping
from typing import Any

_NUMERIC_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    "=": operator.eq,
    ">=": operator.ge,
    ">": operator.gt,
}


class PatternError(ValueError):
    """An event pattern EventBridge would refuse (a rule with it could never be created)."""


def matches(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """Whether EventBridge would deliver `event` to a rule with `pattern`."""
    return _match_object(pattern, event)


def _match_object(pattern: Mapping[str, Any], node: Any) -> bool:
    for key, sub in pattern.items():
        if key == "$or":
            if not isinstance(sub, list) or not sub:
                raise PatternError("$or needs a non-empty list of patterns")
            if not any(_match_object(alternative, node) for alternative in sub):
                return False
            continue
        values = _values_at(node, key)
        if isinstance(sub, Mapping):
            if not any(isinstance(v, Mapping) and _match_object(sub, v) for v in values):
                return False
        elif isinstance(sub, list):
            if not sub:
                raise PatternError(f"{key!r}: empty arrays are not allowed")
            if not _match_leaf(sub, values):
                return False
        else:
            raise PatternError(f"{key!r} must be an object or an array")
    return True


def _values_at(node: Any, key: str) -> list[Any]:
    """The values of a field; arrays of objects are flattened as EventBridge does."""
    nodes = node if isinstance(node, list) else [node]
    found: list[Any] = []
    for item in nodes:
        if isinstance(item, Mapping) and key in item:
            value = item[key]
            if isinstance(value, list):
                found.extend(value)
            else:
                found.append(value)
    return found


def _match_leaf(filters: list[Any], values: list[Any]) -> bool:
    leaves = [v for v in values if not isinstance(v, Mapping)]
    for flt in filters:
        if isinstance(flt, Mapping):
            if _match_named(flt, leaves, present=bool(values)):
                return True
        elif any(_equal(flt, v) for v in leaves):
            return True
    return False


def _equal(expected: Any, value: Any) -> bool:
    if isinstance(expected, bool) or isinstance(value, bool) or expected is None or value is None:
        return expected is value or (expected == value and type(expected) is type(value))
    if isinstance(expected, int | float) and isinstance(value, int | float):
        return float(expected) == float(value)
    return bool(expected == value)


def _match_named(flt: Mapping[str, Any], leaves: list[Any], *, present: bool) -> bool:
    if len(flt) != 1:
        raise PatternError(f"a filter has exactly one operator: {dict(flt)}")
    ((name, arg),) = flt.items()
    if name == "exists":
        return bool(arg) == present
    if name == "anything-but":
        return bool(leaves) and all(not _anything_but_hits(arg, v) for v in leaves)
    test = _string_test(name, arg)
    if test is not None:
        return any(isinstance(v, str) and test(v) for v in leaves)
    if name == "numeric":
        return any(_numeric(arg, v) for v in leaves)
    if name == "cidr":
        raise PatternError("cidr filters are not supported locally")
    raise PatternError(f"unknown filter {name!r}")


_STRING_FILTERS = ("prefix", "suffix", "equals-ignore-case", "wildcard")


def _string_test(name: str, arg: Any) -> Callable[[str], bool] | None:
    if name not in _STRING_FILTERS:
        return None
    ignore_case = isinstance(arg, Mapping) and "equals-ignore-case" in arg
    if ignore_case:
        arg = arg["equals-ignore-case"]
    options = arg if isinstance(arg, list) else [arg]
    if not all(isinstance(o, str) for o in options):
        raise PatternError(f"{name} takes strings")

    def fold(text: str) -> str:
        return text.lower() if ignore_case else text

    if name == "prefix":
        return lambda v: any(fold(v).startswith(fold(o)) for o in options)
    if name == "suffix":
        return lambda v: any(fold(v).endswith(fold(o)) for o in options)
    if name == "equals-ignore-case":
        return lambda v: any(v.lower() == o.lower() for o in options)
    return lambda v: any(fnmatch.fnmatchcase(v, o.replace("[", "[[]")) for o in options)


def _anything_but_hits(arg: Any, value: Any) -> bool:
    """True when `value` is one of the things `anything-but` excludes."""
    if isinstance(arg, Mapping):
        ((name, inner),) = arg.items()
        test = _string_test(name, inner)
        if test is None:
            raise PatternError(f"anything-but does not take {name!r}")
        return isinstance(value, str) and test(value)
    excluded = arg if isinstance(arg, list) else [arg]
    return any(_equal(e, value) for e in excluded)


def _numeric(arg: Any, value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if not isinstance(arg, list) or len(arg) % 2:
        raise PatternError("numeric takes operator/value pairs")
    for op, bound in zip(arg[::2], arg[1::2], strict=True):
        if op not in _NUMERIC_OPS:
            raise PatternError(f"unknown numeric operator {op!r}")
        if not _NUMERIC_OPS[op](float(value), float(bound)):
            return False
    return True

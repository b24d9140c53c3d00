"""Decode request bodies the way Heketi's Go code does -- TEST SUPPORT ONLY.

Heketi unmarshals JSON into Go structs with encoding/json. What a client can
observe from that, and what this module reproduces:

- a body that is not JSON, or has a value of the wrong type anywhere (a string
  for ``size``, ``1.5`` for an integer, ``true`` for a list ...) is refused as a
  whole (Heketi answers 422 "request unable to be parsed");
- ``null`` and missing fields are the zero value; unknown fields are ignored;
- object keys match struct fields case-insensitively (exact match preferred);
- numbers must fit the Go type (int64 for Heketi's ``int``).
"""

from __future__ import annotations

import json

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class GoJSONError(ValueError):
    """The body would make Go's json.Unmarshal fail."""


# Type specs: "int", "str", "bool", "float", ["list", spec], {"field": spec, ...}


def zero(spec):
    """The Go zero value of a spec, as plain Python data."""
    if spec == "int":
        return 0
    if spec == "float":
        return 0.0
    if spec == "str":
        return ""
    if spec == "bool":
        return False
    if isinstance(spec, list):
        return []
    return {name: zero(sub) for name, sub in spec.items()}


def _reject_constant(name):
    raise GoJSONError(f"invalid character '{name[0]}' looking for beginning of value")


def _pairs(pairs):
    # Keep the key order so that "last matching key wins" like Go.
    return _Obj(pairs)


class _Obj(list):
    """A JSON object kept as its ordered (key, value) pairs."""


def loads(body: bytes, spec):
    """Parse ``body`` and decode it into ``spec``; raise GoJSONError like Go would."""
    try:
        text = body.decode("utf-8")
        value = json.loads(text, object_pairs_hook=_pairs, parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise GoJSONError(str(err)) from None
    return decode(value, spec)


def decode(value, spec):
    if value is None:
        return zero(spec)
    if spec == "int":
        if isinstance(value, bool) or not isinstance(value, int) or not _INT64_MIN <= value <= _INT64_MAX:
            raise GoJSONError("cannot unmarshal into int")
        return value
    if spec == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise GoJSONError("cannot unmarshal into float")
        return float(value)
    if spec == "str":
        if not isinstance(value, str):
            raise GoJSONError("cannot unmarshal into string")
        return value
    if spec == "bool":
        if not isinstance(value, bool):
            raise GoJSONError("cannot unmarshal into bool")
        return value
    if isinstance(spec, list):
        if not isinstance(value, list) or isinstance(value, _Obj):
            raise GoJSONError("cannot unmarshal into slice")
        return [decode(item, spec[1]) for item in value]
    # struct
    if not isinstance(value, _Obj):
        raise GoJSONError("cannot unmarshal into struct")
    out = zero(spec)
    lowered = {name.lower(): name for name in spec}
    for key, item in value:
        name = key if key in spec else lowered.get(key.lower())
        if name is None:
            continue
        out[name] = decode(item, spec[name])
    return out

"""Nested structures (lists, tuples, dicts of leaves), as Keras passes inputs and outputs."""

from __future__ import annotations


def is_nested(x) -> bool:
    return isinstance(x, (list, tuple, dict))


def flatten(x) -> list:
    """Leaves in order (dicts by sorted key)."""
    if isinstance(x, dict):
        return [leaf for k in sorted(x) for leaf in flatten(x[k])]
    if isinstance(x, (list, tuple)):
        return [leaf for item in x for leaf in flatten(item)]
    return [x]


def map_structure(fn, x):
    if isinstance(x, dict):
        return {k: map_structure(fn, v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(map_structure(fn, v) for v in x) if not hasattr(x, "_fields") else type(x)(
            *(map_structure(fn, v) for v in x))
    return fn(x)


def pack_like(structure, flat: list):
    """Put the leaves of `flat` back into the shape of `structure`."""
    it = iter(flat)

    def take(s):
        if isinstance(s, dict):
            return {k: take(s[k]) for k in sorted(s)}
        if isinstance(s, (list, tuple)):
            return type(s)(take(v) for v in s)
        return next(it)

    return take(structure)


def is_shape(x) -> bool:
    """A shape is a tuple of ints and Nones; a list or tuple holding tuples is a structure of shapes."""
    return isinstance(x, tuple) and all(v is None or isinstance(v, int) for v in x)

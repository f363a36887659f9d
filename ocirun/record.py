"""record(): what collections.namedtuple gives ocirun (a tuple whose items have names, defaults for
the last ones, keyword arguments) without importing collections, which costs about 1 ms of every
create (it pulls in operator, reprlib, heapq and keyword for features ocirun does not use)."""

_MISSING = object()


def record(name: str, fields: str, defaults: tuple = ()) -> type:
    """A tuple subclass: record("Rule", "type major minor") as namedtuple("Rule", "type major minor").
    Equality, hashing, unpacking and ordering are the tuple's; no _replace, _asdict or _make."""
    names = tuple(fields.replace(",", " ").split())
    if len(defaults) > len(names):
        raise TypeError("more defaults than fields")
    first_default = len(names) - len(defaults)

    def __new__(cls, *args, **kwargs):
        if len(args) > len(names):
            raise TypeError(f"{name}() takes {len(names)} arguments, {len(args)} given")
        values = list(args) + [_MISSING] * (len(names) - len(args))
        for key, value in kwargs.items():
            try:
                i = names.index(key)
            except ValueError:
                raise TypeError(f"{name}() got an unexpected keyword argument {key!r}") from None
            if values[i] is not _MISSING:
                raise TypeError(f"{name}() got multiple values for argument {key!r}")
            values[i] = value
        for i, value in enumerate(values):
            if value is _MISSING:
                if i < first_default:
                    raise TypeError(f"{name}() missing required argument {names[i]!r}")
                values[i] = defaults[i - first_default]
        return tuple.__new__(cls, values)

    def __repr__(self):
        return f"{name}({', '.join(f'{n}={v!r}' for n, v in zip(names, self))})"

    import sys
    namespace = {"__slots__": (), "__new__": __new__, "__repr__": __repr__, "_fields": names,
                 "__module__": sys._getframe(1).f_globals.get("__name__", __name__),   # for pickle, as namedtuple
                 "__getnewargs__": lambda self: tuple(self)}
    for i, field in enumerate(names):
        namespace[field] = property(lambda self, i=i: self[i], doc=f"item {i}")
    return type(name, (tuple,), namespace)

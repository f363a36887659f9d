"""ocirun.record.record behaves as collections.namedtuple for everything ocirun uses of it."""
import collections
import copy
import pickle

import pytest

from ocirun.record import record

Rec = record("Rec", "a b c", defaults=(3,))
Ref = collections.namedtuple("Ref", "a b c", defaults=(3,))


@pytest.mark.parametrize("args, kwargs", [((1, 2), {}), ((1, 2, 4), {}), ((1,), {"b": 2}),
                                          ((), {"c": 5, "a": 1, "b": 2}), ((1, 2), {"c": None})])
def test_construction_equality_hash_and_fields_as_namedtuple(args, kwargs):
    got, want = Rec(*args, **kwargs), Ref(*args, **kwargs)
    assert tuple(got) == tuple(want) and got == want and hash(got) == hash(want)
    assert (got.a, got.b, got.c) == (want.a, want.b, want.c)
    assert repr(got) == repr(want).replace("Ref(", "Rec(")
    a, b, c = got
    assert (a, b, c) == tuple(want)
    assert isinstance(got, tuple) and Rec._fields == Ref._fields


@pytest.mark.parametrize("args, kwargs", [((), {}), ((1,), {}), ((1, 2, 3, 4), {}), ((1, 2), {"a": 1}),
                                          ((1, 2), {"d": 1})])
def test_wrong_arguments_are_type_errors_as_namedtuple(args, kwargs):
    with pytest.raises(TypeError):
        Ref(*args, **kwargs)
    with pytest.raises(TypeError):
        Rec(*args, **kwargs)


def test_ordering_copy_pickle_and_no_instance_dict():
    x = Rec(2, 1)
    assert sorted([x, Rec(1, 5)]) == [Rec(1, 5), x]
    assert copy.deepcopy(x) == x and copy.copy(x) == x
    assert pickle.loads(pickle.dumps(x)) == x
    with pytest.raises(AttributeError):
        x.d = 1
    with pytest.raises(AttributeError):
        x.a = 5

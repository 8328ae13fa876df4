"""The stub that replaces a mocked module inside an archive.

``MOCK_SUPPORT_SOURCE`` is written into the archive as ``_mock.py`` and every
mocked module's source imports it, so an archive carries what it needs and
loads the same in torch.package. It must import nothing: the importer serves
it like any packaged module.
"""

from __future__ import annotations

__all__ = ["MOCK_MODULE", "MOCK_STUB_SOURCE", "MOCK_SUPPORT_SOURCE"]

MOCK_MODULE = "_mock"

MOCK_SUPPORT_SOURCE = '''\
"""Objects of modules that were mocked out when this package was made."""

_OPERATORS = (
    "__abs__ __add__ __and__ __bool__ __bytes__ __call__ __ceil__ __complex__ "
    "__contains__ __copy__ __deepcopy__ __delitem__ __divmod__ __enter__ __eq__ "
    "__exit__ __float__ __floor__ __floordiv__ __ge__ __getitem__ __gt__ __hash__ "
    "__iadd__ __iand__ __ifloordiv__ __ilshift__ __imod__ __imul__ __index__ "
    "__int__ __invert__ __ior__ __ipow__ __irshift__ __isub__ __iter__ __itruediv__ "
    "__ixor__ __le__ __len__ __lshift__ __lt__ __matmul__ __mod__ __mul__ __ne__ "
    "__neg__ __next__ __or__ __pos__ __pow__ __radd__ __rand__ __rdivmod__ "
    "__reduce__ __reduce_ex__ __reversed__ __rfloordiv__ __rlshift__ __rmatmul__ "
    "__rmod__ __rmul__ __ror__ __round__ __rpow__ __rrshift__ __rshift__ __rsub__ "
    "__rtruediv__ __rxor__ __setitem__ __sub__ __truediv__ __trunc__ __xor__"
).split()


class MockedObjectUsedError(NotImplementedError):
    """Code used an object whose module was mocked out."""

    def __init__(self, name, action):
        self.name = name
        super().__init__(
            "'%s' comes from a module that was mocked out when this package was made, "
            "so it cannot be %s. Re-export the package with the module interned or "
            "externed instead of mocked." % (name, action)
        )


def _fail(name, action):
    raise MockedObjectUsedError(name, action)


class _MockedBase:
    """What a class that inherits from a mocked name really inherits from."""

    def __new__(cls, *args, **kwargs):
        _fail(cls.__qualname__, "instantiated (a base class of it was mocked out)")


class MockedObject:
    """Stands for any attribute of a mocked module; every use raises."""

    def __init__(self, name, _suppress_err=False):
        object.__setattr__(self, "_mock_name", name)

    def __getattr__(self, attr):
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        return MockedObject(object.__getattribute__(self, "_mock_name") + "." + attr)

    def __setattr__(self, attr, value):
        _fail(object.__getattribute__(self, "_mock_name"), "assigned to")

    def __repr__(self):
        return "MockedObject(%s)" % object.__getattribute__(self, "_mock_name")

    def __mro_entries__(self, bases):
        # Defining a subclass must not fail the import; instantiating it does.
        return (_MockedBase,)


def _make_operator(op):
    def operator(self, *args, **kwargs):
        _fail(object.__getattribute__(self, "_mock_name"), "used (%s)" % op)

    operator.__name__ = op
    return operator


for _op in _OPERATORS:
    setattr(MockedObject, _op, _make_operator(_op))
del _op
'''

MOCK_STUB_SOURCE = """\
from _mock import MockedObject


def __getattr__(attr):
    return MockedObject(__name__ + "." + attr, _suppress_err=True)
"""

"""Qt widgets: the only package that imports PySide6."""

import sys


def _pin_singletons() -> None:
    """PySide6 6.12.0 on CPython 3.11 drops references to ``True`` when a signal carries it and to
    ``None`` when a void method is called (hundreds to thousands in a run; tests/test_ui_refcounts.py).
    When a count reaches zero the process aborts ("Fatal Python error: bool_dealloc" or "none_dealloc:
    … refcount error in a C extension"), often at exit. CPython 3.12 makes these objects immortal;
    before it, they get a count no run can use up, the same thing done by hand."""
    if sys.version_info >= (3, 12):
        return
    import ctypes

    for singleton in (None, True, False):
        ctypes.c_ssize_t.from_address(id(singleton)).value += 1 << 40  # ob_refcnt, a PyObject's first field


_pin_singletons()

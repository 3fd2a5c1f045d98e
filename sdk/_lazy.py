"""Names a module re-exports, imported from the module defining them on first use (PEP 562).

Every instrumented process imports our packages at start-up, and most of what they export is
not needed then (the console exporter's ``json``, the OTLP transports, the SDK behind the
plugin API). A package lists each name with its home module, and assigns what ``lazy_exports``
returns to its ``__getattr__`` and ``__dir__``; the type checker reads the names from the
package's ``if TYPE_CHECKING:`` imports. Nothing is imported here beyond ``importlib`` and
``sys``, which every interpreter has loaded already.
"""

from __future__ import annotations

import importlib
import sys

TYPE_CHECKING = False  # typing's own constant, without importing typing at start-up
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    module_name: str, homes: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of module ``module_name``, whose names ``homes``
    maps to the modules defining them (a submodule of ``module_name`` maps to itself).

    A name resolved once is set on the module, so later lookups never come back here;
    ``dir()`` lists the module's ``__all__``.
    """

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        value = importlib.import_module(home)
        if home != f"{module_name}.{name}":
            value = getattr(value, name)
        # setattr, not globals(): the calling module's globals are not ours (and a submodule
        # such as ``trace.globals`` may shadow that builtin there).
        setattr(sys.modules[module_name], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(getattr(sys.modules[module_name], "__all__", homes))

    return __getattr__, __dir__

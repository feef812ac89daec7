"""Controllers by name: `make_controller("confidence", threshold=0.8)`, `available_controllers()`."""

from __future__ import annotations

import inspect
from typing import Any, TypeVar

from adaptive_loop.errors import ConfigError

_REGISTRY: dict[str, type] = {}
T = TypeVar("T", bound=type)


def register_controller(cls: T) -> T:
    """Class decorator: make a controller available by its `name`."""
    name = getattr(cls, "name", "")
    if not name:
        raise ValueError(f"{cls.__name__} needs a non-empty class attribute `name` to be registered")
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ValueError(f"a controller named {name!r} is already registered ({_REGISTRY[name].__name__})")
    _REGISTRY[name] = cls
    return cls


def _load_builtin() -> None:
    import controllers.act  # noqa: F401
    import controllers.allocator  # noqa: F401
    import controllers.confidence  # noqa: F401
    import controllers.exit_gate  # noqa: F401
    import controllers.fixed  # noqa: F401
    import controllers.lgbm_depth  # noqa: F401
    import controllers.stability  # noqa: F401


def available_controllers() -> list[str]:
    """Names accepted by `make_controller`, sorted."""
    _load_builtin()
    return sorted(_REGISTRY)


def controller_class(name: str) -> type:
    """The registered controller class called `name`; raises `ConfigError` listing the available names."""
    _load_builtin()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown controller {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def make_controller(name: str, **params: Any) -> Any:
    """A new, unfitted controller of the given name with the given constructor parameters."""
    cls = controller_class(name)
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ConfigError(f"controller {name!r} has no parameter(s) {unknown}; it accepts {accepted}")
    return cls(**params)

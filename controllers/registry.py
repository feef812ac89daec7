"""Controllers by name: `make_controller("confidence", threshold=0.8)`, `available_controllers()`.

A controller is one file: its class carries `@register_controller` (and, to be tunable, a
`search_space` classmethod). Nothing lists the built-in controllers: the first lookup
imports every module of the `controllers` package (`pkgutil`), which registers whatever
they define. A controller defined elsewhere (a notebook, a plugin) registers itself the
same way when its module is imported.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path
from typing import Any, TypeVar

from adaptive_loop.errors import ConfigError
from controllers.base import Controller

_REGISTRY: dict[str, type] = {}
_DISCOVERED = False
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


def _discover() -> None:
    """Import every module of the `controllers` package once, so built-in controllers register."""
    global _DISCOVERED
    if _DISCOVERED:
        return
    for module in pkgutil.walk_packages([str(Path(__file__).parent)], prefix=f"{__package__}."):
        importlib.import_module(module.name)
    _DISCOVERED = True


def available_controllers() -> list[str]:
    """Names accepted by `make_controller`, sorted."""
    _discover()
    return sorted(_REGISTRY)


def controller_class(name: str) -> type:
    """The registered controller class called `name`; raises `ConfigError` listing the available names."""
    _discover()
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


def tunable_controllers() -> list[str]:
    """Names of the controllers that declare a `search_space` of their own, sorted."""
    _discover()
    return sorted(n for n, cls in _REGISTRY.items() if _declares_search_space(cls))


def tunable_class(name: str) -> type:
    """The registered class called `name` if it declares a search space; `ConfigError` otherwise."""
    cls = controller_class(name)
    if not _declares_search_space(cls):
        raise ConfigError(f"no search space for controller {name!r}; tunable: {tunable_controllers()}")
    return cls


def _declares_search_space(cls: type) -> bool:
    own = getattr(cls, "search_space", None)
    return own is not None and getattr(own, "__func__", None) is not Controller.search_space.__func__

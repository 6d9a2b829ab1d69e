"""Safe sharing of fitted models without pickle, through skops.

``skops.io.load`` refuses every type it does not trust. sklhebb's estimators
keep only NumPy arrays, Python scalars, strings, tuples and a NumPy
``RandomState`` in their state, so the only types to trust are sklhebb's own
classes; :func:`trusted_types` lists them::

    import skops.io as sio
    from sklhebb.persistence import trusted_types
    sio.dump(model, "model.skops")
    model = sio.load("model.skops", trusted=trusted_types())

Loading a pickle (or joblib file) can run arbitrary code: load only files you
trust, and prefer skops for models that cross a trust boundary.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect

__all__ = ["trusted_types"]


def trusted_types() -> list[str]:
    """Fully qualified names of sklhebb's persisted classes (for ``skops.io.load``).

    sklhebb's estimators (:func:`sklhebb.utils.discovery.all_estimators`) and
    the plain dataclasses their fitted state holds (layer geometry records of
    ints and tuples, defined in sklhebb's public modules). Nothing here widens
    trust to code outside sklhebb.
    """
    from .utils.discovery import _public_module_names, all_estimators

    names = {f"{cls.__module__}.{cls.__qualname__}" for _, cls in all_estimators()}
    for module_name in _public_module_names():
        module = importlib.import_module(module_name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module_name and dataclasses.is_dataclass(cls):
                names.add(f"{module_name}.{cls.__qualname__}")
    return sorted(names)

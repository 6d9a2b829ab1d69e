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

import importlib
import inspect
import pkgutil

__all__ = ["trusted_types"]


def trusted_types() -> list[str]:
    """Fully qualified names of sklhebb's persisted classes (for ``skops.io.load``).

    sklhebb's estimators (classes defined inside sklhebb that derive from
    scikit-learn's ``BaseEstimator``) and the plain dataclasses their fitted
    state holds (layer geometry records of ints and tuples). Nothing here
    widens trust to code outside sklhebb.
    """
    import dataclasses

    from sklearn.base import BaseEstimator

    import sklhebb
    from sklhebb._base import BackendMixin

    names = set()
    for mod in pkgutil.walk_packages(sklhebb.__path__, prefix="sklhebb."):
        if any(part.startswith("_") for part in mod.name.split(".")[1:]):
            continue
        module = importlib.import_module(mod.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != mod.name:
                continue
            if (issubclass(cls, BaseEstimator) and issubclass(cls, BackendMixin)) or dataclasses.is_dataclass(cls):
                names.add(f"{cls.__module__}.{cls.__qualname__}")
    return sorted(names)

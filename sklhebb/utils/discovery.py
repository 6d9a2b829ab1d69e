"""Find sklhebb's estimators, as ``sklearn.utils.discovery`` finds scikit-learn's.

>>> from sklhebb.utils.discovery import all_estimators
>>> dict(all_estimators())["KrotovPatchEncoder"]
<class 'sklhebb.encoders.krotov.KrotovPatchEncoder'>
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from sklearn.base import BaseEstimator

import sklhebb

from .._base import BackendMixin

__all__ = ["all_estimators"]


def _public_module_names():
    """``sklhebb`` and the dotted names of its public submodules (no part starting with ``_``)."""
    yield "sklhebb"
    for info in pkgutil.walk_packages(sklhebb.__path__, prefix="sklhebb."):
        if not any(part.startswith("_") for part in info.name.split(".")[1:]):
            yield info.name


def all_estimators():
    """Every public sklhebb estimator, as a list of ``(name, class)`` sorted by name.

    An estimator is a public, concrete class exposed by a public sklhebb module
    that derives from scikit-learn's ``BaseEstimator`` and sklhebb's backend base.
    """
    found = {}
    for module_name in _public_module_names():
        module = importlib.import_module(module_name)
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if (
                not name.startswith("_")
                and cls.__module__.startswith("sklhebb.")
                and issubclass(cls, BaseEstimator)
                and issubclass(cls, BackendMixin)
                and not inspect.isabstract(cls)
            ):
                found[name] = cls
    return sorted(found.items())

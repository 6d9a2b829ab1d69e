"""The examples in sklhebb's public docstrings run as tests, one test per docstring that has any.

Public modules are found by walking the package (private ``_name`` modules are
skipped). A module, or an example, that needs an optional package which is not
installed is skipped with that package's name as the reason.
"""

import doctest
import importlib

import pytest

from sklhebb.utils.discovery import _public_module_names

OPTIONFLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _missing_optional(exc):
    """The name of the absent non-sklhebb package behind ``exc``, else None."""
    if isinstance(exc, ModuleNotFoundError) and exc.name and exc.name.split(".")[0] != "sklhebb":
        return exc.name
    return None


def _import(name):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if _missing_optional(exc) is None:
            raise
        pytest.skip(f"{name} needs {exc.name}, which is not installed")


def _docstring_tests(module):
    finder = doctest.DocTestFinder(exclude_empty=True)
    return {t.name: t for t in finder.find(module, module.__name__) if t.examples}


def _cases():
    for name in _public_module_names():
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if _missing_optional(exc) is None:
                raise
            yield pytest.param(name, None, id=name)  # skipped in the test, with the reason
            continue
        for test_name in sorted(_docstring_tests(module)):
            yield pytest.param(name, test_name, id=test_name)


@pytest.mark.parametrize("module_name,test_name", list(_cases()))
def test_docstring_examples(module_name, test_name):
    module = _import(module_name)
    test = _docstring_tests(module)[test_name]
    runner = doctest.DebugRunner(optionflags=OPTIONFLAGS)
    try:
        runner.run(test)
    except doctest.UnexpectedException as failure:
        exc = failure.exc_info[1]
        where = f"{test.filename}:{test.lineno + failure.example.lineno + 1}"
        if _missing_optional(exc):
            pytest.skip(f"{test_name} needs {exc.name}, which is not installed")
        raise AssertionError(f"{where}: {failure.example.source.strip()!r} raised {exc!r}") from exc
    except doctest.DocTestFailure as failure:
        where = f"{test.filename}:{test.lineno + failure.example.lineno + 1}"
        raise AssertionError(
            f"{where}: {failure.example.source.strip()!r} printed {failure.got!r}, the docstring says {failure.example.want!r}"
        ) from None


def test_the_walk_finds_the_documented_estimators():
    names = {p.values[1] for p in _cases()}
    assert "sklhebb.encoders.krotov.KrotovPatchEncoder" in names
    assert "sklhebb.nn.architecture.parse_architecture" in names

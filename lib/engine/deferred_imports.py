"""Import fmeval's algorithms without loading torch, transformers, Hugging Face `evaluate`, the
SageMaker SDK, Ray, fmeval's data loaders, scikit-learn, SciPy's statistics, boto3, nltk, NumPy and
PyFunctional until something uses them.

fmeval's helper models (`fmeval.eval_algorithms.helper_models.helper_model`, which every algorithm
module imports) import torch, transformers and `evaluate` at the top, and its save strategy the
SageMaker SDK: about 7 s and 360 MB here, for helper models that only some algorithms build (the
toxicity classifiers, BERTScore) and for saving to S3 in `evaluate()`. Its data loaders and report
cells import Ray's datasets (1.2 s), for `evaluate()` and for cells built from a dataset. The
per-record scores of FactualKnowledge, QAAccuracy or ClassificationAccuracy never touch any of them.

Within `deferred()`, an ``import torch`` (or ``from transformers import pipeline``) written in one of
fmeval's own modules (or ``from scipy.stats import fisher_exact`` in one of nltk's) gets a stand-in, if
the real module is not loaded yet; every other import is left as it is, and nothing is put in
``sys.modules`` (a library that looks there for torch finds none). A stand-in, and each name taken from
it while fmeval imports, imports the real module the first time it is used (called, an attribute read,
an ``isinstance``). It is not imported to be tested for truth or compared: a stand-in is always true
and equal only to itself, and a library's ``except ImportError`` fallback for a name the real module
lacks no longer applies (nltk's `betai`, for an `approxrand` fmeval never calls).
"""

from __future__ import annotations

import builtins
import importlib
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# scikit-learn (with SciPy, 2.3 s here): ClassificationAccuracy's dataset-level scores in `evaluate()`
# boto3 (0.17 s): fmeval's model runners and S3 helpers, for models and datasets of AWS's own
# nltk (0.23-0.34 s): QAAccuracy's precision, recall and F-measure (its scorer takes them from
# `lib.scorers.set_overlap` instead), and METEOR and tokenising for SummarizationAccuracy
# NumPy (0.16 s) and PyFunctional (0.13 s, with tabulate and dill): fmeval's mean transform and its
# comparison of category scores, which the answer-only algorithms never call
HEAVY = frozenset({"torch", "transformers", "evaluate", "sagemaker", "ray", "fmeval.data_loaders", "sklearn",
                   "boto3", "botocore", "mypy_boto3_bedrock", "nltk", "numpy", "functional"})
# nltk, once something uses it, imports SciPy's statistics (a Fisher test in its collocation measures) and
# scikit-learn (a classifier wrapper) at the top, for parts fmeval never calls
HEAVY_FOR = {"fmeval.": HEAVY, "nltk.": frozenset({"scipy", "sklearn"})}
_LOCK = threading.RLock()
_importing = threading.local()  # set while `deferred` is active in this thread


class _Later:
    """``module.attr`` (``attr``: None for the module itself, or a dotted path), imported on first use;
    or, made by a call while fmeval imports (``call``), that call's result, made on first use."""

    def __init__(self, module: str, attr: str | None = None, call: tuple | None = None) -> None:
        object.__setattr__(self, "_where", (module, attr, call))
        object.__setattr__(self, "_real", None)

    def _resolve(self) -> Any:
        real = object.__getattribute__(self, "_real")
        if real is None:
            module, attr, call = object.__getattribute__(self, "_where")
            if call is not None:
                target, args, kwargs = call
                real = target._resolve()(*args, **kwargs)
            else:
                real = importlib.import_module(module)
                for i, part in enumerate(attr.split(".") if attr else []):
                    try:
                        real = getattr(real, part)
                    except AttributeError:  # a submodule its package does not import itself
                        real = importlib.import_module(".".join([module, *attr.split(".")[:i + 1]]))
            object.__setattr__(self, "_real", real)
        return real

    def __getattr__(self, name: str) -> Any:
        module, attr, call = object.__getattribute__(self, "_where")
        if getattr(_importing, "active", False):
            if name.startswith("__"):  # `typing` looking into an annotation: it is not a type parameter
                raise AttributeError(name)
            if call is None:  # `from transformers import pipeline`, an annotation `sagemaker.session.Session`
                return _Later(module, f"{attr}.{name}" if attr else name)
        return getattr(self._resolve(), name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if getattr(_importing, "active", False):
            # made at import, used later: fmeval builds BERTScore's helper (`evaluate.load`) in a class body
            return _Later("", call=(self, args, kwargs))
        return self._resolve()(*args, **kwargs)

    def __instancecheck__(self, obj: Any) -> bool:
        return isinstance(obj, self._resolve())

    def __subclasscheck__(self, cls: Any) -> bool:
        return issubclass(cls, self._resolve())

    def __repr__(self) -> str:
        module, attr, call = object.__getattribute__(self, "_where")
        return f"<{module}{'.' + attr if attr else ''}{'(...)' if call else ''}, imported on first use>"


def _heavy(name: str, importer: str) -> str | None:
    """The package ``name`` is in that is heavy for the module named ``importer`` (`HEAVY_FOR`), if any."""
    heavy = next((h for prefix, h in HEAVY_FOR.items() if importer.startswith(prefix)), None)
    if heavy is None:
        return None
    parts = name.split(".")
    return next((p for p in (".".join(parts[:i]) for i in range(1, len(parts) + 1)) if p in heavy), None)


@contextmanager
def deferred() -> Iterator[None]:
    """Import fmeval's modules with the `HEAVY` ones (packages, or fmeval's own subpackage) left for their
    first use (nested blocks are fine)."""
    original = builtins.__import__

    def importer(name: str, globals: dict | None = None, locals: dict | None = None,  # noqa: A002
                 fromlist: tuple = (), level: int = 0) -> Any:
        heavy = _heavy(name, str((globals or {}).get("__name__", ""))) if level == 0 else None
        if heavy and heavy not in sys.modules:
            return _Later(name if fromlist else name.partition(".")[0])
        return original(name, globals, locals, fromlist, level)

    with _LOCK:
        was_active = getattr(_importing, "active", False)
        _importing.active = True
        builtins.__import__ = importer
        try:
            yield
        finally:
            builtins.__import__ = original
            _importing.active = was_active

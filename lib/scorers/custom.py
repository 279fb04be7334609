"""Custom scorers: your own Python function or class by import path, or a preset (`presets.py`).

```yaml
- algorithm: CustomScorer
  scorer: mypkg.scorers:domain_score     # or preset: exact_match | f1 | bleu | rouge
  name: domain                           # optional: the scores' name in summary.json (default: the
                                         # function's or the preset's name)
  config: {strict: true}                 # optional: keyword arguments of the function (or the class)
```

A function is called once per record, ``domain_score(record, **config)``; a class is built once,
``Scorer(**config)``, and its instance is called per record (``instance.score(record)``, or
``instance(record)``). ``record`` holds ``model_input``, ``model_output``, ``target_output`` (as in the
dataset), ``target_outputs`` (split on ``target_output_delimiter``, default ``<OR>``) and ``metadata``
(``id``, ``prompt``, ``latency_s``). It returns ``{score name: number}`` (a bare number is named after
the scorer). A record that raises scores 0 and carries the error; when every record raises, the scorer
is reported as not scored. Scores land in summary.json as the mean over the records, per-record values
in ``models/<model>/<name>.jsonl``.
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable, Iterable
from typing import Any

from lib import storage
from lib.engine.score import RowScoring, empty_result
from lib.scorers import ScorerConfigError
from lib.scorers.presets import DEFAULT_DELIMITER, PRESETS

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def load_target(path: str) -> Any:
    """The function or class ``package.module:name`` (or ``package.module.name``) names; raises
    ScorerConfigError saying what is wrong."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ScorerConfigError(["scorer"], f"'{path}' is not an import path: write 'package.module:function' "
                                "(or :Class)")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the user's module: say what went wrong, not a traceback
        raise ScorerConfigError(["scorer"], f"the module '{module_name}' does not import: "
                                f"{type(exc).__name__}: {exc}") from None
    target = getattr(module, attr, None)
    if target is None:
        from lib.errors import did_you_mean

        public = [n for n in vars(module) if not n.startswith("_") and callable(getattr(module, n))]
        raise ScorerConfigError(["scorer"], f"the module '{module_name}' has no '{attr}'{did_you_mean(attr, public)}")
    if not callable(target):
        raise ScorerConfigError(["scorer"], f"'{path}' is a {type(target).__name__}, not a function or class")
    return target


def _as_scores(value: Any, default_name: str) -> dict[str, float | None]:
    if isinstance(value, bool) or isinstance(value, (int, float)):
        return {default_name: float(value)}
    if not isinstance(value, dict):
        raise TypeError(f"a scorer returns {{name: number}} or a number, not {type(value).__name__}")
    out: dict[str, float | None] = {}
    for name, v in value.items():
        if v is not None and (not isinstance(v, (int, float)) or (isinstance(v, float) and math.isnan(v))):
            raise TypeError(f"the score '{name}' is {v!r}, not a number")
        out[str(name)] = None if v is None else float(v)
    return out


class CustomScorer:
    """`algorithm: CustomScorer`: a function or class of your own, or a preset, applied per record."""

    kind = "custom"
    needs_model = False
    lower_is_better = False
    config_keys = ("algorithm", "name", "scorer", "preset", "config", "target_output_delimiter", "num_records")
    model_keys: tuple[str, ...] = ()

    def __init__(self, algorithm: dict[str, Any]) -> None:
        self.algorithm = algorithm

    @classmethod
    def check_config(cls, raw: dict[str, Any]) -> dict[str, Any]:
        """The normalised entry's own part: eval_name, score_names, module, options."""
        if bool(raw.get("scorer")) == bool(raw.get("preset")):
            raise ScorerConfigError([], "a CustomScorer takes either 'scorer' (your function or class by import "
                                    "path, 'package.module:function') or 'preset' (" + ", ".join(PRESETS) + ")")
        options = dict(raw.get("config") or {}) if isinstance(raw.get("config"), dict) else None
        if options is None and raw.get("config") is not None:
            raise ScorerConfigError(["config"], "a CustomScorer's config is a mapping of keyword arguments")
        delimiter = raw.get("target_output_delimiter", DEFAULT_DELIMITER)
        if raw.get("preset"):
            preset = raw["preset"]
            if options:
                raise ScorerConfigError(["config"], f"the preset '{preset}' takes no config (only "
                                        "target_output_delimiter)")
            names, _ = PRESETS[preset]  # the schema allows presets only
            return {"eval_name": raw.get("name") or preset, "score_names": list(names),
                    "module": "lib.scorers.presets", "options": {"preset": preset,
                                                                 "target_output_delimiter": delimiter}}
        target = load_target(raw["scorer"])
        name = raw.get("name") or _snake(getattr(target, "__name__", "custom"))
        if not _NAME_RE.match(name):
            raise ScorerConfigError(["name"], f"'{name}' cannot name the scores (a file of the run is named after "
                                    "it): give 'name' with lowercase letters, digits and underscores")
        return {"eval_name": name, "score_names": [str(n) for n in getattr(target, "score_names", ())],
                "module": raw["scorer"].partition(":")[0] if ":" in raw["scorer"] else raw["scorer"].rpartition(".")[0],
                "options": {"scorer": raw["scorer"], "config": options or {}, "target_output_delimiter": delimiter}}

    def _function(self) -> Callable[[dict[str, Any]], Any]:
        options = self.algorithm["options"]
        if options.get("preset"):
            _, fn = PRESETS[options["preset"]]
            delimiter = options["target_output_delimiter"]
            return lambda record: fn(record, target_output_delimiter=delimiter)
        target = load_target(options["scorer"])
        kwargs = options.get("config") or {}
        if isinstance(target, type):
            instance = target(**kwargs)
            return getattr(instance, "score", instance)
        return lambda record: target(record, **kwargs)

    def score(self, rows: Iterable[dict[str, Any]], out: str | None = None) -> dict[str, Any]:
        return self.scoring(out).score(rows)

    def scoring(self, out: str | None = None, limit: int | None = None) -> RowScoring:
        """`score`, given the rows one at a time (`lib.engine.score.score_together`)."""
        try:
            fn = self._function()
        except ScorerConfigError as exc:
            return RowScoring.unavailable(self.algorithm, str(exc))
        except Exception as exc:  # the class's constructor
            return RowScoring.unavailable(self.algorithm,
                                          f"the scorer could not be built: {type(exc).__name__}: {exc}")
        delimiter = self.algorithm["options"].get("target_output_delimiter") or DEFAULT_DELIMITER
        name = self.algorithm["eval_name"]

        def one(row: dict[str, Any]) -> dict[str, float | None]:
            target = row.get("target_output")
            record = {"model_input": row["model_input"], "model_output": row["output"], "target_output": target,
                      "target_outputs": [t.strip() for t in str(target or "").split(delimiter) if t.strip()],
                      "metadata": {"id": row["id"], "prompt": row.get("prompt"), "latency_s": row.get("latency_s")}}
            return _as_scores(fn(record), name)

        def then(result: dict[str, Any]) -> dict[str, Any]:
            raised, first = result["raised"], result["first_error"]
            if raised and result["failed_records"] == result["records"]:
                if out is not None:
                    storage.remove(out)  # not scored: no per-record file either
                return empty_result(self.algorithm, error=f"every record raised (first: {first})")
            if raised:
                result["notes"].append(f"{raised} of {result['records']} records raised in the scorer and score 0 "
                                       f"(first: {first[:200]})")
            return result

        return RowScoring(self.algorithm, one, by_row=True, out=out, limit=limit, then=then)

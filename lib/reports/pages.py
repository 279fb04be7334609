"""HTML reports: one page per model x algorithm (fmeval's report cell). The run's page is `run_page.py`.

Model text is always escaped: fmeval's cells put raw text such as `<OR>` into their tables.
"""

from __future__ import annotations

import heapq
import html
import importlib
import re
import sys
import threading
import types
from collections.abc import Iterable
from typing import Any

from lib.engine import deferred_imports, fmeval_offline
from lib.engine.score import LOWEST_SHOWN
from lib.reports import templates

_ALGORITHM_SOURCE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{{ model }} · {{ algorithm }}</title>
<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3rem .5rem;text-align:left}
.note{background:#fff6d6;padding:.5rem}</style></head><body>
<h1>{{ model }} — {{ algorithm }}</h1>
{% for n in notes %}<p class="note">{{ n }}</p>{% endfor %}
{{ cell | safe }}
<h2>Lowest-scoring records</h2>
<table><tr><th>prompt</th><th>target</th><th>output</th><th>{{ key }}</th></tr>
{% for r in worst %}<tr><td>{{ r.prompt }}</td><td>{{ r.target }}</td><td>{{ r.output }}</td>
<td>{{ r.score }}</td></tr>{% endfor %}</table></body></html>"""
_PAGE = templates.environment({"algorithm": _ALGORITHM_SOURCE})


_SAFE_NAME = re.compile(r"^[A-Za-z0-9_]+$")
_CELLS_LOCK = threading.Lock()


class _Placeholder(types.ModuleType):
    """Stands in for a module while fmeval's report cells import: a cell without charts never uses it,
    and any name asked of it at import (a type annotation) is an empty class."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return type(name, (), {})


class _OnFirstUse(types.ModuleType):
    """The real module, imported the first time one of its names is used."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(importlib.import_module(self.__name__), name)


def _eval_output_cell() -> Any:
    """fmeval's `EvalOutputCell`, imported without its plotting and notebook stack.

    `fmeval.reporting.cells` imports matplotlib.pyplot and IPython at the top (1.2 s and 60 MB here),
    used only to draw category charts and to show a cell in a notebook, neither of which a cell built
    from dataset scores does. While it imports, modules not loaded yet stand in for them; afterwards
    the names it holds import the real modules on first use, and nothing else in the process sees
    the stand-ins."""
    fmeval_offline.prepare()
    with _CELLS_LOCK:
        if "fmeval.reporting.eval_output_cells" not in sys.modules:
            with deferred_imports.deferred():  # as a scorer imports fmeval (lib.scorers.fmeval_scorer)
                import fmeval.reporting.constants  # noqa: F401 (what cells.py imports besides: as it is)
            import markdown  # noqa: F401

            stand_ins: dict[str, types.ModuleType] = {}
            for name in ("matplotlib", "matplotlib.pyplot", "IPython", "IPython.display"):
                if name not in sys.modules:
                    stand_ins[name] = sys.modules[name] = _Placeholder(name)
            for name, module in stand_ins.items():  # `import matplotlib.pyplot as plt`, `from IPython import display`
                parent, _, child = name.rpartition(".")
                if parent in stand_ins:
                    setattr(stand_ins[parent], child, module)
            try:
                import fmeval.reporting.cells as cells
            finally:
                for name, module in stand_ins.items():
                    if sys.modules.get(name) is module:
                        del sys.modules[name]
            with deferred_imports.deferred():  # Ray's datasets: only for cells built from a dataset
                import fmeval.reporting.eval_output_cells  # noqa: F401
            if "matplotlib.pyplot" in stand_ins:
                cells.plt = _OnFirstUse("matplotlib.pyplot")
            if "IPython.display" in stand_ins:
                cells.display = _OnFirstUse("IPython.display")
        return sys.modules["fmeval.reporting.eval_output_cells"].EvalOutputCell


def _fmeval_cell(algorithm: dict[str, Any], dataset_name: str, scores: dict[str, float],
                 prompt_template: str) -> str:
    """fmeval's own report cell (markdown with charts) rendered to HTML; a plain table if it cannot run.

    What comes from the config or a dataset never reaches fmeval's markdown as it is (fmeval puts it in
    unescaped, and markdown would turn `[x](javascript:...)` into a link): fmeval gets a plain token, which
    is replaced by the HTML-escaped text once the markdown is HTML. fmeval's own dataset names (its
    built-in datasets, which choose its descriptions) and identifier-like eval and score names go as they are.
    """
    import markdown
    from markdown.extensions.tables import TableExtension

    tokens: dict[str, str] = {}

    def token(text: str, keep_if_safe: bool = True) -> str:
        if keep_if_safe and _SAFE_NAME.match(text or ""):
            return text
        tokens[f"LLMEVALTOKEN{len(tokens)}X"] = html.escape(text or "")
        return next(reversed(tokens))

    try:
        EvalOutputCell = _eval_output_cell()  # noqa: N806 (fmeval's class)
        from fmeval.eval_algorithms import EvalOutput, EvalScore

        output = EvalOutput(eval_name=token(algorithm["eval_name"]), dataset_name=token(dataset_name),
                            dataset_scores=[EvalScore(name=html.escape(k), value=v) for k, v in scores.items()
                                            if v is not None],
                            prompt_template=token(prompt_template, keep_if_safe=False))
        # the extension itself, not its name: a name is looked up among every installed package's entry
        # points (0.05 s here)
        page = markdown.markdown(str(EvalOutputCell(output)), extensions=[TableExtension()])
        for key, text in tokens.items():
            page = page.replace(key, text)
        return page
    except Exception as exc:  # the report must not fail the evaluation
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.4f}</td></tr>" for k, v in scores.items()
                       if v is not None)
        return (f"<p>fmeval's report cell is unavailable ({html.escape(type(exc).__name__)}).</p>"
                f"<table><tr><th>score</th><th>value</th></tr>{rows}</table>")


def algorithm_html(model: str, dataset_name: str, algorithm: dict[str, Any], result: dict[str, Any],
                   prompt_template: str, rows: Iterable[dict[str, Any]] | None = None,
                   per_record: Iterable[dict[str, Any]] | None = None) -> str:
    """One algorithm's page: fmeval's cell and the ten lowest-scored records: ``result["lowest"]`` when
    the scoring kept them for the page's score (`lib.engine.score.score_rows`), else found in ``rows``
    (the answers) and ``per_record`` (the scores, ``result["per_record"]`` when not given), each read
    once, in constant memory, so they may be files streamed (`lib.storage.iter_jsonl`)."""
    key = next(iter(result["scores"]), "")
    kept = result.get("lowest")
    if kept and kept["score"] == key:
        worst = [{**r, "score": round(r["score"], 3)} for r in kept["records"]]
    else:
        scored = result["per_record"] if per_record is None else per_record
        # nsmallest is sorted(...)[:10], ties in record order, holding ten at a time
        ranked = heapq.nsmallest(LOWEST_SHOWN, (r for r in scored if r.get(key) is not None), key=lambda r: r[key])
        wanted = {r["id"] for r in ranked}
        by_id = {r["id"]: r for r in rows or [] if r["id"] in wanted}
        worst = [{"prompt": by_id.get(r["id"], {}).get("prompt", r["id"]),
                  "target": by_id.get(r["id"], {}).get("target_output", ""),
                  "output": by_id.get(r["id"], {}).get("output", ""), "score": round(r[key], 3)} for r in ranked]
    return _PAGE.get_template("algorithm").render(
        model=model, algorithm=algorithm["name"], notes=result.get("notes", []), key=key, worst=worst,
        cell=_fmeval_cell(algorithm, dataset_name, result["scores"], prompt_template))

"""HTML reports: one page per model x algorithm (fmeval's report cell), and the run's comparison page.

Model text is always escaped: fmeval's cells put raw text such as `<OR>` into their tables.
"""

from __future__ import annotations

import html
import re
from typing import Any

import jinja2

from lib import storage
from lib.engine import fmeval_offline
from lib.run.layout import RunLayout
from lib.run.records import RunSummary

_PAGE = jinja2.Environment(autoescape=True)

_ALGORITHM_TEMPLATE = _PAGE.from_string("""<!doctype html>
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
<td>{{ r.score }}</td></tr>{% endfor %}</table></body></html>""")


_SAFE_NAME = re.compile(r"^[A-Za-z0-9_]+$")


def _fmeval_cell(algorithm: dict[str, Any], dataset_name: str, scores: dict[str, float],
                 prompt_template: str) -> str:
    """fmeval's own report cell (markdown with charts) rendered to HTML; a plain table if it cannot run.

    What comes from the config or a dataset never reaches fmeval's markdown as it is (fmeval puts it in
    unescaped, and markdown would turn `[x](javascript:...)` into a link): fmeval gets a plain token, which
    is replaced by the HTML-escaped text once the markdown is HTML. fmeval's own dataset names (its
    built-in datasets, which choose its descriptions) and identifier-like eval and score names go as they are.
    """
    import markdown

    tokens: dict[str, str] = {}

    def token(text: str, keep_if_safe: bool = True) -> str:
        if keep_if_safe and _SAFE_NAME.match(text or ""):
            return text
        tokens[f"LLMEVALTOKEN{len(tokens)}X"] = html.escape(text or "")
        return next(reversed(tokens))

    try:
        fmeval_offline.prepare()
        from fmeval.eval_algorithms import EvalOutput, EvalScore
        from fmeval.reporting.eval_output_cells import EvalOutputCell

        output = EvalOutput(eval_name=token(algorithm["eval_name"]), dataset_name=token(dataset_name),
                            dataset_scores=[EvalScore(name=html.escape(k), value=v) for k, v in scores.items()
                                            if v is not None],
                            prompt_template=token(prompt_template, keep_if_safe=False))
        page = markdown.markdown(str(EvalOutputCell(output)), extensions=["tables"])
        for key, text in tokens.items():
            page = page.replace(key, text)
        return page
    except Exception as exc:  # the report must not fail the evaluation
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.4f}</td></tr>" for k, v in scores.items()
                       if v is not None)
        return (f"<p>fmeval's report cell is unavailable ({html.escape(type(exc).__name__)}).</p>"
                f"<table><tr><th>score</th><th>value</th></tr>{rows}</table>")


def algorithm_html(model: str, dataset_name: str, algorithm: dict[str, Any], result: dict[str, Any],
                   prompt_template: str, rows: list[dict[str, Any]] | None = None) -> str:
    key = next(iter(result["scores"]), "")
    by_id = {r["id"]: r for r in rows or []}
    ranked = sorted((r for r in result["per_record"] if r.get(key) is not None), key=lambda r: r[key])[:10]
    worst = [{"prompt": by_id.get(r["id"], {}).get("prompt", r["id"]),
              "target": by_id.get(r["id"], {}).get("target_output", ""),
              "output": by_id.get(r["id"], {}).get("output", ""), "score": round(r[key], 3)} for r in ranked]
    return _ALGORITHM_TEMPLATE.render(
        model=model, algorithm=algorithm["name"], notes=result.get("notes", []), key=key, worst=worst,
        cell=_fmeval_cell(algorithm, dataset_name, result["scores"], prompt_template))


_RUN_TEMPLATE = _PAGE.from_string("""<!doctype html>
<html><head><meta charset="utf-8"><title>{{ s.pipeline }} · {{ s.execution_id }}</title>
<style>body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}
tr.best{background:#e7f7e7}.scroll{overflow-x:auto}th small{font-weight:normal;color:#555}
td:nth-child(2){white-space:nowrap}.failed{color:#a00}.chart{margin:0 0 1.5rem}.muted{color:#666}
.problems{background:#fde8e8;border:1px solid #e0a0a0;padding:.5rem 1rem}
.verdict{background:#eef5ff;border:1px solid #9bc;padding:.2rem 1rem;margin-bottom:1rem}</style></head><body>
<h1>{{ s.pipeline }}</h1>
<div class="verdict">{% set sel = s.selection %}
{% if sel.best %}<p><b>Selected: {{ sel.best }}</b> by {% for o in sel.objectives %}{{ o.metric }}
{%- if sel.objectives|length > 1 %} (weight {{ o.weight }}){% endif %}{{ ", " if not loop.last }}{% endfor %}
{%- if sel.best_value is not none %} = {{ fmt(sel.best_value) }}{% endif %}
{%- if sel.margin %}, ahead of {{ sel.margin.over }} by {{ fmt(sel.margin.difference) }}
{%- if sel.margin.n %} ({{ (sel.margin.confidence * 100)|round|int }}% interval [{{ fmt(sel.margin.low) }},
{{ fmt(sel.margin.high) }}] over {{ sel.margin.n }} records: {{ "more than noise" if sel.margin.significant
else "within noise" }}){% endif %}{% endif %}.
{% set w = s.models[sel.best] %}{{ w.records }} records
{%- if w.cost_usd is not none %}, cost ${{ "%.2f"|format(w.cost_usd) }}{% endif %}.</p>
{% else %}<p><b>No model selected.</b></p>{% endif %}
{% if s.gate and s.gate.decision %}<p>Gate: <b>{{ s.gate.decision }}</b> ({{ s.gate.approval_status }})
{%- if s.gate.champion %}, compared with the champion {{ s.gate.champion.model }}
(version {{ s.gate.champion.version }})
{%- if s.gate.comparison %}: difference {{ fmt(s.gate.comparison.difference) }}, interval
[{{ fmt(s.gate.comparison.low) }}, {{ fmt(s.gate.comparison.high) }}] over {{ s.gate.comparison.n }} records{% endif %}
{%- endif %}. {{ s.gate.reasons|join("; ") }}</p>{% endif %}</div>
<p class="muted">execution {{ s.execution_id }} · selection by <b>{{ s.selection.metric }}</b>
({{ s.selection.direction }}) · best: <b>{{ s.selection.best or "none" }}</b>
{% if s.registry and s.registry.version %} · registered as version {{ s.registry.version }} of
{{ s.registry.model_package_group_name }} ({{ s.registry.approval_status }}){% endif %}</p>
{% if s.status == "interrupted" %}<p class="problems">This run was interrupted before it finished.</p>{% endif %}
{% if problems %}<div class="problems"><b>Needs attention</b><ul>{% for p in problems %}<li>{{ p }}</li>
{% endfor %}</ul></div>{% endif %}
<h2>Leaderboard</h2>
<div class="scroll"><table><tr><th>#</th><th>model</th><th>status</th>
{% for m in metrics %}<th>{{ m.split('.')[0] }}<br><small>{{ m.split('.', 1)[1] }}</small></th>{% endfor %}
<th>records</th><th>calls</th><th>errors</th><th>p50 s</th><th>p95 s</th><th>cost $</th></tr>
{% for row in leaderboard %}<tr class="{{ 'best' if row.name == s.selection.best else '' }}">
<td>{{ loop.index }}</td><td>{{ row.name }}</td>
<td class="{{ 'failed' if row.m.status != 'succeeded' else '' }}">{{ row.m.status }}
{%- if row.m.error %}: {{ row.m.error }}{% endif %}</td>
{% for m in metrics %}<td>{{ fmt(row.vals[m]) }}</td>{% endfor %}
<td>{{ row.m.records }}</td><td>{{ row.m.invocations }}</td><td>{{ row.m.errors }}</td>
<td>{{ fmt(row.m.latency_p50_s) }}</td><td>{{ fmt(row.m.latency_p95_s) }}</td>
<td>{{ fmt(row.m.cost_usd) }}</td></tr>{% endfor %}</table></div>
<h2>Charts</h2>
{% for m in metrics %}<div class="chart"><h3>{{ m }}</h3>
<svg width="640" height="{{ 28 * leaderboard|length + 10 }}" role="img" aria-label="{{ m }} by model">
{% for row in leaderboard %}{% set v = row.vals[m] %}
<text x="0" y="{{ 28 * loop.index0 + 20 }}" font-size="13">{{ row.name }}</text>
<rect x="200" y="{{ 28 * loop.index0 + 6 }}" height="18" width="{{ 360 * (v if v is not none else 0) / scale[m] }}"
 fill="{{ '#2a7' if row.name == s.selection.best else '#58c' }}"></rect>
<text x="{{ 206 + 360 * (v if v is not none else 0) / scale[m] }}" y="{{ 28 * loop.index0 + 20 }}"
 font-size="12">{{ fmt(v) }}</text>{% endfor %}</svg></div>{% endfor %}
<h2>Wrong answers</h2>
{% for name, rows in wrong.items() %}<h3>{{ name }}</h3>
{% if rows %}<table><tr><th>prompt</th><th>expected</th><th>answer</th></tr>
{% for r in rows %}<tr><td>{{ r.prompt }}</td><td>{{ r.target_output }}</td>
<td>{{ r.output if r.output is not none else "(error: " ~ r.error ~ ")" }}</td></tr>{% endfor %}</table>
{% else %}<p class="muted">none shown</p>{% endif %}{% endfor %}
{% for name, m in s.models.items() %}{% for eval, errs in m.algorithm_errors.items() %}
<p class="muted">{{ name }} · {{ eval }} not scored: {{ errs }}</p>{% endfor %}
{% for eval, notes in m.notes.items() %}{% for n in notes %}<p class="muted">{{ name }} · {{ eval }}: {{ n }}</p>
{% endfor %}{% endfor %}{% endfor %}
</body></html>""")


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _wrong_answers(layout: RunLayout, model: str, eval_name: str, limit: int = 15) -> list[dict[str, Any]]:
    """Records whose selection score is 0 (or that failed), from the model's files in the run."""
    outputs_uri, scores_uri = layout.outputs(model), layout.scores(model, eval_name)
    if not storage.exists(outputs_uri):
        return []
    outputs = {r["id"]: r for r in storage.read_jsonl(outputs_uri)}
    if not storage.exists(scores_uri):
        return [r for r in outputs.values() if r.get("error")][:limit]
    wrong = []
    for rec in storage.read_jsonl(scores_uri):
        values = [v for k, v in rec.items() if k not in ("id", "failed", "error") and isinstance(v, (int, float))]
        if rec.get("failed") or (values and values[0] == 0):
            wrong.append(outputs.get(rec["id"], {"prompt": rec["id"], "target_output": "", "output": None,
                                                 "error": rec.get("error")}))
    return wrong[:limit]


def run_report_html(summary: RunSummary, layout: RunLayout) -> str:
    metrics: list[str] = []
    for m in summary.models.values():
        for eval_name, scores in m.scores.items():
            for score in scores:
                key = f"{eval_name}.{score}"
                if key not in metrics:
                    metrics.append(key)
    ranking = {r["model"]: i for i, r in enumerate(summary.selection.ranking)}
    names = sorted(summary.models, key=lambda n: ranking.get(n, len(ranking)))
    leaderboard = []
    for name in names:
        m = summary.models[name]
        values = {k: m.scores.get(k.split(".")[0], {}).get(k.split(".", 1)[1]) for k in metrics}
        leaderboard.append({"name": name, "m": m, "vals": values})
    scale = {k: max([1.0] + [row["vals"][k] or 0 for row in leaderboard]) for k in metrics}
    eval_name = summary.selection.metric.split(".")[0]
    wrong = {name: _wrong_answers(layout, name, eval_name) for name in names}
    from lib.decide.status import problems

    return _RUN_TEMPLATE.render(s=summary, metrics=metrics, leaderboard=leaderboard, scale=scale, wrong=wrong,
                                fmt=_fmt, problems=problems(summary))

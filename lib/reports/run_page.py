"""The run's page, `report.html`: which model and why, at the top; then one ranked table, the charts
that differ, the changes since the previous run and against the champion, and every record side by
side (with the wrong answers of each model, all of them, counted).

One self-contained file: no external asset, a few lines of inline script (sorting, the record
filter). Everything from a model or a dataset is escaped: jinja2's autoescape, and model or dataset text
is never marked safe (`_target` escapes each part before it joins them with markup of its own). The
page must never fail the run: what it cannot read it leaves out and says so.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from typing import Any

from markupsafe import Markup, escape

from lib import storage
from lib.decide.metrics import RUN_METRICS, better, score_name, value_of
from lib.reports import templates
from lib.run.layout import RunLayout
from lib.run.records import ModelResult, RunSummary

RIGHT_AT = 0.5  # a record is answered right when its selection score is at least this (at most, if lower is better)
OPEN_UP_TO = 15  # a model's wrong answers start unfolded when there are at most this many
# rows the page holds side by side, and wrong answers per model: every count stays exact, and past these
# the page says where the rest are (20,000 records made a 9 MB page in 8 s; each run renders it twice)
SHOWN_UP_TO = 2_000
RUN_COLUMNS = ("error_rate", "latency_p95_s", "cost_usd")  # compared with the previous run and the champion
RELATIVE_NOISE = 0.05  # a latency or cost that moved by less than this share counts as unchanged

_SCRIPT = """(function () {
  function key(td) { var v = td.getAttribute("data-v"); return v === null ? td.textContent.trim() : v; }
  function sortBy(table, col, asc) {
    var head = table.tHead.rows[0].cells, body = table.tBodies[0];
    for (var i = 0; i < head.length; i++) head[i].removeAttribute("aria-sort");
    head[col].setAttribute("aria-sort", asc ? "ascending" : "descending");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a.cells[col]), y = key(b.cells[col]);
      if (x === "" || y === "") return x === y ? 0 : (x === "" ? 1 : -1);
      var nx = Number(x), ny = Number(y);
      var c = (isNaN(nx) || isNaN(ny)) ? x.localeCompare(y) : nx - ny;
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  var tables = document.querySelectorAll("table.sortable");
  Array.prototype.forEach.call(tables, function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      var b = th.querySelector("button.sort");
      if (b) b.addEventListener("click", function () {
        sortBy(table, col, th.getAttribute("aria-sort") !== "ascending");
      });
    });
  });
  var filter = document.getElementById("record-filter"), count = document.getElementById("record-count");
  function show(k) {
    var n = 0, rows = document.querySelectorAll("#records tbody tr");
    Array.prototype.forEach.call(rows, function (r) {
      var on = k === "all" || (k === "disagree" ? r.hasAttribute("data-disagree")
        : (" " + r.getAttribute("data-wrong") + " ").indexOf(" " + k + " ") >= 0);
      r.hidden = !on; if (on) n++;
    });
    if (count) count.textContent = n;
  }
  if (filter) filter.addEventListener("change", function () { show(filter.value); });
  var want = {};
  location.hash.replace(/^#/, "").split("&").forEach(function (p) {
    var kv = p.split("="); if (kv[0]) want[kv[0]] = decodeURIComponent(kv[1] || "");
  });
  if (want.sort && tables.length) {
    var th = tables[0].querySelector('th[data-col="' + want.sort.replace(/"/g, "") + '"]');
    if (th) sortBy(tables[0], th.cellIndex, want.order !== "desc");
  }
  if (filter && want.filter) { filter.value = want.filter; show(filter.value); }
})();"""

assert not any(t in _SCRIPT for t in ("{{", "{%", "{#", "</")), "the script is template text: no jinja2 markup"

_RUN_SOURCE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ s.pipeline }} · {{ s.execution_id }}</title>
<style>
:root{--line:#d8dee4;--muted:#57606a;--ok:#1a7f37;--bad:#b42318;--okbg:#e6f4ea;--badbg:#fdecea;--best:#e9f6ec}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1344px;margin:1.25rem auto;
padding:0 1.5rem;color:#1f2328}
h1{font-size:1.55rem;margin:.2rem 0 .1rem}h2{font-size:1.2rem;margin:1.8rem 0 .6rem;padding-bottom:.2rem;
border-bottom:1px solid var(--line)}h3{font-size:1rem;margin:1rem 0 .4rem}
table{border-collapse:collapse;width:100%;margin:.3rem 0 1rem}
td,th{border-bottom:1px solid var(--line);padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa;font-weight:600}th small,td small{font-weight:normal;color:var(--muted)}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.muted{color:var(--muted)}.failed{color:var(--bad)}tr.best td{background:var(--best)}
.scroll{overflow-x:auto}code{font-size:.92em}
.verdict{background:#eef5ff;border:1px solid #9ab8dd;border-radius:6px;padding:.5rem 1rem;margin:.8rem 0}
.verdict p{margin:.45rem 0}.headline{font-size:1.15rem}
.pill{display:inline-block;border-radius:1rem;padding:0 .6rem;font-size:.85rem;vertical-align:middle}
.pill.approved{background:var(--okbg);color:var(--ok)}.pill.rejected{background:var(--badbg);color:var(--bad)}
.problems{background:#fde8e8;border:1px solid #e0a0a0;border-radius:6px;padding:.4rem 1rem}
.problems ul{margin:.3rem 0}
table.ranked th{vertical-align:bottom}table.ranked td.model{font-weight:600;min-width:8rem;overflow-wrap:anywhere}
table.ranked .why{overflow-wrap:anywhere}
table.ranked td,table.ranked th{padding:.35rem .45rem}table.ranked th,table.ranked th *{white-space:nowrap}
@media (max-width:1200px){body{padding:0 1rem}table.ranked{font-size:13px}}
button.sort{all:unset;cursor:pointer}button.sort:focus-visible{outline:2px solid #0969da}
button.sort::after{content:" \\2195";color:#8c959f;font-weight:normal}
th[aria-sort=ascending] button.sort::after{content:" \\25B2";color:#1f2328}
th[aria-sort=descending] button.sort::after{content:" \\25BC";color:#1f2328}
.why{display:block;font-size:.85em;color:var(--muted);max-width:28rem}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(380px,1fr));gap:.8rem 1.2rem}
.chart{border:1px solid var(--line);border-radius:6px;padding:.45rem .7rem .55rem;margin:0}
.chart figcaption{font-weight:600;margin-bottom:.3rem;word-break:break-word}
.chart figcaption small{display:block;font-weight:normal;color:var(--muted)}
.bar-row{display:grid;grid-template-columns:minmax(4rem,8.5rem) 1fr 3.2rem;gap:.5rem;align-items:center;
font-size:12px;margin:.15rem 0}
.bar-row .label{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.bar{background:#eef1f4;height:12px;border-radius:2px}.bar span{display:block;height:100%;background:#6e9be6;
border-radius:2px}.bar-row.best .bar span{background:#2da44e}.bar-row.best .label{font-weight:600}
table.changes td:first-child{width:12rem;font-weight:600}
.delta{display:block;margin:0 0 .15rem}.delta small{white-space:nowrap}
.delta.better b{color:var(--ok)}.delta.worse b{color:var(--bad)}
.records-scroll{max-height:75vh;overflow:auto;border:1px solid var(--line);border-radius:6px}
table.records{table-layout:fixed;margin:0;min-width:{{ 20 + 12 * records.models|length }}rem}
table.records thead th{position:sticky;top:0;z-index:1;border-bottom:2px solid var(--line)}
table.records col.id{width:5.5rem}table.records col.q{width:22%}table.records col.t{width:11%}
table.records td{word-break:break-word}tr[data-disagree] td:first-child{border-left:3px solid #d4a72c}
.or{color:var(--muted);font-size:.85em}.ans{max-height:9em;overflow:auto;white-space:pre-wrap}
.sc{display:inline-block;margin-top:.2rem;padding:0 .35rem;border-radius:3px;font-size:12px;
font-variant-numeric:tabular-nums}.sc.ok{background:var(--okbg);color:var(--ok)}
.sc.bad{background:var(--badbg);color:var(--bad)}.sc.none{background:#eef1f4;color:var(--muted)}
.controls{display:flex;flex-wrap:wrap;gap:.4rem 1rem;align-items:center;margin:.4rem 0 .6rem}
select{font:inherit;padding:.15rem .3rem}
details.wrong{border:1px solid var(--line);border-radius:6px;padding:.3rem .7rem;margin:.5rem 0}
details.wrong summary{cursor:pointer}details.wrong table{table-layout:fixed}
</style></head><body>
<h1>{{ s.pipeline }}</h1>
<p class="muted">execution {{ s.execution_id }} · selection by <b>{{ s.selection.metric }}</b>
({{ s.selection.direction }}) · best: <b>{{ s.selection.best or "none" }}</b>
{% if s.registry and s.registry.version %} · registered as version {{ s.registry.version }} of
{{ s.registry.model_package_group_name }} ({{ s.registry.approval_status }}){% endif %}</p>
<div class="verdict">{% set sel = s.selection %}
{% if sel.best %}<p class="headline"><b>Selected: {{ sel.best }}</b>
{%- if s.gate and s.gate.decision %} <span class="pill {{ s.gate.decision }}">{{ s.gate.decision }}</span>
{%- endif %}</p>
<p>{% if objectives|length > 1 %}By {% for o in objectives %}{{ label(o.metric) }} (weight {{ "%g"|format(o.weight) }})
{{- " and " if loop.revindex == 2 else (", " if not loop.last) }}{% endfor %}: weighted score
{{- " " ~ fmt(verdict.weighted) }}{% if verdict.runner_weighted is not none %} against
{{- " " ~ fmt(verdict.runner_weighted) }} for {{ sel.margin.over }}{% endif %}. On {{ label(sel.metric) }} it scores
{{- " " ~ fmt(sel.best_value) }}
{%- else %}By {{ sel.metric }}{% if sel.best_value is not none %} = {{ fmt(sel.best_value) }}{% endif %}{% endif %}
{%- if sel.margin %}{% if sel.margin.difference >= 0 %}, ahead of {{ sel.margin.over }} by
{{- " " ~ fmt(sel.margin.difference) }}
{%- else %}, behind {{ sel.margin.over }} by {{ fmt(-sel.margin.difference) }}{% endif %}
{%- if sel.margin.n %} ({{ (sel.margin.confidence * 100)|round|int }}% interval [{{ fmt(sel.margin.low) }},
{{ fmt(sel.margin.high) }}] over {{ sel.margin.n }} records: {{ verdict.noise }}){% endif %}{% endif %}.</p>
{% set w = s.models[sel.best] %}<p>n = {{ w.records }} records
{%- if w.cost_usd is not none %}, cost ${{ "%.2f"|format(w.cost_usd) }}
{%- else %}, cost unknown (no price for its provider){% endif %}
{%- if w.latency_p95_s is not none %}, latency p95 {{ fmt(w.latency_p95_s) }} s{% endif %}
{%- if verdict.error_rate is not none %}, error rate {{ pct(verdict.error_rate) }}{% endif %}.</p>
{% else %}<p class="headline"><b>No model selected.</b></p>{% endif %}
{% if s.gate and s.gate.decision %}<p>Gate: <b>{{ s.gate.decision }}</b> ({{ s.gate.approval_status }})
{%- if s.gate.champion %}, compared with the champion {{ s.gate.champion.model }}
(version {{ s.gate.champion.version }}
{%- if s.gate.champion.evaluated_here %}, evaluated on this run's data{% endif %})
{%- if s.gate.comparison %}: difference {{ fmt(s.gate.comparison.difference) }}, interval
[{{ fmt(s.gate.comparison.low) }}, {{ fmt(s.gate.comparison.high) }}] over {{ s.gate.comparison.n }} records{% endif %}
{%- endif %}. {{ sentence(s.gate.reasons) }}.</p>
{% elif s.gate %}<p class="muted">Gate: {{ s.gate.reasons|join("; ") or s.gate.status }}.</p>{% endif %}
{% if previous %}<p class="muted">Since the previous run ({{ previous.execution_id }}):
{{ previous.headline }} <a href="#changes">changes</a></p>{% endif %}
</div>
{% if s.status == "interrupted" %}<p class="problems">This run was interrupted before it finished.</p>{% endif %}
{% if problems %}<div class="problems"><b>Needs attention</b><ul>{% for p in problems %}<li>{{ p }}</li>
{% endfor %}</ul></div>{% endif %}

<h2>Leaderboard</h2>
<p class="muted">Ranked by the selection's weighted score (each objective normalised across the candidates:
1 is the best of them, 0 the worst). Click a column to sort.</p>
<div class="scroll"><table class="ranked sortable" id="ranked"><thead><tr>
<th class="num" data-col="rank"><button type="button" class="sort">#</button></th>
<th data-col="model"><button type="button" class="sort">model</button></th>
<th class="num" data-col="weighted"><button type="button" class="sort">weighted</button>
<br><small>selection score</small></th>
{% for o in objectives %}<th class="num" data-col="objective-{{ loop.index0 }}">
<button type="button" class="sort">{{ o.metric.split('.')[0] }}</button>
{%- if '.' in o.metric %}<br><small>{{ o.metric.split('.', 1)[1] }}</small>{% endif %}
<br><small>{{ "weight %g"|format(o.weight) }} · {{ o.direction }}</small></th>{% endfor %}
<th data-col="status"><button type="button" class="sort">status</button></th>
<th class="num" data-col="error_rate"><button type="button" class="sort">error rate</button></th>
<th class="num" data-col="latency_p95_s"><button type="button" class="sort">p95 s</button></th>
<th class="num" data-col="cost_usd"><button type="button" class="sort">cost $</button></th>
<th class="num" data-col="records"><button type="button" class="sort">records</button></th>
</tr></thead><tbody>
{% for row in ranked %}<tr data-model="{{ row.name }}" class="{{ 'best' if row.name == s.selection.best else '' }}">
<td class="num" data-v="{{ row.rank if row.rank else '' }}">{{ row.rank or "–" }}</td>
<td class="model">{{ row.name }}</td>
<td class="num" data-v="{{ num(row.weighted) }}">{{ fmt(row.weighted) }}</td>
{% for v in row.objectives %}<td class="num" data-v="{{ num(v.value) }}"
{%- if v.normalised is not none %} title="normalised {{ fmt(v.normalised) }}"{% endif %}>{{ fmt(v.value) }}</td>
{% endfor %}
<td class="{{ 'failed' if row.m.status != 'succeeded' or row.excluded else '' }}"
 data-v="{{ row.m.status }}">{{ row.m.status }}
{%- if row.excluded and row.excluded != row.m.status %}<span class="why">excluded: {{ row.excluded }}</span>
{%- elif row.m.error %}<span class="why">{{ row.m.error }}</span>{% endif %}</td>
<td class="num" data-v="{{ num(row.error_rate) }}">{{ pct(row.error_rate) }}</td>
<td class="num" data-v="{{ num(row.m.latency_p95_s) }}">{{ fmt(row.m.latency_p95_s) }}</td>
<td class="num" data-v="{{ num(row.m.cost_usd) }}">{{ money(row.m.cost_usd) }}</td>
<td class="num" data-v="{{ num(row.m.records) }}">{{ row.m.records if row.m.records is not none else "–" }}</td>
</tr>{% endfor %}</tbody></table></div>

<h2>Charts</h2>
{% if charts.groups %}<div class="charts">{% for c in charts.groups %}
<figure class="chart" data-metrics="{{ c.metrics|join(' ') }}"><figcaption>{{ label(c.metrics[0]) }}
{%- if c.objective is not none %} <small>objective, weight {{ "%g"|format(c.objective) }}
{%- if c.lower_better %} · lower is better{% endif %}</small>{% elif c.lower_better %}<small>lower is better</small>
{%- endif %}
{%- if c.metrics|length > 1 %}<small>the same values: {{ c.aliases|join(", ") }}</small>
{%- endif %}</figcaption>
{% for b in c.bars %}<div class="bar-row{{ ' best' if b.best else '' }}">
<span class="label" title="{{ b.name }}">{{ b.name }}</span>
<span class="bar"><span style="width:{{ b.width }}%"></span></span><span class="num">{{ fmt(b.value) }}</span></div>
{% endfor %}</figure>{% endfor %}</div>{% else %}<p class="muted">No scores to chart.</p>{% endif %}
{% if charts.constant %}<p class="muted" id="constant-metrics">The same for every model (no chart):
{% for c in charts.constant %}{{ c.metric }} = {{ fmt(c.value) }}{{ "; " if not loop.last }}{% endfor %}.</p>{% endif %}

{% macro changes_table(rows, id) %}<table class="changes" id="{{ id }}"><thead><tr><th>model</th><th>better</th>
<th>worse</th><th class="num">unchanged</th></tr></thead><tbody>
{% for r in rows %}<tr data-model="{{ r.name }}"><td>{{ r.name }}
{%- if r.note %}<span class="why">{{ r.note }}</span>{% endif %}</td>
{% for kind in ("better", "worse") %}<td>{% for c in r[kind] %}<span class="delta {{ kind }}"
 data-metric="{{ c.metric }}" data-delta="{{ c.delta }}">{{ c.label }}
{%- if c.same %} <small title="{{ c.same|join(', ') }}">(+{{ c.same|length }})</small>{% endif %} <b>{{ c.text }}</b>
 <small>{{ fmt(c.before) }} → {{ fmt(c.after) }}</small></span>
{% else %}<span class="muted">–</span>{% endfor %}</td>{% endfor %}
<td class="num" title="{{ r.same|join(', ') }}">{{ r.same|length }}</td></tr>
{% endfor %}</tbody></table>{% endmacro %}
<h2 id="changes">Changes</h2>
<h3>Since the previous run</h3>
{% if previous %}<p>Previous run of {{ s.pipeline }}: <b>{{ previous.execution_id }}</b> ({{ previous.when }}).
{{ previous.headline }}{% if previous.note %} <span class="failed">{{ previous.note }}</span>{% endif %}</p>
{{ changes_table(previous.rows, "vs-previous") }}
{% else %}<p class="muted" id="vs-previous">{{ previous_note }}</p>{% endif %}
<h3>Against the champion</h3>
{% if champion %}<p>Champion: <b>{{ champion.model }}</b>, version {{ champion.version }}
{%- if champion.here %}, scored on other data and evaluated in this run on this one (as {{ champion.here }})
{%- elif champion.execution_id %}, from run {{ champion.execution_id }}{% else %} (scores from the registry){% endif %}.
{%- if s.gate.comparison %} Paired over {{ s.gate.comparison.n }} records on
{{ s.gate.comparison.metric or s.selection.metric }}:
{{ s.gate.model }} − champion = {{ signed(s.gate.comparison.difference) }}
({{ ((s.gate.comparison.confidence or 0.95) * 100)|round|int }}% interval [{{ signed(s.gate.comparison.low) }},
{{ signed(s.gate.comparison.high) }}]).{% endif %} Each model of this run against it:</p>
{{ changes_table(champion.rows, "vs-champion") }}
{% else %}<p class="muted" id="vs-champion">{{ champion_note }}</p>{% endif %}

{{ records_html }}
{% for name, m in s.models.items() %}{% for eval, errs in m.algorithm_errors.items() %}
<p class="muted">{{ name }} · {{ eval }} not scored: {{ errs }}</p>{% endfor %}{% endfor %}
{% for n in model_notes %}<p class="muted">{{ n.eval }}: {{ n.text }} ({{ n.models|join(", ") }})</p>
{% endfor %}
{% for n in page_notes %}<p class="muted">{{ n }}</p>{% endfor %}
<script id="report-js">""" + _SCRIPT + """</script>
</body></html>"""

# The records side by side and each model's wrong answers: most of the page (up to 2,000 rows), and the
# same at select and at register for the same view, so rendered once per view (`_records_html`).
_RECORDS_SOURCE = """<h2 id="records-side-by-side">Records side by side</h2>
{% if records.rows %}
{% if records.total > records.rows|length %}<p class="muted" id="records-shown">This page shows {{ records.rows|length
}} of the {{ records.total }} records (where the models disagree first); every answer is in {{ records.files
}} and every score beside it.</p>{% endif %}
<p class="muted">{{ records.total }} records · {{ records.disagree }} where the models disagree ·
the score is {{ label(records.metric) }}: right when {{ records.rule }}, wrong otherwise or when the call failed.
Records where the models disagree have a yellow edge.</p>
<div class="controls"><label>Show <select id="record-filter">
<option value="all">every record ({{ records.rows|length }})</option>
<option value="disagree">only where the models disagree ({{ records.disagree }})</option>
{% for m in records.models %}<option value="w{{ loop.index0 }}">only those {{ m.name }} got wrong
({{ m.wrong }})</option>
{% endfor %}</select></label>
<span class="muted"><span id="record-count">{{ records.rows|length }}</span> shown</span></div>
<div class="records-scroll"><table class="records" id="records"><colgroup><col class="id"><col class="q"><col class="t">
{% for m in records.models %}<col>{% endfor %}</colgroup>
<thead><tr><th>id</th><th>question</th><th>target</th>
{% for m in records.models %}<th>{{ m.name }}</th>{% endfor %}</tr></thead>
<tbody>{% for r in records.rows %}<tr data-id="{{ r.id }}"{% if r.disagree %} data-disagree=""{% endif %}
 data-wrong="{{ r.wrong|join(' ') }}">
<td><small>{{ r.id }}</small></td><td>{{ r.question }}</td><td>{{ target(r.target) }}</td>
{% for c in r.cells %}<td data-model="{{ c.model }}">{% if c.asked %}<div class="ans">
{%- if c.error %}<span class="failed">(error: {{ c.error }})</span>{% else %}{{ c.output }}{% endif %}</div>
<span class="sc {{ 'none' if c.right is none else ('ok' if c.right else 'bad') }}">
{{- fmt(c.score) if c.score is not none else "not scored" }}</span>
{%- else %}<span class="muted">not asked</span>{% endif %}</td>{% endfor %}</tr>
{% endfor %}</tbody></table></div>
{% else %}<p class="muted">{{ records.note }}</p>{% endif %}

<h2>Wrong answers</h2>
{% if records.models %}<p class="muted">Every record each model got wrong, all of them ({{ label(records.metric) }} not
{{ records.rule }}, or the call failed).</p>
{% for m in records.models %}<details class="wrong" data-model="{{ m.name }}" data-count="{{ m.wrong }}"
{%- if 0 < m.wrong <= open_up_to %} open{% endif %}><summary><b>{{ m.name }}</b>: {{ m.wrong }} wrong of
{{ m.scored }} scored records{% if m.unscored %} ({{ m.unscored }} not scored){% endif %}</summary>
{% if m.wrong > m.wrong_rows|length %}<p class="muted">The first {{ m.wrong_rows|length }} of {{ m.wrong }};
the rest are in {{ m.file }}.</p>{% endif %}
{% if m.wrong_rows %}<table><thead><tr><th style="width:6rem">id</th><th>question</th><th>target</th><th>answer</th>
<th class="num" style="width:6rem">score</th></tr></thead><tbody>
{% for r in m.wrong_rows %}<tr><td><small>{{ r.id }}</small></td><td>{{ r.question }}</td>
<td>{{ target(r.target) }}</td>
<td>{% if r.error %}<span class="failed">(error: {{ r.error }})</span>{% else %}{{ r.output }}{% endif %}</td>
<td class="num">{{ fmt(r.score) }}</td></tr>
{% endfor %}</tbody></table>{% else %}<p class="muted">none</p>{% endif %}</details>
{% endfor %}{% else %}<p class="muted">{{ records.note }}</p>{% endif %}

"""
_PAGE = templates.environment({"run": _RUN_SOURCE, "records": _RECORDS_SOURCE})


# --- numbers ------------------------------------------------------------------------------------------

def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _num(value: Any) -> str:
    """A sort key for ``data-v``: the number as it is, '' for none."""
    return "" if value is None else repr(float(value)) if isinstance(value, (int, float)) else str(value)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _money(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _sentence(parts: list[str]) -> str:
    """Reasons as one sentence (a plain string: the template escapes it)."""
    text = "; ".join(str(p) for p in parts)
    return text[:1].upper() + text[1:].rstrip(".")


def _label(key: str) -> str:
    """``factual_knowledge`` for ``factual_knowledge.factual_knowledge``: an algorithm's own score."""
    eval_name, _, score = key.partition(".")
    return eval_name if score == eval_name else key


def _target(text: Any) -> Markup:
    """A target with its alternatives (``a<OR>b``) shown apart; every part escaped."""
    parts = [escape(p) for p in str(text if text is not None else "").split("<OR>")]
    return Markup('<wbr><span class="or">&lt;OR&gt;</span><wbr>').join(parts)


def _signed(value: float | None) -> str:
    return "–" if value is None else f"{value:+.3f}"


# --- metrics ------------------------------------------------------------------------------------------

def _score_keys(summary: RunSummary) -> list[str]:
    keys: list[str] = []
    for m in summary.models.values():
        for eval_name, scores in m.scores.items():
            for score in scores:
                if f"{eval_name}.{score}" not in keys:
                    keys.append(f"{eval_name}.{score}")
    return keys


def _value(m: ModelResult, key: str) -> float | None:
    """A metric's value: a run metric, ``<eval>.<score>`` or an objective as the policy names it."""
    if key in RUN_METRICS:
        try:
            value = RUN_METRICS[key][0](m)
        except TypeError:  # a count it needs is missing (an older or hand-made record)
            return None
        return None if value is None else float(value)
    eval_name, _, score = key.partition(".")
    if score:
        value = m.scores.get(eval_name, {}).get(score)
        return None if value is None else float(value)
    return value_of(m, key)


def _lower_is_better(key: str) -> bool:
    if key in RUN_METRICS:
        return better(key) == "min"
    from lib.scorers import lower_is_better

    return lower_is_better(key.partition(".")[0])


def _objectives(summary: RunSummary) -> list[dict[str, Any]]:
    sel = summary.selection
    return [{"weight": 1.0, "direction": "max", **o} for o in sel.objectives] or [
        {"metric": sel.metric, "weight": 1.0, "direction": sel.direction}]


def _score_key_of(metric: str, summary: RunSummary) -> str:
    """``<eval>.<score>`` for an objective naming an algorithm only (its first score), as selection reads it."""
    if metric in RUN_METRICS or "." in metric:
        return metric
    for m in summary.models.values():
        if m.scores.get(metric):
            name = score_name(metric, {}, m.scores[metric])
            if name:
                return f"{metric}.{name}"
    return metric


def _order(summary: RunSummary) -> list[str]:
    ranked = [r["model"] for r in summary.selection.ranking if r.get("model") in summary.models]
    return ranked + [n for n in summary.models if n not in ranked]


# --- the parts of the page ----------------------------------------------------------------------------

def _ranked(summary: RunSummary, objectives: list[dict[str, Any]], order: list[str]) -> list[dict[str, Any]]:
    sel = summary.selection
    ranks = {r["model"]: i + 1 for i, r in enumerate(sel.ranking)}
    scores = {r["model"]: r.get("score") for r in sel.ranking}
    rows = []
    for name in order:
        m, cand = summary.models[name], sel.candidates.get(name) or {}
        values = cand.get("values") or {}
        rows.append({
            "name": name, "m": m, "rank": ranks.get(name), "excluded": sel.excluded.get(name),
            "weighted": cand.get("weighted", scores.get(name)),
            "objectives": [{"value": values[o["metric"]] if o["metric"] in values else _value(m, o["metric"]),
                            "normalised": (cand.get("normalised") or {}).get(o["metric"])} for o in objectives],
            "error_rate": _value(m, "error_rate"),
        })
    return rows


def _charts(summary: RunSummary, objectives: list[dict[str, Any]], order: list[str]) -> dict[str, Any]:
    """One chart per set of metrics with the same values for every model; a metric that is the same
    for every model gets a line, not a chart."""
    weights: dict[str, float] = {}
    for o in objectives:
        weights.setdefault(_score_key_of(o["metric"], summary), o["weight"])
    keys = [k for k in weights] + [k for k in _score_keys(summary) if k not in weights]
    groups: dict[tuple, dict[str, Any]] = {}
    constant = []
    for key in keys:
        values = [_value(summary.models[n], key) for n in order]
        if all(v is None for v in values):
            continue
        vector = tuple(None if v is None else round(v, 6) for v in values)
        if len(order) > 1 and None not in vector and len(set(vector)) == 1 and key not in weights:
            constant.append({"metric": key, "value": values[0]})
            continue
        if vector in groups:
            groups[vector]["metrics"].append(key)
            groups[vector]["aliases"].append(_label(key))
            continue
        lower = _lower_is_better(key)
        top = max([v for v in values if v is not None] + [0.0])
        scale = top if key in RUN_METRICS else max(1.0, top)
        groups[vector] = {
            "metrics": [key], "aliases": [], "objective": weights.get(key), "lower_better": lower,
            "bars": [{"name": n, "value": v, "best": n == summary.selection.best,
                      "width": 0 if not v or not scale else round(100 * max(v, 0.0) / scale, 1)}
                     for n, v in zip(order, values, strict=True)]}
    return {"groups": list(groups.values()), "constant": constant}


def _right(value: float | None, lower_better: bool) -> bool | None:
    if value is None:
        return None
    return value <= RIGHT_AT if lower_better else value >= RIGHT_AT


def _record_metric(summary: RunSummary, objectives: list[dict[str, Any]]) -> str | None:
    """The score each record is judged by: the first objective that is a score, else the first score."""
    for o in objectives:
        key = _score_key_of(o["metric"], summary)
        if key not in RUN_METRICS and "." in key:
            return key
    return next(iter(_score_keys(summary)), None)


def _records(summary: RunSummary, layout: RunLayout, objectives: list[dict[str, Any]],
             order: list[str], shown_up_to: int = SHOWN_UP_TO) -> dict[str, Any]:
    """Every record side by side, and each model's wrong answers: at most ``shown_up_to`` of each (the
    records where the models disagree first), with the counts of all of them."""
    key = _record_metric(summary, objectives)
    out: dict[str, Any] = {"rows": [], "models": [], "disagree": 0, "metric": key, "note": "", "total": 0,
                           "files": ""}
    if key is None:
        out["note"] = "No model has a score: there is nothing to compare record by record."
        return out
    eval_name = key.partition(".")[0]
    names = [n for n in order if storage.exists(layout.outputs(n))]
    if not names:
        out["note"] = "No model's answers are in this run's folder."
        return out
    source = layout.dataset if storage.exists(layout.dataset) else layout.outputs(names[0])
    files = [source] + [layout.outputs(n) for n in names] + [layout.scores(n, eval_name) for n in names]
    made_from = _made_from(files, (key, tuple(names), shown_up_to, _lower_is_better(key)))
    global _LAST_VIEW
    if made_from is not None and _LAST_VIEW is not None and _LAST_VIEW[0] == made_from:
        return _LAST_VIEW[1]  # select's page, again for register's: the same files give the same view
    out = _side_by_side(out, layout, names, source, eval_name, key, shown_up_to)
    _LAST_VIEW = (made_from, out) if made_from is not None else None
    return out


# The last per-record view built in this process, and what it was built from: the run's page is written
# by select and again by register (the same process, run locally), and the view is most of its cost.
_LAST_VIEW: tuple[tuple[Any, ...], dict[str, Any]] | None = None
def _records_html(records: dict[str, Any]) -> Markup:
    """The records side by side and the wrong answers, rendered once per view: kept in the view, which
    `_records` keeps for select's page and register's."""
    if "html" not in records:
        records["html"] = Markup(_PAGE.get_template("records").render(
            records=records, open_up_to=OPEN_UP_TO, fmt=_fmt, label=_label, target=_target))
    return records["html"]


def _made_from(files: list[str], settings: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """What a view is built from: the settings and each local file's identity (None when one is remote, so
    never reused): how many times this process has rewritten or removed it (`storage.changes`), and its
    inode, size and mtime for a change made by another process (an appended file is longer)."""
    ids: list[Any] = [settings]
    for uri in files:
        if storage.is_remote(uri):
            return None
        try:
            st = os.stat(uri)
        except FileNotFoundError:
            ids.append((uri, storage.changes(uri), None))
            continue
        except OSError:
            return None
        ids.append((uri, storage.changes(uri), st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(ids)


def _side_by_side(out: dict[str, Any], layout: RunLayout, names: list[str], source: str, eval_name: str,
                  key: str, shown_up_to: int) -> dict[str, Any]:
    score = key.partition(".")[2]
    lower = _lower_is_better(key)
    out["rule"] = f"at most {RIGHT_AT:g}" if lower else f"at least {RIGHT_AT:g}"
    # every file is in dataset order: walk them side by side, one record at a time, holding none whole
    answers = [_InOrder(storage.iter_jsonl(layout.outputs(n))) for n in names]
    scored = [_InOrder(storage.iter_jsonl(uri) if storage.exists(uri := layout.scores(n, eval_name)) else iter(()))
              for n in names]
    models = [{"name": n, "wrong": 0, "scored": 0, "unscored": 0, "wrong_rows": []} for n in names]
    kept = {True: 0, False: 0}  # rows kept so far where the models disagree, and where they agree
    for r in storage.iter_jsonl(source):
        rid = r["id"]
        looked = [(answers[i].get(rid), scored[i].get(rid)) for i in range(len(names))]
        rec: dict[str, Any] | None = None
        cells, verdicts, wrong = [], [], []
        for i, (answer, row) in enumerate(looked):
            value = row.get(score) if row else None
            error = (answer or {}).get("error") or ((row or {}).get("error") if (row or {}).get("failed") else None)
            failed = bool(error) or bool((row or {}).get("failed"))
            right = False if failed else _right(value, lower)
            cells.append({"model": names[i], "asked": answer is not None, "output": (answer or {}).get("output"),
                          "error": error, "score": value, "right": right})
            if answer is None:
                continue
            if right is None:
                models[i]["unscored"] += 1
                continue
            models[i]["scored"] += 1
            verdicts.append(right)
            if not right:
                wrong.append(f"w{i}")
                models[i]["wrong"] += 1
                if len(models[i]["wrong_rows"]) < shown_up_to:
                    rec = rec or _rec(r)
                    models[i]["wrong_rows"].append({**rec, "output": (answer or {}).get("output"), "error": error,
                                                    "score": value})
        disagree = len(set(verdicts)) > 1
        out["disagree"] += disagree
        out["total"] += 1
        # only rows the page can show are kept: the first of each kind (`_first` then picks among them)
        if kept[disagree] < shown_up_to:
            kept[disagree] += 1
            out["rows"].append({**(rec or _rec(r)), "cells": cells, "disagree": disagree, "wrong": wrong})
    out["rows"] = _first(out["rows"], shown_up_to)
    out["models"] = models
    for m in models:  # where every answer is, as a path in the run's folder
        m["file"] = storage.relative(layout.outputs(m["name"]), layout.root)
    out["files"] = ", ".join(m["file"] for m in models)
    return out


def _rec(r: dict[str, Any]) -> dict[str, Any]:
    return {"id": r["id"], "question": r.get("model_input", r.get("prompt")), "target": r.get("target_output")}


class _InOrder:
    """A file's rows looked up by id while the dataset is walked in the same order: each row is read once,
    and a record the file does not have (not asked, not scored) is passed over."""

    def __init__(self, rows: Iterator[dict[str, Any]]) -> None:
        self._rows = rows
        self._next = next(rows, None)

    def get(self, rid: str) -> dict[str, Any] | None:
        if self._next is None or self._next.get("id") != rid:
            return None
        row, self._next = self._next, next(self._rows, None)
        return row


def _first(rows: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """At most ``n`` rows, those where the models disagree first, each group in dataset order."""
    if len(rows) <= n:
        return rows
    picked = {id(r) for r in [r for r in rows if r["disagree"]][:n]}
    picked |= {id(r) for r in [r for r in rows if not r["disagree"]][:n - len(picked)]}
    return [r for r in rows if id(r) in picked]


def _changes(now: ModelResult, before: ModelResult, keys: dict[str, list[str]]) -> dict[str, Any]:
    """What got better or worse from ``before`` to ``now``, metric by metric, and by how much."""
    out: dict[str, Any] = {"better": [], "worse": [], "same": []}
    for key, same in keys.items():
        a, b = _value(before, key), _value(now, key)
        if a is None or b is None:
            continue
        delta = round(b - a, 6)
        noisy = key in RUN_METRICS and key != "error_rate"
        if abs(delta) < 5e-7 or (noisy and abs(delta) <= RELATIVE_NOISE * max(abs(a), abs(b))):
            out["same"].append(_label(key))
            continue
        text = _pct(delta).replace("-", "−") if key == "error_rate" else f"{delta:+.3f}".replace("-", "−")
        if key == "error_rate" and delta > 0:
            text = "+" + text
        if noisy and a:
            text += f" ({delta / abs(a):+.0%})".replace("-", "−")
        improved = (delta < 0) if _lower_is_better(key) else (delta > 0)
        out["better" if improved else "worse"].append({"metric": key, "label": _label(key), "before": a, "after": b,
                                                       "delta": delta, "text": text, "same": same})
    return out


def _comparison_keys(charts: dict[str, Any]) -> dict[str, list[str]]:
    """The metrics compared with another run, each with the metrics that have its values in this run
    (one line for a set of identical scores, as one chart): the charted ones, the constant ones, and the
    run metrics."""
    keys = {g["metrics"][0]: g["metrics"][1:] for g in charts["groups"]}
    keys.update({c["metric"]: [] for c in charts["constant"]})
    keys.update({k: [] for k in RUN_COLUMNS if k not in keys})
    return keys


def _when(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _previous(summary: RunSummary, layout: RunLayout, charts: dict[str, Any],
              order: list[str]) -> dict[str, Any] | None:
    from lib.run.history import previous_run

    past = previous_run(layout, summary.pipeline)
    if past is None:
        return None
    before = past.summary
    keys = _comparison_keys(charts)
    rows = []
    for name in order:
        if name in before.models:
            rows.append({"name": name, **_changes(summary.models[name], before.models[name], keys)})
        else:
            rows.append({"name": name, "note": "not in the previous run", "better": [], "worse": [], "same": []})
    for name in before.models:
        if name not in summary.models:
            rows.append({"name": name, "note": "in the previous run only", "better": [], "worse": [], "same": []})
    was, now = before.selection.best, summary.selection.best
    headline = (f"The winner is still {now}." if was == now and now else
                f"The winner was {was or 'none'}; now it is {now or 'none'}.")
    winner = next((r for r in rows if r["name"] == now), None)
    metric = _score_key_of(summary.selection.metric, summary)
    moved = next((c for kind in ("better", "worse") for c in (winner or {}).get(kind, []) if c["metric"] == metric),
                 None)
    if moved:
        headline += f" Its {_label(metric)}: {moved['text']} ({_fmt(moved['before'])} → {_fmt(moved['after'])})."
    elif winner and _label(metric) in winner.get("same", []):
        headline += f" Its {_label(metric)} did not change."
    note = None
    if before.dataset_hash and summary.dataset_hash and before.dataset_hash != summary.dataset_hash:
        note = "It was scored on other records: a change mixes the models' and the data's."
    return {"execution_id": before.execution_id or past.layout.root, "when": _when(past.modified),
            "headline": headline, "note": note, "rows": rows}


def _champion(summary: RunSummary, layout: RunLayout, charts: dict[str, Any],
              order: list[str]) -> dict[str, Any] | None:
    from lib.run.history import champion

    keys = _comparison_keys(charts)
    here = (summary.gate.champion or {}).get("evaluated_here") if summary.gate else None
    if here:  # scored on other data, so this run evaluated it on its own: compare with that
        result = ModelResult.from_dict({"model": here["as"], **{k: v for k, v in here.items() if k != "as"}})
        return {"model": summary.gate.champion.get("model"), "version": summary.gate.champion.get("version"),
                "rows": [{"name": n, **_changes(summary.models[n], result, keys)} for n in order],
                "execution_id": None, "here": here["as"]}
    found = champion(layout, summary)
    if found is None:
        return None
    rows = [{"name": n, **_changes(summary.models[n], found.result, keys)} for n in order]
    return {"model": found.result.model, "version": found.version, "rows": rows,
            "execution_id": found.run.summary.execution_id if found.run else None}


def _verdict(summary: RunSummary) -> dict[str, Any]:
    sel = summary.selection
    out: dict[str, Any] = {"weighted": None, "runner_weighted": None, "noise": "", "error_rate": None}
    if not sel.best or sel.best not in summary.models:
        return out
    if len(_objectives(summary)) > 1:
        out["weighted"] = (sel.candidates.get(sel.best) or {}).get("weighted")
        if sel.margin and sel.margin.get("over"):
            out["runner_weighted"] = (sel.candidates.get(sel.margin["over"]) or {}).get("weighted")
    margin = sel.margin or {}
    if margin.get("n"):
        if margin.get("low", 0) > 0:
            out["noise"] = "more than noise"
        elif margin.get("high", 0) < 0:
            out["noise"] = f"{margin.get('over')} is better on it, by more than noise"
        else:
            out["noise"] = "within noise"
    out["error_rate"] = _value(summary.models[sel.best], "error_rate")
    return out


def _model_notes(summary: RunSummary) -> list[dict[str, Any]]:
    """The algorithms' notes, each once with the models it is about."""
    notes: dict[tuple[str, str], list[str]] = {}
    for name, m in summary.models.items():
        for eval_name, texts in m.notes.items():
            for text in texts:
                notes.setdefault((eval_name, text), []).append(name)
    return [{"eval": e, "text": t, "models": models} for (e, t), models in notes.items()]


def _guarded(what: str, notes: list[str], fn: Any, default: Any) -> Any:
    """A part of the page that cannot be built is left out with a line saying why, never the run."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - the report must not fail the run
        notes.append(f"The {what} could not be shown: {type(exc).__name__}: {exc}")
        return default


def run_report_html(summary: RunSummary, layout: RunLayout, shown_up_to: int = SHOWN_UP_TO) -> str:
    """The run's page. ``shown_up_to``: records side by side, and wrong answers per model, the page holds."""
    from lib.decide.status import problems

    objectives = _objectives(summary)
    order = _order(summary)
    notes: list[str] = []
    charts = _charts(summary, objectives, order)
    records = _guarded("per-record view", notes, lambda: _records(summary, layout, objectives, order, shown_up_to),
                       {"rows": [], "models": [], "disagree": 0, "metric": None,
                        "note": "The per-record view could not be built (see the note at the end)."})
    previous = _guarded("comparison with the previous run", notes,
                        lambda: _previous(summary, layout, charts, order), None)
    champ = _guarded("comparison with the champion", notes,
                     lambda: _champion(summary, layout, charts, order), None)
    gate = summary.gate
    if gate and gate.champion:
        champion_note = (f"The champion {gate.champion.get('model')} (version {gate.champion.get('version')}) "
                         "was not found beside this run: no per-metric comparison.")
    elif gate and gate.decision:
        champion_note = "No champion yet: no Approved version in the registry group before this run."
    else:
        champion_note = "No champion: this pipeline has no gate comparing with the registry."
    return _PAGE.get_template("run").render(
        s=summary, objectives=objectives, verdict=_verdict(summary), problems=problems(summary),
        ranked=_ranked(summary, objectives, order), charts=charts,
        records=records, records_html=_records_html(records), previous=previous, champion=champ,
        previous_note=f"No earlier finished run of {summary.pipeline} beside this one.",
        champion_note=champion_note, page_notes=notes, model_notes=_model_notes(summary),
        fmt=_fmt, num=_num, pct=_pct, money=_money, signed=_signed, label=_label,
        sentence=_sentence, target=_target)

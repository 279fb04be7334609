"""The run's page answers "which model and why": one ranked, sortable table; charts that differ; every
record side by side with the disagreements marked; every wrong answer, counted; what changed since the
previous run and against the champion; everything from a model or a dataset escaped. The runs here are
written by hand (summary and per-record files, through `lib.storage` and `RunLayout`): no model runs."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import fake_aws

from lib import storage
from lib.decide.selection import choose
from lib.decide.status import model_status
from lib.reports import run_report_html
from lib.run.history import previous_run
from lib.run.layout import RunLayout
from lib.run.records import Gate, ModelResult, Registration, RunSummary

VOID = {"br", "col", "wbr", "meta", "img", "input", "hr", "link"}


class Node:
    def __init__(self, tag: str, attrs: dict[str, str | None], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent, self.children = tag, attrs, parent, []
        self.parts: list[str] = []

    def text(self) -> str:
        return "".join(p if isinstance(p, str) else p.text() for p in self.parts)

    def all(self, tag: str | None = None, **attrs: str) -> list[Node]:
        out = []
        for child in self.children:
            if (tag is None or child.tag == tag) and all(
                    (v is True and k.replace("_", "-") in child.attrs) or
                    child.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items()):
                out.append(child)
            out.extend(child.all(tag, **attrs))
        return out

    def one(self, tag: str | None = None, **attrs: str) -> Node:
        found = self.all(tag, **attrs)
        assert len(found) == 1, (tag, attrs, len(found))
        return found[0]


class Page(HTMLParser):
    """The page as a tree of elements (the stdlib parser; no browser)."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.root = self.at = Node("#root", {}, None)
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs), self.at)
        self.at.children.append(node)
        self.at.parts.append(node)
        if tag not in VOID:
            self.at = node

    def handle_endtag(self, tag):
        node = self.at
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.at = node.parent

    def handle_data(self, data):
        self.at.parts.append(data)


def page(html: str) -> Node:
    return Page(html).root


# --- runs written by hand -------------------------------------------------------------------------------

def make_run(root: Path | str, answers: dict[str, list[tuple[str | None, float | None]]], *,
             pipeline: str = "pipe", execution_id: str = "exec-1", questions: list[str] | None = None,
             targets: list[str] | None = None, selection: dict | None = None, extra_scores: dict | None = None,
             gate: Gate | None = None, registry: Registration | None = None, status: str = "completed",
             p95: dict[str, float] | None = None) -> tuple[RunSummary, RunLayout]:
    """A run's files for models whose answers are ``(output, factual_knowledge score)`` per record; an
    output of None is a failed call (it scores 0, as the engine counts it)."""
    layout = RunLayout(str(root))
    n = len(next(iter(answers.values())))
    ids = [f"r{i:03d}" for i in range(n)]
    questions = questions or [f"Question number {i}?" for i in range(n)]
    targets = targets or [f"answer {i}" for i in range(n)]
    storage.write_jsonl(layout.dataset, [{"id": i, "model_input": q, "target_output": t}
                                         for i, q, t in zip(ids, questions, targets, strict=True)])
    results = []
    for name, rows in answers.items():
        errors = [out is None for out, _ in rows]
        storage.write_jsonl(layout.outputs(name), [
            {"id": i, "model_input": q, "prompt": q, "target_output": t, "output": out,
             "error": "HTTP 500: <b>boom</b>" if out is None else None, "latency_s": 0.1}
            for i, q, t, (out, _) in zip(ids, questions, targets, rows, strict=True)])
        storage.write_jsonl(layout.scores(name, "factual_knowledge"), [
            {"id": i, "factual_knowledge": 0.0 if failed else s, "factual_knowledge_quasi_exact": 0.0 if failed else s,
             **({"failed": True} if failed else {})} for i, (_, s), failed in zip(ids, rows, errors, strict=True)])
        mean = round(sum(0.0 if f else s for (_, s), f in zip(rows, errors, strict=True)) / n, 6)
        scores = {"factual_knowledge": {"factual_knowledge": mean, "factual_knowledge_quasi_exact": mean},
                  **(extra_scores or {}).get(name, {})}
        results.append(ModelResult(name, status=model_status(n, sum(errors)), records=n, invocations=n,
                                   errors=sum(errors), latency_p95_s=(p95 or {}).get(name, 0.5), cost_usd=0.0,
                                   scores=scores))
    chosen = choose(results, selection or {"metric": "factual_knowledge", "direction": "max"})
    summary = RunSummary(pipeline, execution_id, {r.model: r for r in results}, chosen, registry=registry,
                         status=status, gate=gate, dataset_hash="d1")
    storage.write_json(layout.summary, summary.to_dict())
    return summary, layout


def render(summary: RunSummary, layout: RunLayout) -> str:
    html = run_report_html(summary, layout)
    storage.write_text(layout.report, html, "text/html; charset=utf-8")
    return html


def right(pattern: str) -> list[tuple[str, float]]:
    """'1' right, '0' wrong, 'x' a failed call."""
    return [(None, 0.0) if c == "x" else ("yes" if c == "1" else "no", float(c)) for c in pattern]


# --- the tests ------------------------------------------------------------------------------------------

POLICY = {"objectives": [{"metric": "factual_knowledge", "weight": 0.7, "direction": "max"},
                         {"metric": "qa_accuracy.exact_match_score", "weight": 0.3, "direction": "max"}],
          "constraints": [{"metric": "error_rate", "max": 0.05}]}


def test_the_ranked_table_is_in_ranking_order_with_a_sort_control(tmp_path):
    # config order is not ranking order: "late" wins on the weighted score; "flaky" breaks a constraint
    answers = {"early": right("1111100000"), "late": right("1111111000"), "flaky": right("111111111x"),
               "mid": right("1000000000")}
    extra = {n: {"qa_accuracy": {"exact_match_score": v}} for n, v in
             (("early", 0.9), ("late", 0.8), ("flaky", 1.0), ("mid", 0.1))}
    summary, layout = make_run(tmp_path, answers, selection=POLICY, extra_scores=extra)
    ranking = [r["model"] for r in summary.selection.ranking]
    assert ranking == ["late", "early", "mid"] and "flaky" in summary.selection.excluded
    doc = page(render(summary, layout))
    table = doc.one("table", id="ranked")
    rows = table.one("tbody").all("tr")
    assert [r.attrs["data-model"] for r in rows] == ranking + ["flaky"]
    # the weighted score and each objective's value, as the selection computed them
    late = rows[0].all("td")
    assert float(late[2].attrs["data-v"]) == summary.selection.candidates["late"]["weighted"]
    assert [float(td.attrs["data-v"]) for td in late[3:5]] == [0.7, 0.8]
    assert "excluded: error_rate = 0.1 is above the maximum 0.05" in " ".join(rows[-1].text().split())
    headers = table.one("thead").all("th")
    assert [h.attrs["data-col"] for h in headers] == ["rank", "model", "weighted", "objective-0", "objective-1",
                                                      "status", "error_rate", "latency_p95_s", "cost_usd", "records"]
    assert all(h.one("button").attrs["class"] == "sort" for h in headers)  # every column sorts
    assert "sortable" in table.attrs["class"].split()
    script = doc.one("script")
    assert script.attrs["id"] == "report-js" and "table.sortable" in script.text()
    assert "Selected: late" in doc.one("div", **{"class": "verdict"}).text()


def test_the_disagreement_filter_marks_exactly_the_records_where_models_disagree(tmp_path):
    patterns = {"a": "110010x1", "b": "10011111", "c": "11001001"}
    summary, layout = make_run(tmp_path, {n: right(p) for n, p in patterns.items()})
    doc = page(render(summary, layout))
    rows = doc.one("table", id="records").one("tbody").all("tr")
    ids = [f"r{i:03d}" for i in range(8)]
    assert [r.attrs["data-id"] for r in rows] == ids
    verdicts = [{p[i] == "1" for p in patterns.values()} for i in range(8)]
    expected = {ids[i] for i, v in enumerate(verdicts) if len(v) > 1}
    assert {r.attrs["data-id"] for r in rows if "data-disagree" in r.attrs} == expected
    assert expected == {"r001", "r003", "r005", "r006"}  # r006: a failed call is wrong, against b's right one
    # each row says which models got it wrong (w<column>), for the per-model filters
    columns = [th.text() for th in doc.one("table", id="records").one("thead").all("th")][3:]
    assert columns == ["b", "c", "a"]  # in ranking order; a (1 failed call in 8: over its budget) is not ranked
    for r, i in zip(rows, range(8), strict=True):
        assert set(r.attrs["data-wrong"].split()) == {f"w{k}" for k, name in enumerate(columns)
                                                      if patterns[name][i] != "1"}
    options = {o.attrs["value"]: " ".join(o.text().split())
               for o in doc.one("select", id="record-filter").all("option")}
    assert options["disagree"] == "only where the models disagree (4)"
    assert options["w2"] == "only those a got wrong (4)"
    # each model's answer and its score, side by side; the failed call says so
    cells = rows[6].all("td", data_model="a")
    assert "(error: HTTP 500: <b>boom</b>)" in cells[0].text()


def test_every_wrong_answer_is_listed_and_counted(tmp_path):
    many = "1" * 17 + "0" * 23  # 23 wrong: more than the 15 the old page showed
    summary, layout = make_run(tmp_path, {"weak": right(many), "strong": right("1" * 37 + "0" * 3)})
    doc = page(render(summary, layout))
    sections = {d.attrs["data-model"]: d for d in doc.all("details", **{"class": "wrong"})}
    weak, strong = sections["weak"], sections["strong"]
    assert weak.attrs["data-count"] == "23" and len(weak.one("tbody").all("tr")) == 23
    assert "23 wrong of 40 scored records" in " ".join(weak.one("summary").text().split())
    assert "open" not in weak.attrs  # long: folded, with its count in view
    assert strong.attrs["data-count"] == "3" and len(strong.one("tbody").all("tr")) == 3 and "open" in strong.attrs
    listed = [tr.all("td")[0].text() for tr in weak.one("tbody").all("tr")]
    assert listed == [f"r{i:03d}" for i in range(17, 40)]


def test_a_long_run_shows_its_disagreements_first_and_counts_every_record(tmp_path):
    # 12 records, 5 shown: the 3 where the models disagree (r002, r007, r011) first, then the first others
    summary, layout = make_run(tmp_path, {"a": right("110111101110"), "b": right("111111111111")})
    doc = page(run_report_html(summary, layout, shown_up_to=5))
    rows = doc.one("table", id="records").one("tbody").all("tr")
    assert [r.attrs["data-id"] for r in rows] == ["r000", "r001", "r002", "r007", "r011"]
    assert "This page shows 5 of the 12 records" in " ".join(doc.one("p", id="records-shown").text().split())
    weak = {d.attrs["data-model"]: d for d in doc.all("details", **{"class": "wrong"})}["a"]
    assert weak.attrs["data-count"] == "3" and len(weak.one("tbody").all("tr")) == 3  # under the cap: all
    small = page(run_report_html(summary, layout, shown_up_to=2))
    weak = {d.attrs["data-model"]: d for d in small.all("details", **{"class": "wrong"})}["a"]
    assert weak.attrs["data-count"] == "3" and len(weak.one("tbody").all("tr")) == 2
    assert "The first 2 of 3; the rest are in models/a/outputs.jsonl" in " ".join(weak.text().split())
    assert page(run_report_html(summary, layout)).all("p", id="records-shown") == []  # nothing left out


def test_the_per_record_view_is_built_once_for_the_same_files_and_again_when_one_changes(tmp_path):
    # select writes the page, then register writes it again from the same files: the view is reused
    from lib.reports import run_page

    summary, layout = make_run(tmp_path, {"a": right("1100"), "b": right("1000")})
    objectives, order = run_page._objectives(summary), run_page._order(summary)
    first = run_page._records(summary, layout, objectives, order)
    assert run_page._records(summary, layout, objectives, order) is first
    assert run_page._records(summary, layout, objectives, order, shown_up_to=1) is not first
    first = run_page._records(summary, layout, objectives, order)
    # b's scores rewritten with a record now right, the file the same size: the page shows the change
    # written twice (the second takes the first's inode back, as a filesystem reuses a freed one), its mtime
    # set back to the old one (a rewrite within one tick of a coarse clock): only the count of rewrites differs
    path = Path(layout.scores("b", "factual_knowledge"))
    scores, before = storage.read_jsonl(str(path)), path.stat()
    scores[1].update(factual_knowledge=1.0, factual_knowledge_quasi_exact=1.0)
    storage.write_jsonl(str(path), scores)
    storage.write_jsonl(str(path), scores)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size and path.stat().st_mtime_ns == before.st_mtime_ns
    again = run_page._records(summary, layout, objectives, order)
    assert again is not first and first["disagree"] == 1 and again["disagree"] == 0
    assert [m["wrong"] for m in again["models"]] == [2, 2]


def test_the_records_html_is_rendered_once_per_view_and_a_changed_file_shows_on_the_page(tmp_path):
    from lib.reports import run_page

    summary, layout = make_run(tmp_path, {"a": right("1100"), "b": right("1000")})
    page = run_page.run_report_html(summary, layout)
    view = run_page._records(summary, layout, run_page._objectives(summary), run_page._order(summary))
    assert run_page._records_html(view) is run_page._records_html(view)  # register's page reuses select's
    assert run_page.run_report_html(summary, layout) == page and "1 where the models disagree" in page
    path = layout.scores("b", "factual_knowledge")
    scores = storage.read_jsonl(path)
    scores[1].update(factual_knowledge=1.0, factual_knowledge_quasi_exact=1.0)
    storage.write_jsonl(path, scores)
    assert "0 where the models disagree" in run_page.run_report_html(summary, layout)


def test_identical_charts_are_collapsed_and_constant_metrics_get_a_line(tmp_path):
    extra = {"a": {"qa_accuracy": {"f1_score": 0.4, "exact_match_score": 0.5, "quasi_exact_match_score": 0.5,
                                   "precision_over_words": 0.3}},
             "b": {"qa_accuracy": {"f1_score": 0.6, "exact_match_score": 0.2, "quasi_exact_match_score": 0.2,
                                   "precision_over_words": 0.3}}}
    summary, layout = make_run(tmp_path, {"a": right("1100"), "b": right("1000")}, extra_scores=extra)
    doc = page(render(summary, layout))
    charts = [f.attrs["data-metrics"].split() for f in doc.all("figure", **{"class": "chart"})]
    assert charts == [["factual_knowledge.factual_knowledge", "factual_knowledge.factual_knowledge_quasi_exact"],
                      ["qa_accuracy.f1_score"],
                      ["qa_accuracy.exact_match_score", "qa_accuracy.quasi_exact_match_score"]]
    assert "qa_accuracy.precision_over_words = 0.300" in doc.one("p", id="constant-metrics").text()
    first = doc.all("figure", **{"class": "chart"})[0]
    assert [b.text() for b in first.all("span", **{"class": "num"})] == ["0.500", "0.250"]


def test_the_previous_run_and_the_champion_show_what_changed(tmp_path):
    runs = tmp_path / "pipe"
    registered = Registration("succeeded", model_package_group_name="g", model="a", version=1)
    make_run(runs / "exec-1", {"a": right("1100"), "b": right("1000")}, execution_id="exec-1",
             registry=registered, p95={"a": 1.0, "b": 0.5})
    # newer, but not candidates: another pipeline's run, an interrupted run, a folder without a summary
    make_run(runs / "other", {"a": right("0000")}, pipeline="elsewhere", execution_id="other")
    make_run(runs / "cut", {"a": right("0000")}, execution_id="cut", status="interrupted")
    (runs / "empty").mkdir()
    gate = Gate("succeeded", decision="approved", approval_status="Approved", model="a",
                champion={"model": "a", "version": 1, "package": "local"},
                comparison={"metric": "factual_knowledge", "difference": 0.5, "low": 0.25, "high": 0.75, "n": 4,
                            "confidence": 0.95})
    summary, layout = make_run(runs / "exec-2", {"a": right("1111"), "b": right("0000")}, execution_id="exec-2",
                               gate=gate, registry=Registration("succeeded", model_package_group_name="g",
                                                                model="a", version=2), p95={"a": 0.5, "b": 0.5})
    for age, name in enumerate(("exec-2", "other", "cut", "exec-1")):  # exec-1 oldest, exec-2 newest
        t = 1_700_000_000 - 60 * age
        os.utime(RunLayout(str(runs / name)).summary, (t, t))
    assert previous_run(layout, "pipe").summary.execution_id == "exec-1"

    doc = page(render(summary, layout))
    vs = doc.one("table", id="vs-previous")
    a, b = (vs.one("tr", data_model=m) for m in ("a", "b"))
    better = {s.attrs["data-metric"]: float(s.attrs["data-delta"]) for s in a.all("span", **{"class": "delta better"})}
    assert better == {"factual_knowledge.factual_knowledge": 0.5, "latency_p95_s": -0.5}
    worse = {s.attrs["data-metric"]: float(s.attrs["data-delta"]) for s in b.all("span", **{"class": "delta worse"})}
    assert worse == {"factual_knowledge.factual_knowledge": -0.25}
    assert "+0.500" in a.text() and "0.500 → 1.000" in a.text() and "−0.250" in b.text()
    assert "Previous run of pipe: exec-1" in " ".join(doc.text().split())
    # the champion: version 1 of group g, registered by exec-1, against each model of this run
    champ = doc.one("table", id="vs-champion")
    deltas = {s.attrs["data-metric"]: float(s.attrs["data-delta"]) for s in champ.one("tr", data_model="b").all("span")
              if "data-delta" in s.attrs}
    assert deltas == {"factual_knowledge.factual_knowledge": -0.5, "latency_p95_s": -0.5}  # worse, faster
    assert "Champion: a, version 1, from run exec-1" in " ".join(doc.text().split())


def test_no_previous_run_and_no_champion_are_said_plainly(tmp_path):
    summary, layout = make_run(tmp_path / "pipe" / "only", {"a": right("10")})
    doc = page(render(summary, layout))
    assert doc.one("p", id="vs-previous").text() == "No earlier finished run of pipe beside this one."
    assert "No champion" in doc.one("p", id="vs-champion").text()


def test_history_lists_sibling_prefixes_in_s3(monkeypatch):
    moto = pytest.importorskip("moto")
    fake_aws(monkeypatch)
    with moto.mock_aws():
        import boto3

        boto3.client("s3").create_bucket(Bucket="runs")
        make_run("s3://runs/p/pipe/runs/e1", {"a": right("10")}, execution_id="e1")
        make_run("s3://runs/p/pipe/runs/e0", {"a": right("10")}, pipeline="elsewhere", execution_id="e0")
        _, layout = make_run("s3://runs/p/pipe/runs/e2", {"a": right("11")}, execution_id="e2")
        found = previous_run(layout, "pipe")
        assert found is not None and found.summary.execution_id == "e1"
        assert found.layout.root == "s3://runs/p/pipe/runs/e1"


XSS_ANSWER = "<script>alert('answer')</script>"
XSS_QUESTION = "<img src=x onerror=alert('question')>"


def test_model_and_dataset_text_is_escaped(tmp_path):
    answers = {"m<i>x</i>": [(XSS_ANSWER, 0.0), ("fine", 1.0)], "n": [("ok", 1.0), (None, 0.0)]}
    summary, layout = make_run(tmp_path, answers, questions=[XSS_QUESTION, "q"],
                               targets=["<script>t()</script><OR>b", "a"])
    html = render(summary, layout)
    assert html.count("<script") == 1 and '<script id="report-js">' in html  # only the page's own
    assert "<img" not in html and "<i>" not in html and "<b>boom" not in html
    assert "&lt;script&gt;alert(&#39;answer&#39;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(&#39;question&#39;)&gt;" in html
    assert "&lt;script&gt;t()&lt;/script&gt;" in html and "m&lt;i&gt;x&lt;/i&gt;" in html
    doc = page(html)  # what a reader sees is the text itself
    assert XSS_ANSWER in doc.one("table", id="records").text()


def test_the_page_survives_a_run_without_files(tmp_path):
    summary = RunSummary("pipe", "e", {"w": ModelResult("w", records=3, scores={"factual_knowledge": {
        "factual_knowledge": 0.5}})}, choose([ModelResult("w", records=3, errors=0, scores={
            "factual_knowledge": {"factual_knowledge": 0.5}})], {"metric": "factual_knowledge"}))
    doc = page(run_report_html(summary, RunLayout(str(tmp_path / "nothing-here"))))
    assert doc.one("table", id="ranked").one("tbody").one("tr").attrs["data-model"] == "w"
    assert "No model's answers are in this run's folder." in doc.text()


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs chromium (apt-get install chromium)")
def test_headless_chromium_renders_the_page_and_runs_its_script(tmp_path):
    chromium = shutil.which("chromium")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}"]
    patterns = {"a": "1101" * 10, "b": "1001" * 10, "c": "0001" * 10}
    summary, layout = make_run(tmp_path / "run", {n: right(p) for n, p in patterns.items()})
    render(summary, layout)
    url = "file://" + layout.report
    for width in (1400, 1024):
        shot = tmp_path / f"report-{width}.png"
        subprocess.run([chromium, *flags, f"--screenshot={shot}", f"--window-size={width},1000", url],
                       capture_output=True, timeout=120, check=False)
        assert shot.exists(), f"no screenshot at {width} px"
        assert png_size(shot) == (width, 1000)
        assert shot.stat().st_size > 20_000, "a blank page"  # a white 1400x1000 PNG is a few KB

    def dom(fragment: str) -> Node:
        out = subprocess.run([chromium, *flags, "--dump-dom", url + fragment], capture_output=True, text=True,
                             timeout=120, check=False).stdout
        return page(out)

    # the inline script runs: sorting by a column, and the disagreement filter
    ranked = [r["model"] for r in summary.selection.ranking]
    rows = dom("#sort=weighted&order=asc").one("table", id="ranked").one("tbody").all("tr")
    assert [r.attrs["data-model"] for r in rows] == ranked[::-1]
    rows = dom("#filter=disagree").one("table", id="records").one("tbody").all("tr")
    shown = [r.attrs["data-id"] for r in rows if "hidden" not in r.attrs]
    assert shown and shown == [r.attrs["data-id"] for r in rows if "data-disagree" in r.attrs]
    assert len(shown) == 20  # the first two of every four records: c, or b, differs from a

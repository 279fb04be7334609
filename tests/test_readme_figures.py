"""README's "Benchmarks" figures are what `make bench` measured: the table is the one bench/run.py makes
from bench/results.json, and the section states no figure of its own beside it."""

from __future__ import annotations

import json
import re
from pathlib import Path

from bench.run import README_HEADING, TABLE_END, TABLE_START, readme_section_table, readme_table

ROOT = Path(__file__).resolve().parent.parent
NUMBER = re.compile(r"\d[\d,.]*")


def results() -> dict:
    return json.loads((ROOT / "bench" / "results.json").read_text())


def section() -> str:
    readme = (ROOT / "README.md").read_text()
    assert README_HEADING in readme
    return readme.split(README_HEADING, 1)[1].split("\n## ", 1)[0]


def test_readme_table_is_the_one_made_from_bench_results():
    table = readme_section_table((ROOT / "README.md").read_text())
    assert table is not None, "README's Benchmarks section has no generated table"
    assert table == readme_table(results()), (
        "README's Benchmarks table differs from bench/results.json: run `python -m bench.run --write-readme`")


def test_the_table_says_when_and_where_it_was_measured():
    data = results()
    table = readme_table(data)
    dates = {v["date"] for v in data.values() if isinstance(v, dict) and "date" in v}
    assert dates and all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", d) for d in dates)
    assert min(dates) in table and f"{data['machine']['cores']}-core" in table
    for part in ("engine", "orchestration", "memory", "scoring", "server", "definition"):
        assert part in data, f"bench/results.json lacks {part}: README's table would lose its row"


def test_every_figure_in_the_section_is_in_the_table():
    text = section()
    generated = text.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0]
    prose = text.replace(TABLE_START + generated + TABLE_END, "")
    prose = re.sub(r"`[^`]*`", "", prose)  # commands and file names (`--engine-models 3`, `tests/...`)
    stray = [n for n in NUMBER.findall(prose) if n.strip(".,") not in generated]
    assert stray == [], f"figures in README's Benchmarks prose that bench/results.json does not give: {stray}"


def test_a_changed_figure_changes_the_table():
    data = results()
    changed = json.loads(json.dumps(data))
    changed["orchestration"]["ours"]["seconds"] += 1.5
    assert readme_table(changed) != readme_table(data)

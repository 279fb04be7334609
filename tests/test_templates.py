"""The pages' templates are compiled once and kept in the tool's cache folder (#16 goal 2: 0.16 s a run)."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import ROOT
from jinja2.bccache import bc_magic

from lib.reports import templates

SOURCE = {"page": "<p>{{ name }} scored {{ '%.2f' % score }}</p>"}


def counting(env):
    """``env`` with its compiles counted (Jinja's own method, wrapped on this one instance)."""
    calls = []
    compile_ = env.compile

    def counted(*args, **kwargs):
        calls.append(args[1] if len(args) > 1 else kwargs.get("name"))
        return compile_(*args, **kwargs)

    env.compile = counted
    return env, calls


def test_a_template_is_compiled_once_then_loaded_from_the_cache(tmp_path):
    first, compiled = counting(templates.environment(SOURCE, tmp_path))
    assert first.get_template("page").render(name="<m>", score=0.5) == "<p>&lt;m&gt; scored 0.50</p>"
    assert compiled == ["page"] and len(list(tmp_path.glob("*.cache"))) == 1
    # another process (a new environment) renders the same without compiling
    second, compiled_again = counting(templates.environment(SOURCE, tmp_path))
    assert second.get_template("page").render(name="m", score=1) == "<p>m scored 1.00</p>"
    assert compiled_again == []


def test_a_changed_template_is_compiled_again_not_served_stale(tmp_path):
    templates.environment(SOURCE, tmp_path).get_template("page").render(name="m", score=1)
    changed, compiled = counting(templates.environment({"page": "<b>{{ name }}</b>"}, tmp_path))
    assert changed.get_template("page").render(name="m") == "<b>m</b>"
    assert compiled == ["page"]


def test_a_cache_that_cannot_be_written_only_means_compiling_again(tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    env, compiled = counting(templates.environment(SOURCE, blocked / "cache"))
    assert env.get_template("page").render(name="m", score=0) == "<p>m scored 0.00</p>"
    assert compiled == ["page"] and blocked.read_text() == "not a directory"


def test_a_damaged_cache_file_is_compiled_again_and_replaced(tmp_path):
    templates.environment(SOURCE, tmp_path).get_template("page").render(name="m", score=1)
    (cached,) = tmp_path.glob("*.cache")
    good = cached.read_bytes()
    header = len(bc_magic)  # Jinja's version mark, then the source's checksum (pickled), then the code
    for damaged in (good[:header + 3], bc_magic + b"not a pickle", good[:len(good) // 2], b""):
        cached.write_bytes(damaged)
        env, compiled = counting(templates.environment(SOURCE, tmp_path))
        assert env.get_template("page").render(name="m", score=1) == "<p>m scored 1.00</p>"
        assert compiled == ["page"] and cached.read_bytes() == good  # replaced by a whole one


def test_a_folder_others_can_write_to_is_not_used(tmp_path):
    # its files are code the process runs: as Jinja asks of the folder it picks itself
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    for _ in range(2):
        env, compiled = counting(templates.environment(SOURCE, shared))
        assert env.get_template("page").render(name="m", score=0) == "<p>m scored 0.00</p>"
        assert compiled == ["page"]
    assert list(shared.iterdir()) == []
    assert not (tmp_path / "later").exists()
    templates.environment(SOURCE, tmp_path / "later")  # made on first use, not when the pages import
    assert not (tmp_path / "later").exists()


IN_HOME = """
from lib.reports import pages
print("<td>0.5000</td>" in pages.algorithm_html("m", "d", {"name": "Mine", "eval_name": "mine"},
                                             {"scores": {"s": 0.5}, "per_record": [], "notes": []}, "$x"))
"""


def test_the_pages_keep_theirs_in_the_tools_cache_folder(tmp_path):
    done = subprocess.run([sys.executable, "-c", IN_HOME], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
    assert len(list((tmp_path / ".cache" / "llm-eval-pipelines" / "jinja2").glob("*.cache"))) == 1

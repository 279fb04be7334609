"""Property: whatever the two config files hold, loading them either succeeds or raises UserError with one
paragraph, within a second. Never a traceback, a hang or a long run. Three sources of input: YAML-ish
text, YAML fragments that stress the loader (anchors, aliases, merges, tags, nesting), and valid configs
with one value or key replaced by something hostile."""

from __future__ import annotations

import atexit
import copy
import math
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import yaml
from conftest import base_config, write_dataset
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lib.config import load_config
from lib.config.load import load_pipeline_config
from lib.errors import UserError

FOLDER = Path(tempfile.mkdtemp(prefix="llm-eval-fuzz-"))
atexit.register(shutil.rmtree, FOLDER, ignore_errors=True)
write_dataset(FOLDER / "eval.jsonl")
# a fixed, fast run by default; CONFIG_FUZZ_EXAMPLES=5000 for a longer, random hunt
EXAMPLES = int(os.environ.get("CONFIG_FUZZ_EXAMPLES", "0"))
SETTINGS = settings(max_examples=EXAMPLES or 200, deadline=1000, derandomize=not EXAMPLES, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class _Hang(Exception):
    pass


def _alarm(*_):
    raise _Hang("took more than 5 seconds")


def check(text: str, *, pipeline: bool = False) -> None:
    """Load ``text`` as the evaluation config (or the settings file): a result or a UserError, in < 1 s."""
    path = FOLDER / ("pipeline_config.yaml" if pipeline else "config.yaml")
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(5)  # a hang fails the test instead of stopping the suite
    started = time.perf_counter()
    try:
        load_pipeline_config(path) if pipeline else load_config(path, None)
    except UserError as exc:
        assert "\n" not in str(exc), str(exc)  # one paragraph
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert time.perf_counter() - started < 1.0


YAML_ALPHABET = st.sampled_from(list("abcxyz019 -:,[]{}&*!|>'\"#?<%@`\n\t.~=") + [
    "\n  ", "\n- ", ": ", "- ", "&a ", "*a", "<<: ", "!!set ", "!!binary ", "!!python/name:os.system", ".inf",
    ".nan", "yes", "null", "2.10", "1e999", "---\n", "...\n", "\x00", "\x85", "\ufeff", "é", "\U0001F600"])

FRAGMENTS = st.sampled_from([
    "pipeline: {name: p}\n", "models: []\n", "models:\n  - name: m\n    model_id: x\n", "dataset: {}\n",
    "x-d: &d {model_id: x, name: m}\n", "models: [{<<: *d}]\n", "a: &a [1, 2]\n", "b: [*a, *a, *a]\n",
    "c: &c [*b, *b, *b, *b]\n", "d: [*c, *c, *c, *c, *c, *c]\n", "e: &e {x: 1}\n", "f: {<<: [*e, *e]}\n",
    "g: " + "[" * 70 + "]" * 70 + "\n", "h: !!set {a, b}\n", "? [a, b]\n: 1\n", "1: 2\n", "~: x\n",
    "i: 2024-01-01\n", "j: " + "9" * 40 + "\n", "k: &k\n  <<: *k\n", "l: *undefined\n", "m: &m 1\nn: &m 2\n",
    "o: !!omap [a: 1]\n", "p: \"\\x00\"\n", "q: |\n  text\n", "r: >-\n  folded\n", "s:\n\t- tab\n",
    "t: 'unterminated\n", "u: [1, 2\n", "v: {a: 1, a: 2}\n", "w: .inf\n", "y: -.nan\n",
])

HOSTILE_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40),
    st.sampled_from(["$model_inputs", "$feature", "$$", "$", "${x}", "s3://", "s3://b", "https://x/y", "/dev/zero",
                     ".", "..", "~", "ftp://h/", "localhost:80", "PROMPT_PLACEHOLDER", "[0].x[", "(" * 300,
                     "cron(0 25 ? * MON *)", "aws:x", "x" * 300, "smollm2-135m", "eval.jsonl", "a\x00b",
                     "x/" * 3000, "/proc/self/mem", "~root/x", "s3://bucket/" + "k" * 2000]),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=8), st.integers(), max_size=3),
)

PATHS = [
    ("pipeline", "name"), ("dataset", "input_data_location"), ("dataset", "model_input_key"),
    ("dataset", "num_records"),
    ("models", 0, "name"), ("models", 0, "model_id"), ("models", 0, "provider"), ("models", 0, "model_version"),
    ("models", 0, "endpoint_name"), ("models", 0, "deployment_config", "num_instances"),
    ("models", 0, "evaluation_config", "prompt_template"), ("models", 0, "evaluation_config", "output"),
    ("models", 0, "evaluation_config", "content_template"), ("models", 0, "evaluation_config", "timeout_seconds"),
    ("models", 0, "evaluation_config", "custom_attributes"), ("models", 0, "evaluation_config", "max_concurrency"),
    ("models", 0, "finetuning"), ("models", 0, "endpoint_url"), ("algorithms", 0, "algorithm"),
    ("algorithms", 0, "target_output_delimiter"), ("algorithms", 0, "config"), ("selection",), ("models",),
]


def _set(data: dict, path: tuple, value: object) -> None:
    node = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


@SETTINGS
@given(st.lists(YAML_ALPHABET, max_size=60).map("".join))
def test_any_text_loads_or_is_refused_cleanly(text):
    check(text)


@SETTINGS
@given(st.lists(FRAGMENTS, min_size=1, max_size=6).map("".join))
def test_yaml_fragments_load_or_are_refused_cleanly(text):
    check(text)


@SETTINGS
@given(st.sampled_from(PATHS), HOSTILE_VALUES, st.sampled_from(["replace", "extra-key", "provider"]))
def test_a_config_with_one_hostile_value_loads_or_is_refused_cleanly(path, value, how):
    data = copy.deepcopy(base_config(1))
    if how == "replace":
        _set(data, path, value)
    elif how == "extra-key":
        _set(data, path[:-1] + (str(value)[:20],), value) if len(path) > 1 else data.update({str(value)[:20]: 1})
    else:  # the same value under another provider, whose own checks then run
        data["models"][0].update(provider="local" if isinstance(value, str) else "openai", endpoint_url="http://h/v1")
        _set(data, path, value)
    check(yaml.safe_dump(data, allow_unicode=True))


@SETTINGS
@given(st.sampled_from([("sagemaker", k) for k in (
    "region", "bucket", "tags", "schedule", "volume_size", "max_retries", "environment", "subnets",
    "keep_alive_period_in_seconds", "role_arn", "instance_types", "sweep_on_failure")] + [
    ("local", k) for k in ("output_dir", "max_workers", "model_cache_dir")]), HOSTILE_VALUES)
def test_a_settings_file_with_one_hostile_value_loads_or_is_refused_cleanly(key, value):
    section, name = key
    check(yaml.safe_dump({section: {name: value}}, allow_unicode=True), pipeline=True)


def test_the_strategies_reach_the_hostile_cases():
    """The generators are not vacuous: the fragments include a bomb-like nest and floats reach inf/nan."""
    assert any("*c, *c" in f for f in FRAGMENTS.elements)
    assert math.isinf(float(yaml.safe_load("w: .inf")["w"]))

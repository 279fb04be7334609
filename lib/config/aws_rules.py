"""AWS's rules for what this tool names and tags, checked at validate time rather than when AWS refuses
them half-way through a run. Each check returns what is wrong as one sentence, or None.

Names the tool derives (the formats are the ones `lib.aws.failure_rule`, `pipelines/cli/sagemaker_cmds`
and `lib.config.load` use; tests/test_hostile_config.py pins that they agree):

| name                              | AWS limit | made by                          |
|-----------------------------------|-----------|----------------------------------|
| ``<pipeline>-models``             | 63        | model package group (register)   |
| ``<pipeline>-schedule``           | 64        | EventBridge Scheduler (schedule) |
| ``<pipeline>-sweep``              | 256       | the sweep pipeline               |
| ``<pipeline>-sweep-on-failure``   | 64        | the EventBridge rule             |
| ``llm-eval-<model>``              | 63        | a SageMaker endpoint             |

``<model>`` in an AWS name is the model's name with each underscore as a hyphen (`lib.aws.aws_name`).

Training jobs are named by SageMaker: a pipeline step's job gets a service-made name (the SDK drops
``TrainingJobName`` from the definition), and a JumpStart fine-tune's by the SDK's ``name_from_base``,
which keeps within 63 characters; so no training job name is derived from the config.
"""

from __future__ import annotations

import re
import unicodedata

MODEL_PACKAGE_GROUP = ("{pipeline}-models", 63, "the model package group name")
SCHEDULE = ("{pipeline}-schedule", 64, "the EventBridge schedule name (used by `schedule`)")
SWEEPER = ("{pipeline}-sweep", 256, "the sweep pipeline's name (sagemaker.sweep_on_failure)")
SWEEP_RULE = ("{pipeline}-sweep-on-failure", 64, "the EventBridge rule name (sagemaker.sweep_on_failure)")
ENDPOINT = ("llm-eval-{model}", 63, "the SageMaker endpoint name")

TAG_KEY_MAX, TAG_VALUE_MAX = 128, 256
TAGS_MAX = 50  # per resource
OWN_TAGS = 3  # llm-eval-pipelines:pipeline, :execution, :model
CUSTOM_ATTRIBUTES_MAX = 1024


def too_long(fmt: tuple[str, int, str], source: str, **parts: str) -> str | None:
    """What is wrong when the name ``fmt`` makes from ``parts`` exceeds its AWS limit; ``source`` is the key
    the variable part came from."""
    template, limit, what = fmt
    name = template.format(**parts)
    if len(name) <= limit:
        return None
    (value,) = parts.values()
    room = limit - (len(name) - len(value))
    return (f"{what}, '{name[:40]}...', made from {source}, is {len(name)} characters; AWS allows {limit}: "
            f"shorten {source} to at most {room} characters")


_TAG_PUNCTUATION = set("_.:/=+-@")


def _tag_chars_ok(text: str) -> bool:
    """Letters, digits, spaces and ``_ . : / = + - @`` (AWS's ``[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]``)."""
    return all(c in _TAG_PUNCTUATION or unicodedata.category(c)[0] in "LNZ" for c in text)


def tag_problem(key: str, value: str) -> str | None:
    if not key:
        return "a tag key must not be empty"
    if len(key) > TAG_KEY_MAX:
        return f"the tag key '{key[:40]}...' is {len(key)} characters; AWS allows {TAG_KEY_MAX}"
    if key.lower().startswith("aws:"):
        return f"the tag key '{key}' starts with 'aws:', which AWS reserves for its own tags"
    if key.startswith("llm-eval-pipelines:"):
        return f"the tag key '{key}' is one this tool sets itself (llm-eval-pipelines:...); choose another"
    if not _tag_chars_ok(key):
        return (f"the tag key '{key[:60]}' has a character AWS refuses: use letters, digits, spaces and "
                "_ . : / = + - @")
    if len(value) > TAG_VALUE_MAX:
        return f"the value of tag '{key}' is {len(value)} characters; AWS allows {TAG_VALUE_MAX}"
    if not _tag_chars_ok(value):
        return (f"the value of tag '{key}' has a character AWS refuses: use letters, digits, spaces and "
                "_ . : / = + - @")
    return None


# EventBridge cron: minutes hours day-of-month month day-of-week year
_MONTHS = {m: i for i, m in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split(), 1)}
_DAYS = {d: i for i, d in enumerate("SUN MON TUE WED THU FRI SAT".split(), 1)}
_FIELDS = [  # (name, low, high, names)
    ("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS), ("day of week", 1, 7, _DAYS), ("year", 1970, 2199, {}),
]
_PLURAL = ["minutes", "hours", "days of the month", "months", "days of the week", "years"]


def _cron_value(text: str, index: int) -> int | None:
    name, low, high, names = _FIELDS[index]
    if text.upper() in names:
        return names[text.upper()]
    if not text.isdigit() or len(text) > 4:
        return None
    return int(text)


def _cron_item(item: str, index: int) -> str | None:
    name, low, high, names = _FIELDS[index]
    span = f"{_PLURAL[index]} are {low}-{high}" + (f" or {next(iter(names))}-{list(names)[-1]}" if names else "")
    if index == 2 and re.fullmatch(r"L|LW|L-\d{1,2}|\d{1,2}W", item, re.IGNORECASE):
        digits = re.sub(r"\D", "", item)
        if digits and not (1 <= int(digits) <= 31 if item.upper().endswith("W") else int(digits) <= 30):
            return f"'{item}' is out of range in the day of month"
        return None
    last = re.fullmatch(r"([A-Za-z]{3}|\d)?(L|#[1-5])", item) if index == 4 else None
    if last:  # L (Saturday), 5L (the last Thursday), 6#3 (the third Friday)
        if last.group(1) and _cron_value(last.group(1), index) not in range(low, high + 1):
            return f"'{item}': {span}"
        return None
    base, slash, step = item.partition("/")
    if slash:
        if not step.isdigit() or not 1 <= int(step) <= high:
            return f"'{item}': the step after '/' must be a whole number from 1 to {high}"
    if base == "*":
        return None
    ends = base.split("-")
    if len(ends) > 2 or not all(ends):
        return f"'{item}' is not a {name}: {span}"
    for end in ends:
        value = _cron_value(end, index)
        if value is None:
            return f"'{end}' is not a {name}: {span}"
        if not low <= value <= high:
            return f"{name} '{end}' is out of range: {span}"
    return None


def cron_problem(fields: list[str]) -> str | None:
    """What is wrong with the six fields of an EventBridge ``cron(...)``, or None."""
    for index, field in enumerate(fields):
        if field == "?":
            if index not in (2, 4):
                return f"'?' is allowed only in the day of month or the day of week, not the {_FIELDS[index][0]}"
            continue
        for item in field.split(","):
            problem = _cron_item(item, index)
            if problem:
                return problem
    return None

"""Load, validate and normalise the two config files.

`load_config` is the only door: YAML (safe) -> JSON Schema -> checks of meaning -> one normalised,
JSON-serialisable dict per file. Every problem raises ConfigError naming file, YAML path and line.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lib import scorers
from lib.aws import aws_name, derived_endpoint_name
from lib.config import aws_rules, data_files, sagemaker_defaults, schema, tracking
from lib.config.schema_errors import check_schema
from lib.config.yaml_loader import LoadedYaml, load_yaml
from lib.engine.invokers import PLACEHOLDER
from lib.errors import ConfigError, did_you_mean
from lib.providers import BUILTIN, ProviderLookupError, provider_class
from lib.providers.base import ProviderConfigError

MODEL_NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,54}$")  # as AWS names carry it (`aws_name`)
CONFIG_MODEL_NAME_RE = re.compile(r"^[a-zA-Z0-9]([-_]*[a-zA-Z0-9]){0,54}$")  # as written: the sample allows `_`
ENDPOINT_NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
PIPELINE_NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,255}$")
ROLE_ARN_RE = sagemaker_defaults.ROLE_ARN_RE
_CRON_RE = re.compile(r"^cron\((\S+ ){5}\S+\)$")
_RATE_RE = re.compile(r"^rate\((1 (minute|hour|day)|([2-9]|[1-9]\d+) (minutes|hours|days))\)$")
DEFAULT_PIPELINE_CONFIG = "pipeline_config.yaml"

# what a model's evaluation_config defaults to: the Hugging Face container contract the local server
# also speaks (a provider adds its own default inference parameters)
_INVOKE_DEFAULTS = {
    "output": "[0].generated_text",
    "content_template": PLACEHOLDER,
    "inference_parameters": {},
    "prompt_template": "$model_input",
}


@dataclass(frozen=True)
class RunConfig:
    """Both configs, validated and normalised. ``evaluation`` and ``settings`` are plain JSON data."""

    evaluation: dict[str, Any]
    settings: dict[str, Any]
    config_path: str
    pipeline_config_path: str | None

    @property
    def pipeline_name(self) -> str:
        return self.evaluation["pipeline"]["name"]

    @property
    def models(self) -> list[dict[str, Any]]:
        return self.evaluation["models"]

    # one line each, for stderr: what was read or skipped and why (a sibling pipeline_config.yaml that is an
    # evaluation config, a placeholder in the SageMaker defaults file)
    notes: tuple[str, ...] = ()


def is_remote_uri(value: str) -> bool:
    return "://" in value


def validate_eventbridge_expression(expr: str) -> str | None:
    """None if ``expr`` is a valid EventBridge schedule expression, else what is wrong."""
    if _RATE_RE.match(expr):
        return None
    if expr.startswith("rate("):
        return ("a rate looks like 'rate(1 day)' or 'rate(12 hours)': a positive whole number and "
                "minute(s)/hour(s)/day(s), singular only for 1")
    if _CRON_RE.match(expr):
        fields = expr[5:-1].split()
        if fields[2] != "?" and fields[4] != "?":
            return "in an EventBridge cron, day-of-month or day-of-week must be '?'"
        return aws_rules.cron_problem(fields)
    return "a schedule is 'cron(min hour day-of-month month day-of-week year)' or 'rate(N unit)'"


def _resolve(value: str, base: Path | str) -> str:
    """``value`` as a location: as written when it is a URI, else under ``base`` (a folder, or an S3 prefix
    from --input-data-path; an absolute or ``~`` path stays a local path)."""
    if is_remote_uri(value):
        return value
    if isinstance(base, str) and not value.startswith(("/", "~")):
        import posixpath

        bucket, _, prefix = base[len("s3://"):].partition("/")
        key = posixpath.normpath(posixpath.join(prefix, value))
        return f"s3://{bucket}/{key}" if not key.startswith("..") else f"s3://{bucket}/{prefix}/{value}"
    base = Path.cwd() if isinstance(base, str) else base
    path = Path(os.path.expanduser(value))
    try:
        return str(path if path.is_absolute() else (base / path).resolve())
    except (OSError, ValueError):  # a NUL byte, a loop of links: the checks of the value say what is wrong
        return str(base / path)


def _check_under_prefix(value: str, uri: str, folder_ok: bool) -> None:
    """A relative path placed under an s3:// --input-data-path: the S3 location it makes is one this tool
    reads, inside the prefix's bucket. (S3 is not read here: no AWS call is made before a config validates.)"""
    if is_remote_uri(value) or not is_remote_uri(uri):
        return
    if "/../" in uri or uri.endswith("/.."):
        raise data_files.DataFileError(f"'{value}' goes above the bucket of --input-data-path ({uri})")
    data_files.check_location(uri, folder_ok=folder_ok)


def _check_dataset(doc: LoadedYaml, where: list, value: str, uri: str, input_key: str,
                   target_key: str) -> int | None:
    """The dataset is a local JSON Lines file or s3://bucket/key; a local one is read (a line at a time) and
    every record holds text under both keys. Its record count (None for S3, which is not read here)."""
    try:
        data_files.check_location(value, folder_ok=False)
        _check_under_prefix(value, uri, folder_ok=False)
        if not is_remote_uri(uri):
            return data_files.check_dataset(Path(uri), input_key, target_key)
    except data_files.DataFileError as exc:
        raise doc.error(where, str(exc)) from None
    return None


def _check_data(doc: LoadedYaml, where: list, value: str, uri: str, what: str) -> None:
    """Fine-tune data: a local file or folder of JSON Lines, or s3://bucket/prefix; local files are read."""
    try:
        data_files.check_location(value, folder_ok=True)
        _check_under_prefix(value, uri, folder_ok=True)
        if not is_remote_uri(uri):
            data_files.check_jsonl_files(Path(uri), what)
    except data_files.DataFileError as exc:
        raise doc.error(where, str(exc)) from None


def _short(value: str, limit: int = 60) -> str:
    return value if len(value) <= limit else value[: limit - 3] + "..."


_PLACEHOLDERS = ("model_input", "feature")  # `$feature` is the AWS sample's name for the same thing


def _prompt_template(doc: LoadedYaml, where: list, template: str) -> str:
    """``template`` with ``$feature`` written as ``$model_input``. Any other ``$name`` is refused: it would
    be left in every prompt as typed (``$model_inputs``), and fmeval refuses a ``$`` that starts no name."""
    from string import Template

    found = False
    for match in Template.pattern.finditer(template):
        name = match.group("named") or match.group("braced")
        if match.group("invalid") is not None:
            raise doc.error(where, f"'{_short(template[match.start():match.start() + 12])}' has a '$' that starts "
                            "no placeholder: write $$ for a dollar sign, $model_input where the input goes")
        if name and name not in _PLACEHOLDERS:
            did = did_you_mean(f"${name}", [f"${p}" for p in _PLACEHOLDERS])
            raise doc.error(where, f"'${_short(name)}' is not a placeholder{did}: the prompt_template takes "
                            "$model_input (or the sample's $feature) where each record's input goes; write $$ "
                            "for a dollar sign")
        found = found or bool(name)
    if not found:
        raise doc.error(where, "the prompt_template must contain '$model_input' (or '$feature'), where each "
                        "record's input goes")

    def placeholder(match: Any) -> str:
        return "$model_input" if (match.group("named") or match.group("braced")) == "feature" else match.group(0)

    return Template.pattern.sub(placeholder, template)


def _contains_placeholder(value: Any) -> bool:
    if isinstance(value, str):
        return PLACEHOLDER in value
    if isinstance(value, list):
        return any(_contains_placeholder(v) for v in value)
    if isinstance(value, dict):
        return any(_contains_placeholder(v) for v in value.values())
    return False


def _custom_attributes(value: Any) -> str | None:
    if value in (None, {}, ""):
        return None
    if isinstance(value, str):
        return value
    return ",".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in value.items())


def _normalise_model(doc: LoadedYaml, i: int, raw: dict, base: Path | str, pipeline: str,
                     local_base: Path) -> dict[str, Any]:
    """``base``: where relative data paths go (a folder or an S3 prefix); ``local_base``: the folder a
    provider resolves its own local paths against (a local model)."""
    where = ["models", i]
    name = raw["name"]
    if not name.strip():
        raise doc.error(where + ["name"], "a model name must not be empty")
    if not CONFIG_MODEL_NAME_RE.match(name):
        raise doc.error(
            where + ["name"],
            f"'{_short(name)}' cannot name SageMaker steps and endpoints: use 1-55 letters, digits, hyphens and "
            "underscores, starting and ending with a letter or digit (no dots or spaces; an underscore becomes a "
            "hyphen in AWS names)",
        )
    provider_key = _provider_key(raw)
    provider = raw.get(provider_key, "jumpstart")
    cls = provider_class(provider)  # resolvable: checked before the schema
    if cls.sagemaker_endpoint and not raw.get("endpoint_name"):
        problem = aws_rules.too_long(aws_rules.ENDPOINT, f"models[{i}].name", model=aws_name(name))
        if problem:
            raise doc.error(where + ["name"], problem + " (or give the model an endpoint_name)")
    endpoint_name = raw.get("endpoint_name") or derived_endpoint_name(name)
    if not ENDPOINT_NAME_RE.match(endpoint_name):
        raise doc.error(
            where + ["endpoint_name"],
            f"'{_short(endpoint_name)}' is not a valid SageMaker endpoint name: 1-63 letters, digits and hyphens",
        )
    for key, purpose in cls.required_keys.items():
        if not raw.get(key):
            raise doc.error(where, f"provider '{provider}' needs '{key}', {purpose}")

    ev = {**_INVOKE_DEFAULTS, "inference_parameters": dict(cls.default_inference_parameters)}
    given = raw.get("evaluation_config") or {}
    ev.update({k: v for k, v in given.items() if v is not None})
    ev_where = where + ["evaluation_config"]
    ev["prompt_template"] = _prompt_template(doc, ev_where + ["prompt_template"], ev["prompt_template"])
    if cls.needs_template and not _contains_placeholder(ev["content_template"]):
        raise doc.error(ev_where + ["content_template"],
                        f"the content_template must contain '{PLACEHOLDER}', where the prompt goes")
    if cls.needs_template:
        import jmespath
        from jmespath.exceptions import JMESPathError

        try:
            jmespath.compile(ev["output"])
        except JMESPathError as exc:
            reason = str(exc).splitlines()[0]
            raise doc.error(ev_where + ["output"],
                            f"'{_short(ev['output'])}' is not a valid JMESPath expression ({reason})") from None
        except RecursionError:
            raise doc.error(ev_where + ["output"], "the JMESPath expression is nested too deeply") from None
    ev["custom_attributes"] = _custom_attributes(ev.get("custom_attributes"))
    attributes = ev["custom_attributes"] or ""
    if len(attributes) > aws_rules.CUSTOM_ATTRIBUTES_MAX or not attributes.isascii():
        raise doc.error(ev_where + ["custom_attributes"],
                        f"custom attributes are sent as one header of at most {aws_rules.CUSTOM_ATTRIBUTES_MAX} "
                        f"ASCII characters; these are {len(attributes):,} characters"
                        + ("" if attributes.isascii() else " and not all ASCII"))
    ev["inference_parameters"] = ev.get("inference_parameters") or {}

    deployment = {"instance_type": "ml.g5.2xlarge", "num_instances": 1, **(raw.get("deployment_config") or {})}

    finetune = None
    ft_key = "finetuning" if "finetuning" in raw else "finetuning_config"
    if raw.get(ft_key) is not None:
        ft = raw[ft_key]
        if not ft.get("train_data_path"):
            raise doc.error(where + [ft_key], "a fine-tune block needs 'train_data_path', the training data")
        if not cls.finetunes():
            raise doc.error(where + [ft_key], f"provider '{provider}' cannot be fine-tuned by this tool")
        train = _resolve(ft["train_data_path"], base)
        _check_data(doc, where + [ft_key, "train_data_path"], ft["train_data_path"], train, "the training data")
        validation = _resolve(ft["validation_data_path"], base) if ft.get("validation_data_path") else None
        if validation:
            _check_data(doc, where + [ft_key, "validation_data_path"], ft["validation_data_path"], validation,
                        "the validation data")
        params = {"instance_type": "ml.g5.12xlarge", "num_instances": 1, "epoch": 1,
                  **(ft.get("parameters") or {})}
        finetune = {"train_data_uri": train, "validation_data_uri": validation, "parameters": params}

    model = {
        "name": name,
        "provider": provider,
        "model_id": raw["model_id"],
        "model_version": str(raw.get("model_version", "*")),
        "endpoint_name": endpoint_name,
        "region": raw.get("region"),
        **{key: raw.get(key) for key in cls.config_schema},
        "deployment": deployment,
        "invoke": ev,
        "finetune": finetune,
        "register": raw.get("register_config"),
        "creates_endpoint": bool(cls.deploys),  # only what creates something gets a cleanup step
        # None (not said): delete what this run created; True: also an endpoint that existed before
        "cleanup_endpoint": raw.get("cleanup_endpoint"),
        "pipeline": pipeline,
    }
    if ev.get("invocation") == "batch_transform" and not cls.batch_transform:
        able = ", ".join(sorted(n for n in BUILTIN if provider_class(n).batch_transform)) or "none"
        raise doc.error(where + ["evaluation_config", "invocation"],
                        f"provider '{provider}' cannot run a batch transform job (no SageMaker model of its own to "
                        f"run one with); providers that can: {able}. Leave out `invocation` to call it per record")
    try:
        cls.validate(model, local_base)
    except ProviderConfigError as exc:
        inner = list(exc.where)
        if inner[:1] == ["finetuning"]:  # a provider names the block as `finetuning`; the sample's is another
            inner[0] = ft_key
        raise doc.error(where + inner, str(exc)) from None
    return model


def _base_candidate(doc: LoadedYaml, i: int, raw: dict, model: dict[str, Any], base: Path | str, pipeline: str,
                    local_base: Path) -> dict[str, Any]:
    """``evaluate_base_model: true`` on a fine-tuned model: its base, as the candidate ``<name>-base`` (the same
    provider, model and request, no fine-tuning, an endpoint of its own), so the plan and both executors
    treat it as any other model."""
    where = ["models", i, "evaluate_base_model"]
    if not model["finetune"]:
        raise doc.error(where, "only a fine-tuned model has a base to evaluate beside it: this model has no "
                        "finetuning block (to evaluate a model as it is, list it as a model of its own)")
    name = f"{model['name']}-base"
    dropped = ("finetuning", "finetuning_config", "evaluate_base_model", "register_config", "endpoint_name")
    try:
        candidate = _normalise_model(doc, i, {**{k: v for k, v in raw.items() if k not in dropped}, "name": name},
                                     base, pipeline, local_base)
    except ConfigError as exc:
        raise doc.error(where, f"the base model's candidate '{name}': {exc.message}") from None
    candidate["base_of"] = model["name"]
    return candidate


_FMEVAL_KEYS = ("algorithm", "module", "config", "target_output_delimiter", "num_records")


def _schema_at(path: list, subschema: dict[str, Any]) -> dict[str, Any]:
    """A schema of the whole document that applies ``subschema`` at ``path`` only (errors keep their line)."""
    for part in reversed(path):
        if isinstance(part, int):
            subschema = {"type": "array", "prefixItems": [True] * part + [subschema]}
        else:
            subschema = {"type": "object", "properties": {part: subschema}}
    return subschema


def _normalise_scorer_model(doc: LoadedYaml, where: list, raw: dict, eval_name: str) -> dict[str, Any]:
    """A model an algorithm calls (an LLMJudge's judge), normalised as a candidate is: its provider's keys and
    rules, the request templates and defaults. It has no name, fine-tuning or registry of its own."""
    import jmespath
    from jmespath.exceptions import JMESPathError

    provider = raw["provider"]
    try:
        cls = provider_class(provider)
    except ProviderLookupError as exc:
        raise doc.error(where + ["provider"], str(exc)) from None
    check_schema(doc, _schema_at(where, schema.judge_schema(cls.config_schema)))  # now its provider's keys too
    for key, purpose in cls.required_keys.items():
        if not raw.get(key):
            raise doc.error(where, f"provider '{provider}' needs '{key}', {purpose}")
    if cls.deploys and cls.sagemaker_endpoint and raw.get("endpoint_name"):
        raise doc.error(where + ["endpoint_name"], "a judge this tool deploys gets an endpoint of its own for each "
                        "evaluated model (llm-eval-judge-<model>), deleted after scoring; to judge with an endpoint "
                        "that is already up, use provider: endpoint with its endpoint_name")
    ev = {**_INVOKE_DEFAULTS, "inference_parameters": dict(cls.default_inference_parameters)}
    ev.update({k: v for k, v in (raw.get("evaluation_config") or {}).items() if v is not None})
    ev_where = where + ["evaluation_config"]
    ev["prompt_template"] = _prompt_template(doc, ev_where + ["prompt_template"], ev["prompt_template"])
    if cls.needs_template:
        if not _contains_placeholder(ev["content_template"]):
            raise doc.error(ev_where + ["content_template"],
                            f"the content_template must contain '{PLACEHOLDER}', where the prompt goes")
        try:
            jmespath.compile(ev["output"])
        except (JMESPathError, RecursionError) as exc:
            reason = str(exc).splitlines()[0] if isinstance(exc, JMESPathError) else "nested too deeply"
            raise doc.error(ev_where + ["output"],
                            f"'{_short(ev['output'])}' is not a valid JMESPath expression ({reason})") from None
    ev["custom_attributes"] = _custom_attributes(ev.get("custom_attributes"))
    ev["inference_parameters"] = ev.get("inference_parameters") or {}
    pipeline = doc.data["pipeline"]["name"]
    model = {
        "name": f"judge-{eval_name}",
        "provider": provider,
        "model_id": raw["model_id"],
        "model_version": str(raw.get("model_version", "*")),
        "endpoint_name": raw.get("endpoint_name"),
        # a SageMaker endpoint the judge creates is named per evaluated model when it is deployed
        "derived_endpoint_name": bool(cls.sagemaker_endpoint and not raw.get("endpoint_name")),
        "region": raw.get("region"),
        **{key: raw.get(key) for key in cls.config_schema},
        "deployment": {"instance_type": "ml.g5.2xlarge", "num_instances": 1, **(raw.get("deployment_config") or {})},
        "invoke": ev,
        "finetune": None,
        "register": None,
        "creates_endpoint": bool(cls.deploys),
        "cleanup_endpoint": None,
        "pipeline": pipeline,
    }
    try:
        cls.validate(model, Path(str(doc.path)).resolve().parent)
    except ProviderConfigError as exc:
        raise doc.error(where + list(exc.where), str(exc)) from None
    return model


def _same_model(judge: dict[str, Any], models: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The candidates that are the judge's model (same provider, model id and the keys its provider cannot
    work without, such as an endpoint), and those fine-tuned from it: the judge may prefer their answers."""
    keys = ["model_id", *provider_class(judge["provider"]).required_keys]
    same: dict[str, list[str]] = {"same": [], "finetuned": []}
    for model in models:
        if model["provider"] == judge["provider"] and all(model.get(k) == judge.get(k) for k in keys):
            same["finetuned" if model.get("finetune") else "same"].append(model["name"])
    return same


def _normalise_algorithm(doc: LoadedYaml, i: int, raw: dict, models: list[dict[str, Any]] | None = None
                         ) -> dict[str, Any]:
    """One `algorithms[]` entry; ``models`` (the normalised candidates) tell whether a judge is one of them."""
    where = ["algorithms", i]
    try:
        spec = scorers.resolve(raw["algorithm"], raw.get("module"), raw.get("config"))
    except scorers.AlgorithmLookupError as exc:
        key = "module" if raw.get("module") and raw["algorithm"] not in scorers.SCORERS else "algorithm"
        raise doc.error(where + [key], str(exc)) from None
    kind = scorers.scorer_class(spec.kind)
    allowed = getattr(kind, "config_keys", _FMEVAL_KEYS)
    for key in raw:
        if key not in allowed:
            owners = {"fmeval's algorithms" if other.kind == "fmeval" else name: None
                      for name, other in scorers.SCORERS.items() if other.kind != spec.kind
                      and key in getattr(scorers.scorer_class(other.kind), "config_keys", _FMEVAL_KEYS)}
            owner = f" ('{key}' is a key of {' and '.join(owners)})" if owners else \
                did_you_mean(key, [k for k in allowed if k != "algorithm"])
            raise doc.error(where + [key], f"{spec.name} does not take '{key}'{owner}; it takes "
                            f"{', '.join(k for k in allowed if k != 'algorithm')}")
    if spec.kind != "fmeval":
        try:
            own = kind.check_config(raw)
        except scorers.ScorerConfigError as exc:
            raise doc.error(where + list(exc.where), str(exc)) from None
        algorithm = {"name": spec.name, "kind": spec.kind, "module": own["module"], "config_class": None,
                     "eval_name": own["eval_name"], "options": own["options"], "needs_model": spec.needs_model,
                     "score_names": own["score_names"], "num_records": raw.get("num_records")}
        algorithm["model_keys"] = list(getattr(kind, "model_keys", ()))  # the models it calls (a judge)
        for key in algorithm["model_keys"]:
            algorithm[key] = _normalise_scorer_model(doc, where + [key], raw[key], own["eval_name"])
            algorithm[f"{key}_is_candidate"] = _same_model(algorithm[key], models or [])
        return algorithm
    options: dict[str, Any] = dict(raw["config"]) if isinstance(raw.get("config"), dict) else {}
    if isinstance(raw.get("config"), str) and spec.config_class and raw["config"] != spec.config_class:
        raise doc.error(where + ["config"],
                        f"{spec.name} takes the config class '{spec.config_class}', not '{raw['config']}'")
    if "target_output_delimiter" in raw:
        options["target_output_delimiter"] = raw["target_output_delimiter"]
    elif options.get("target_output_delimiter") == "":
        raise doc.error(where + ["config", "target_output_delimiter"],
                        "must not be empty; it separates the accepted answers in a target, such as '<OR>'")
    if spec.options or spec.module.startswith("fmeval."):
        for key, value in options.items():
            if key not in spec.options:
                did = did_you_mean(key, spec.options)
                takes = ", ".join(spec.options) or "no options"
                place = where + (["target_output_delimiter"] if key == "target_output_delimiter" and
                                 key in raw else ["config", key])
                raise doc.error(place, f"{spec.name} does not take the option '{key}'{did}; it takes {takes}")
            want = spec.options[key]
            if want is not object and not (isinstance(value, want) or (want is float and isinstance(value, int))):
                raise doc.error(where + ["config", key], f"must be of type {want.__name__}, not {value!r}")
    return {
        "name": spec.name,
        "kind": spec.kind,
        "module": spec.module,
        "config_class": spec.config_class,
        "eval_name": spec.eval_name,
        "options": options,
        "needs_model": spec.needs_model,
        "score_names": list(spec.score_names),
        "num_records": raw.get("num_records"),
    }


def _benchmark_dataset(doc: LoadedYaml, ds: dict, base: Path | str) -> dict[str, Any]:
    """`dataset` with a `benchmark` entry: the suite names its columns and reads the file's format from its
    extension; a local file (or folder) is read and checked now (lib/benchmarks/config.py)."""
    from lib.benchmarks import config as benchmarks

    where = ["dataset", "input_data_location"]
    for key in ("model_input_key", "target_output_key", "dataset_mime_type"):
        if key in ds:
            raise doc.error(["dataset", key], f"a benchmark dataset takes no '{key}': its suite knows the columns "
                            "(rename them under benchmark.columns) and the format comes from the file's extension "
                            "(.jsonl, .json or .csv)")
    value = ds["input_data_location"]
    uri = _resolve(value, base)
    try:
        data_files.check_location(value, folder_ok=True)
        _check_under_prefix(value, uri, folder_ok=True)
        bench = benchmarks.normalise(ds["benchmark"], uri, ds.get("num_records"), remote=is_remote_uri(uri))
    except data_files.DataFileError as exc:
        raise doc.error(where, str(exc)) from None
    except benchmarks.BenchmarkConfigError as exc:
        raise doc.error(["dataset", "benchmark", *exc.where], str(exc)) from None
    return {"dataset_name": ds["dataset_name"], "uri": uri, "mime_type": "jsonlines", "model_input_key": None,
            "target_output_key": None, "num_records": ds.get("num_records"), "benchmark": bench}


def _benchmark_scorer(doc: LoadedYaml, bench: dict[str, Any], algos: list[dict]) -> dict[str, Any]:
    """The `algorithms[]` entry a benchmark expands into; its scores' name must be its own."""
    from lib.benchmarks.config import scorer_entry

    entry = scorer_entry(bench)
    for i, other in enumerate(algos):
        if other["eval_name"] == entry["eval_name"]:
            raise doc.error(["dataset", "benchmark", "name" if "name" in doc.data["dataset"]["benchmark"] else "suite"],
                            f"the benchmark's scores are named '{entry['eval_name']}', as are those of "
                            f"algorithms[{i}] ({other['name']}): give the benchmark another 'name'")
    return entry


def _check_metric(doc: LoadedYaml, where: list, metric: str, algos: list[dict]) -> None:
    """A metric a policy can name: a score of a configured algorithm, or a run metric."""
    from lib.decide.metrics import RUN_METRICS

    if metric in RUN_METRICS:
        return
    eval_name, _, score = metric.partition(".")
    by_name = {a["eval_name"]: a for a in algos}
    if eval_name not in by_name:
        choices = list(by_name) + list(RUN_METRICS)
        raise doc.error(where, f"'{metric}' is not a score of a configured algorithm nor a run metric"
                        f"{did_you_mean(metric, choices)}; scores: {', '.join(by_name)}; run metrics: "
                        f"{', '.join(RUN_METRICS)}")
    known = by_name[eval_name]["score_names"]
    if score and known and score not in known:
        raise doc.error(where, f"{eval_name} reports no score '{score}'{did_you_mean(score, known)}; "
                        f"its scores are {', '.join(known)}")


def _check_selection(doc: LoadedYaml, selection: dict, algos: list[dict]) -> dict[str, Any]:
    """The selection policy, normalised: objectives (the single metric/direction form is one objective),
    constraints, confidence."""
    from lib.decide.metrics import better

    if selection.get("objectives") and selection.get("metric"):
        raise doc.error(["selection"], "give either 'metric' (with 'direction') or 'objectives', not both")
    if not selection.get("objectives") and not selection.get("metric"):
        selection = {**selection, "metric": algos[0]["eval_name"]}
    if selection.get("metric"):
        _check_metric(doc, ["selection", "metric"], selection["metric"], algos)
        objectives = [{"metric": selection["metric"], "weight": 1.0,
                       "direction": selection.get("direction") or better(selection["metric"])}]
    else:
        objectives = []
        for i, o in enumerate(selection["objectives"]):
            _check_metric(doc, ["selection", "objectives", i, "metric"], o["metric"], algos)
            objectives.append({"metric": o["metric"], "weight": float(o.get("weight", 1.0)),
                               "direction": o.get("direction") or better(o["metric"])})
    constraints = []
    for i, c in enumerate(selection.get("constraints") or []):
        _check_metric(doc, ["selection", "constraints", i, "metric"], c["metric"], algos)
        if c.get("max") is None and c.get("min") is None:
            raise doc.error(["selection", "constraints", i], f"the constraint on {c['metric']} needs 'max' or 'min'")
        constraints.append({"metric": c["metric"], "max": c.get("max"), "min": c.get("min")})
    return {"metric": objectives[0]["metric"], "direction": objectives[0]["direction"], "objectives": objectives,
            "constraints": constraints, "confidence": selection.get("confidence", 0.95)}


def _check_gate(doc: LoadedYaml, gate: dict | None, algos: list[dict]) -> dict[str, Any] | None:
    if gate is None:
        return None
    for metric in gate.get("min") or {}:
        _check_metric(doc, ["gate", "min", metric], metric, algos)
    return {"min": dict(gate.get("min") or {}), "champion": gate.get("champion", "registry"),
            "min_improvement": float(gate.get("min_improvement", 0.0)), "confidence": gate.get("confidence", 0.95),
            "on_fail": gate.get("on_fail", "Rejected")}


def _check_derived_names(doc: LoadedYaml, pipeline: str, data: dict) -> None:
    """The AWS names made from pipeline.name fit AWS's limits (`aws_rules` lists them)."""
    if not (data.get("model_registry") or {}).get("model_package_group_name"):
        problem = aws_rules.too_long(aws_rules.MODEL_PACKAGE_GROUP, "pipeline.name", pipeline=pipeline)
        if problem:
            raise doc.error(["pipeline", "name"], problem + " (or set model_registry.model_package_group_name)")
    problem = aws_rules.too_long(aws_rules.SCHEDULE, "pipeline.name", pipeline=pipeline)
    if problem:
        raise doc.error(["pipeline", "name"], problem)


def _check_sweep_names(config: str | Path, pipeline: str, settings: dict[str, Any]) -> None:
    """With sagemaker.sweep_on_failure, the sweep pipeline's and its rule's names (made from pipeline.name)
    fit AWS's limits."""
    if not settings["sagemaker"].get("sweep_on_failure"):
        return
    for fmt in (aws_rules.SWEEPER, aws_rules.SWEEP_RULE):
        problem = aws_rules.too_long(fmt, "pipeline.name", pipeline=pipeline)
        if problem:
            raise load_yaml(config).error(["pipeline", "name"], problem + "; or set sweep_on_failure: false")


def _provider_key(raw: dict) -> str:
    return "provider" if "provider" in raw else "model_provider"  # the sample's advanced layout


def _provider_schemas(doc: LoadedYaml) -> list[dict[str, Any]]:
    """Each model's provider-owned keys, so the schema allows them on that model only. An unknown
    provider is refused here, before the schema would blame its keys."""
    models = doc.data.get("models") if isinstance(doc.data, dict) else None
    out: list[dict[str, Any]] = []
    for i, raw in enumerate(models if isinstance(models, list) else []):
        provider = raw.get(_provider_key(raw), "jumpstart") if isinstance(raw, dict) else None
        if not isinstance(provider, str) or not provider:
            out.append({})
            continue
        try:
            out.append(provider_class(provider).config_schema)
        except ProviderLookupError as exc:
            raise doc.error(["models", i, _provider_key(raw)], str(exc)) from None
    return out


def load_evaluation_config(path: str | Path, input_data_path: str | None = None) -> dict[str, Any]:
    doc = load_yaml(path)
    check_schema(doc, schema.evaluation_schema(_provider_schemas(doc)))
    data = doc.data
    local_base = Path(path).resolve().parent
    # relative data paths: under --input-data-path (a folder, or an s3:// prefix), else the config's folder
    base: Path | str = local_base
    if input_data_path:
        base = input_data_path if is_remote_uri(input_data_path) else Path(input_data_path).resolve()
        if isinstance(base, Path):
            local_base = base
    pipeline = data["pipeline"]["name"]
    if not PIPELINE_NAME_RE.match(pipeline):
        raise doc.error(["pipeline", "name"], f"'{pipeline}' is not a valid SageMaker pipeline name: letters, "
                        "digits and single hyphens, starting and ending with a letter or digit")

    ds = data["dataset"]
    if ds.get("benchmark"):
        dataset = _benchmark_dataset(doc, ds, base)
    else:
        mime = ds.get("dataset_mime_type", "jsonlines")
        if mime not in ("jsonlines", "application/jsonlines"):
            raise doc.error(["dataset", "dataset_mime_type"],
                            f"'{mime}' is not supported: fmeval reads 'jsonlines' (one JSON object per line)")
        uri = _resolve(ds["input_data_location"], base)
        counted = _check_dataset(doc, ["dataset", "input_data_location"], ds["input_data_location"], uri,
                                 ds["model_input_key"], ds["target_output_key"])
        dataset = {
            "dataset_name": ds["dataset_name"], "uri": uri, "mime_type": "jsonlines",
            "model_input_key": ds["model_input_key"], "target_output_key": ds["target_output_key"],
            "num_records": ds.get("num_records"),
        }
        if ds.get("shards") == "auto":  # the plan chooses the count from it (an S3 file is counted then)
            dataset["records"] = counted

    _check_derived_names(doc, pipeline, data)
    # parallel evaluate steps per model over disjoint records; `auto`: lib.plan.build.shard_choice
    dataset["shards"] = ds.get("shards") or 1

    models = []
    origin: list[int] = []  # the config entry each candidate comes from (a base model's is its fine-tuned one's)
    seen: dict[str, int] = {}  # by AWS name, lower case: SageMaker names (steps, endpoints) ignore case
    for i, raw in enumerate(data["models"]):
        model = _normalise_model(doc, i, raw, base, pipeline, local_base)
        candidates = [(model, ["models", i, "name"])]
        if raw.get("evaluate_base_model"):  # beside it, after it: a tie keeps the fine-tuned one
            candidates.append((_base_candidate(doc, i, raw, model, base, pipeline, local_base),
                               ["models", i, "evaluate_base_model"]))
        for candidate, where in candidates:
            key = aws_name(candidate["name"]).lower()
            other = seen.get(key)
            if other is not None:
                theirs = models[other]["name"]
                of = f"models[{origin[other]}]" + (" (its base model)" if models[other].get("base_of") else "")
                if theirs == candidate["name"]:
                    same = f"is already used by {of}"
                elif theirs.lower() == candidate["name"].lower():
                    same = f"differs only in case from '{theirs}' of {of}"
                else:
                    same = (f"and '{theirs}' of {of} both become '{aws_name(candidate['name'])}' in AWS names "
                            "(an underscore becomes a hyphen)")
                what = "the base model's candidate" if candidate.get("base_of") else "the model name"
                raise doc.error(where, f"{what} '{candidate['name']}' {same}; names must be unique, "
                                "ignoring case (SageMaker step and endpoint names ignore it)")
            seen[key] = len(models)
            models.append(candidate)
            origin.append(i)
    endpoints: dict[str, int] = {}
    for n, model in enumerate(models):
        if provider_class(model["provider"]).sagemaker_endpoint:
            if model["endpoint_name"].lower() in endpoints:
                other = endpoints[model["endpoint_name"].lower()]
                raise doc.error(["models", origin[n], "endpoint_name"],
                                f"endpoint '{model['endpoint_name']}' is also used by models[{other}] "
                                "(endpoint names ignore case)")
            endpoints[model["endpoint_name"].lower()] = origin[n]

    algos = [_normalise_algorithm(doc, i, raw, models) for i, raw in enumerate(data.get("algorithms") or [])]
    for i, model in enumerate(models):
        calling = [a["name"] for a in algos if a.get("needs_model")]
        if model["invoke"].get("invocation") == "batch_transform" and calling:
            raise doc.error(["models", i, "evaluation_config", "invocation"],
                            f"{', '.join(calling)} call the model themselves, record by record, which a batch "
                            f"transform job cannot do (there is no endpoint): evaluate '{model['name']}' through an "
                            "endpoint (leave out `invocation`), or drop those algorithms")
    names = [a["eval_name"] for a in algos]
    for i, n in enumerate(names):
        if n in names[:i]:
            named = "" if algos[i]["kind"] == "fmeval" else \
                f" (both name their scores '{n}': give one of them another 'name')"
            raise doc.error(["algorithms", i, "algorithm"],
                            f"the algorithm '{algos[i]['name']}' is listed twice{named}")
    for i, algorithm in enumerate(algos):  # a scorer that needs something of every candidate (log-probabilities)
        check_models = getattr(scorers.scorer_class(algorithm["kind"]), "check_models", None)
        try:
            if check_models is not None:
                check_models(algorithm, models)
        except scorers.ScorerConfigError as exc:
            raise doc.error(["algorithms", i, *exc.where], str(exc)) from None
    if dataset.get("benchmark"):  # the benchmark's scorer comes first: without `selection`, it picks
        algos.insert(0, _benchmark_scorer(doc, dataset["benchmark"], algos))
    selection = _check_selection(doc, data.get("selection") or {}, algos)
    gate = _check_gate(doc, data.get("gate"), algos)
    registry = {
        "model_package_group_name": f"{pipeline}-models",
        "model_package_group_description": f"Models selected by the {pipeline} evaluation pipeline",
        "approval_status": "PendingManualApproval",
        **(data.get("model_registry") or {}),
    }
    return {
        "pipeline": {"name": pipeline, "description": data["pipeline"].get("description", "")},
        "dataset": dataset, "models": models, "algorithms": algos,
        "selection": selection, "gate": gate, "budget": data.get("budget"), "model_registry": registry,
        "tracking": tracking.own_part(data.get("tracking"), path),  # merged into the settings by load_config
    }


def default_settings() -> dict[str, Any]:
    from lib.plan.kinds import default_keep_alive

    return {
        "sagemaker": {
            "region": None, "role_arn": None, "bucket": None, "prefix": "llm-eval-pipelines",
            # warm pools per step kind (fine-tune 2400 s, evaluate 1200 s: the AWS sample's)
            "image_uri": None, "keep_alive_period_in_seconds": default_keep_alive(),
            # every step, evaluation included (it only calls the model's endpoint): a CPU instance
            "step_instance_type": "ml.m5.xlarge",
            "instance_types": {},
            "volume_size": 50, "max_parallel_steps": 10, "max_retries": 2, "tags": {},
            "kms_key": None, "subnets": [], "security_group_ids": [], "environment": {},
            "schedule": None, "model_approval_status": "PendingManualApproval", "sweep_on_failure": False,
        },
        "prices": {},  # overrides of lib/pricing.py's table
        "cost": {},  # the cost estimate's assumptions (lib/decide/cost.py)
        "tracking": {},  # MLflow, CloudWatch (lib/config/tracking.py): off unless a config file turns them on
        "local": {
            "output_dir": "runs", "max_workers": 2,
            "model_cache_dir": "~/.cache/llm-eval-pipelines",
        },
        # where each setting that is not a default came from: {"sagemaker.role_arn": ["config.yaml (...)"]}
        "sources": {},
        # RemoteFunction keys of a SageMaker defaults file this tool does not use, per file
        "unused": {},
    }


def _keep_alive(value: int | dict[str, int]) -> dict[str, int]:
    """``keep_alive_period_in_seconds`` as a mapping per step kind: one number applies to every kind that
    keeps a warm pool; a mapping changes the kinds it names."""
    from lib.plan.kinds import default_keep_alive

    defaults = default_keep_alive()
    if isinstance(value, dict):
        return {**defaults, **value}
    return {kind: value for kind in defaults}


def _apply_sdk_defaults(settings: dict[str, Any], sdk: sagemaker_defaults.SdkDefaults) -> None:
    sm = settings["sagemaker"]
    for key, value in sdk.values.items():
        sm[key] = dict(value) if isinstance(value, dict) else value
        settings["sources"][f"sagemaker.{key}"] = list(sdk.sources[key])
    settings["unused"] = dict(sdk.unused)


def load_pipeline_config(path: str | Path | None,
                         sdk: sagemaker_defaults.SdkDefaults | None = None) -> dict[str, Any]:
    """The settings: our defaults, then what the SageMaker defaults files say (``sdk``), then the settings
    file at ``path`` (it wins where both say something; tags and environment merge per key)."""
    settings = default_settings()
    if sdk is not None:
        _apply_sdk_defaults(settings, sdk)
    if path is None:
        settings["local"]["model_cache_dir"] = os.path.expanduser(settings["local"]["model_cache_dir"])
        settings["local"]["output_dir"] = str(Path(settings["local"]["output_dir"]).resolve())
        return settings
    doc = load_yaml(path)
    if "models" in doc.data:
        raise doc.error([], "this is an evaluation config (it has `models`), not a settings file (`sagemaker:`, "
                        "`local:`): give the settings with --pipeline-config, or leave the flag out for the defaults")
    check_schema(doc, schema.pipeline_schema())
    sm = doc.data.get("sagemaker") or {}
    role = sm.get("role_arn")
    if role and not ROLE_ARN_RE.match(role):
        raise doc.error(["sagemaker", "role_arn"],
                        f"'{role}' is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)")
    if sm.get("schedule"):
        problem = validate_eventbridge_expression(sm["schedule"])
        if problem:
            raise doc.error(["sagemaker", "schedule"], f"'{sm['schedule']}' is not a valid EventBridge "
                            f"schedule expression: {problem}")
    tags = sm.get("tags") or {}
    if isinstance(tags, list):
        keys = [t["Key"] for t in tags]
        for i, key in enumerate(keys):
            if key in keys[:i]:
                raise doc.error(["sagemaker", "tags", i, "Key"], f"the tag key '{key}' is given twice")
        tags = {t["Key"]: t["Value"] for t in tags}
    tags = {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in tags.items()}
    merged = {**settings["sagemaker"]["tags"], **tags}  # the SageMaker defaults file's, ours winning per key
    room = aws_rules.TAGS_MAX - aws_rules.OWN_TAGS
    if len(merged) > room:
        more = len(merged) - len(tags)
        beside = f" ({more} more from the SageMaker defaults file)" if more else ""
        raise doc.error(["sagemaker", "tags"], f"{len(merged)} tags{beside}; a resource holds {aws_rules.TAGS_MAX} "
                        f"and this tool adds {aws_rules.OWN_TAGS}, so at most {room}")
    for i, (key, value) in enumerate(tags.items()):
        problem = aws_rules.tag_problem(key, value)
        if problem:
            raise doc.error(["sagemaker", "tags", *([i] if isinstance(sm["tags"], list) else [key])], problem)
    environment = {**settings["sagemaker"]["environment"], **(sm.get("environment") or {})}
    if len(environment) > 97:
        raise doc.error(["sagemaker", "environment"], f"{len(environment)} variables with the SageMaker defaults "
                        "file's; a training job holds 100 and this tool sets 3, so at most 97")
    special = ("instance_types", "tags", "environment", "keep_alive_period_in_seconds")
    settings["sagemaker"].update({k: v for k, v in sm.items() if k not in special})
    settings["sagemaker"]["instance_types"].update(sm.get("instance_types") or {})
    settings["sagemaker"]["tags"] = merged
    settings["sagemaker"]["environment"] = environment
    if "keep_alive_period_in_seconds" in sm:
        settings["sagemaker"]["keep_alive_period_in_seconds"] = _keep_alive(sm["keep_alive_period_in_seconds"])
    name = sagemaker_defaults.shown_path(path)
    for key, value in sm.items():
        if value not in (None, [], {}):
            place = f"sagemaker.{key}"
            earlier = settings["sources"].get(place, []) if key in ("tags", "environment") else []
            settings["sources"][place] = [*earlier, name]
    settings["local"].update(doc.data.get("local") or {})
    for key in doc.data.get("local") or {}:
        settings["sources"][f"local.{key}"] = [name]
    settings["prices"] = doc.data.get("prices") or {}
    settings["cost"] = doc.data.get("cost") or {}
    settings["tracking"] = tracking.own_part(doc.data.get("tracking"), path)
    for key in doc.data.get("tracking") or {}:
        settings["sources"][f"tracking.{key}"] = [name]
    base = Path(path).resolve().parent
    settings["local"]["output_dir"] = _resolve(settings["local"]["output_dir"], base)
    settings["local"]["model_cache_dir"] = _resolve(settings["local"]["model_cache_dir"], base)
    return settings


def _input_data_path(value: str | None) -> str | None:
    """--input-data-path: an existing local folder, or an ``s3://bucket[/prefix]`` (as the AWS sample's
    ``s3://<bucket>/llm-evaluation-at-scale-example``), returned without a trailing slash."""
    if not value:
        return None
    if is_remote_uri(value) or value.lower().startswith("s3:"):
        scheme, sep, rest = value.partition("://")
        bucket = rest.partition("/")[0]
        problem = None
        if any(ord(c) < 32 or c == "\x7f" for c in value):
            problem = "it holds a control character"
        elif scheme != "s3" or not sep:
            problem = f"'{scheme}' is not a location this tool reads"
        elif not data_files._BUCKET_RE.match(bucket) or ".." in bucket:
            problem = f"'{bucket}' is not an S3 bucket name (3-63 lowercase letters, digits, dots and hyphens)"
        if problem:
            raise ConfigError(value[:200], "", f"--input-data-path takes a local folder or s3://bucket/prefix: "
                              f"{problem}")
        return "s3://" + rest.rstrip("/")
    try:
        is_dir = Path(value).is_dir()
    except (OSError, ValueError):
        is_dir = False
    if not is_dir:
        raise ConfigError(value[:200], "", "--input-data-path must be an existing folder or an s3://bucket/prefix")
    return value


def _sibling_is_evaluation_config(path: Path) -> bool:
    """Whether ``path`` (a pipeline_config.yaml found beside the config) is an evaluation config, as the AWS
    sample's single-model config is named: it has `models`."""
    return "models" in load_yaml(path).data


def load_config(
    config: str | Path, pipeline_config: str | Path | None = None, input_data_path: str | None = None
) -> RunConfig:
    """Validate both files; ``pipeline_config`` defaults to pipeline_config.yaml beside the config, unless that
    file is an evaluation config (then the defaults apply, with a note). The SageMaker SDK's defaults file
    (`sagemaker_defaults`) is read too, under the settings file."""
    input_data_path = _input_data_path(input_data_path)
    notes: list[str] = []
    evaluation = load_evaluation_config(config, input_data_path)
    if pipeline_config is None:
        beside = Path(config).resolve().parent / DEFAULT_PIPELINE_CONFIG
        pipeline_config = beside if beside.is_file() else None
        if pipeline_config is not None and _sibling_is_evaluation_config(beside):
            notes.append(f"{sagemaker_defaults.shown_path(beside)} is an evaluation config (it has `models`), not "
                         "settings: going on with the default settings (give yours with --pipeline-config)")
            pipeline_config = None
    sdk = sagemaker_defaults.read(config)
    notes += sdk.notes
    settings = load_pipeline_config(pipeline_config, sdk)
    _check_sweep_names(config, evaluation["pipeline"]["name"], settings)
    settings["tracking"] = tracking.finish(evaluation, settings)  # both files' `tracking:`, the settings winning
    from lib import pricing

    prices = pricing.table(settings.get("prices"))
    for model in evaluation["models"]:  # each step gets its model's price as data, settings applied
        model["price"] = provider_class(model["provider"]).price(model, prices)
        if model["invoke"].get("invocation") == "batch_transform" and settings["sagemaker"].get("bucket"):
            # where a batch transform job of a run on this machine reads and writes (a job needs S3)
            sm = settings["sagemaker"]
            model["invoke"]["transform_s3_uri"] = "/".join(
                p for p in (f"s3://{sm['bucket']}", (sm.get("prefix") or "").strip("/"),
                            evaluation["pipeline"]["name"], "transform") if p)
    for algorithm in evaluation["algorithms"]:  # a judge is priced as a model is (its calls are budgeted)
        for key in algorithm.get("model_keys", ()):
            algorithm[key]["price"] = provider_class(algorithm[key]["provider"]).price(algorithm[key], prices)
    return RunConfig(evaluation, settings, str(config), str(pipeline_config) if pipeline_config else None,
                     tuple(notes))

"""The SageMaker Python SDK's own defaults file (``config.yaml``), read once, by us.

Which files, lowest first (a later file wins where both say something; the settings file,
`pipeline_config.yaml`, wins over all of them):

- the user-level file, ``~/.config/sagemaker/config.yaml`` (the SDK's ``user_config_dir``), or instead
  the file or folder ``SAGEMAKER_USER_CONFIG_OVERRIDE`` names (as the SDK reads it; the AWS sample's
  notebook points it at its ``sm_pipelines/`` folder);
- a ``config.yaml`` beside the evaluation config that is a SageMaker defaults file (it has ``SageMaker``
  or ``SchemaVersion`` at its top), as in the sample's ``sm_pipelines/`` folder.

(The SDK's admin-level file, ``/etc/xdg/sagemaker/config.yaml`` or ``SAGEMAKER_ADMIN_CONFIG_OVERRIDE``, is
not read; an override in S3 is not read either: no AWS call is made before a config validates.)

What is taken, most specific place first (`SETTINGS`): role, image, instance type, S3 root, the volume
KMS key, VPC, tags and environment from ``SageMaker.PythonSDK.Modules.RemoteFunction`` (what ``@step`` reads),
else from ``SageMaker.PythonSDK.Modules.Session``, ``SageMaker.Pipeline`` and ``SageMaker.TrainingJob``
(every step is a training job). RemoteFunction keys this tool has no use for (``Dependencies``,
``IncludeLocalWorkDir``, ...: the step image carries the code; ``S3KmsKeyId``, which ``@step`` takes from
the SDK's configuration only) are listed by ``plan`` as not used.

The file is never handed to the SDK: with a defaults file loaded, the SDK checks the whole file against
its schema at every lookup, which `make bench` measured at 34.8x slower definitions for 10 models. The
executor gives the SDK an empty configuration instead (`pipelines.sagemaker_executor`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lib.config import aws_rules, schema
from lib.config.schema_errors import check_schema
from lib.config.yaml_loader import LoadedYaml, load_yaml
from lib.errors import ConfigError

FILE_NAME = "config.yaml"
OVERRIDE_ENV = "SAGEMAKER_USER_CONFIG_OVERRIDE"
LABEL = "SageMaker defaults"
ROLE_ARN_RE = re.compile(r"^arn:aws[a-z\-]*:iam::\d{12}:role/[\w+=,.@\-/]{1,512}$")
_PLACEHOLDER = re.compile(r"<[^<>]*>")  # the sample ships `arn:aws:iam::<...>:role/...` to be filled in

_RF = ("SageMaker", "PythonSDK", "Modules", "RemoteFunction")
_SESSION = ("SageMaker", "PythonSDK", "Modules", "Session")
_PIPELINE = ("SageMaker", "Pipeline")
_TRAINING = ("SageMaker", "TrainingJob")

# our setting -> where the defaults file says it, most specific first
SETTINGS: dict[str, list[tuple[str, ...]]] = {
    "role_arn": [(*_RF, "RoleArn"), (*_PIPELINE, "RoleArn"), (*_TRAINING, "RoleArn")],
    "image_uri": [(*_RF, "ImageUri")],
    "step_instance_type": [(*_RF, "InstanceType")],
    "kms_key": [(*_RF, "VolumeKmsKeyId"), (*_TRAINING, "ResourceConfig", "VolumeKmsKeyId")],
    "subnets": [(*_RF, "VpcConfig", "Subnets"), (*_TRAINING, "VpcConfig", "Subnets")],
    "security_group_ids": [(*_RF, "VpcConfig", "SecurityGroupIds"), (*_TRAINING, "VpcConfig", "SecurityGroupIds")],
    # mappings: merged, the first place winning per key
    "tags": [(*_RF, "Tags"), (*_PIPELINE, "Tags"), (*_TRAINING, "Tags")],
    "environment": [(*_RF, "EnvironmentVariables"), (*_TRAINING, "Environment")],
    # the S3 root: RemoteFunction's S3RootUri, else the Session's default bucket and prefix
    "bucket": [(*_RF, "S3RootUri"), (*_SESSION, "DefaultS3Bucket")],
    "prefix": [(*_RF, "S3RootUri"), (*_SESSION, "DefaultS3ObjectKeyPrefix")],
}
_MAPPINGS = ("tags", "environment")
_USED_RF_KEYS = {path[len(_RF)] for paths in SETTINGS.values() for path in paths if path[:len(_RF)] == _RF}


def _lenient(properties: dict[str, Any]) -> dict[str, Any]:
    """An object whose listed keys are checked; other keys (the SDK's, for its own classes) pass."""
    return {"type": "object", "properties": properties}


def _file_schema() -> dict[str, Any]:
    sm = schema.PIPELINE_CONFIG_SCHEMA["properties"]["sagemaker"]["properties"]
    kms = {"type": "string", "minLength": 1, "maxLength": 2048}
    vpc = _lenient({"Subnets": {**sm["subnets"], "minItems": 1}, "SecurityGroupIds": {**sm["security_group_ids"],
                                                                                       "minItems": 1}})
    tags = {"type": "array", "maxItems": aws_rules.TAGS_MAX, "items": {
        "type": "object", "required": ["Key", "Value"], "additionalProperties": False,
        "properties": {"Key": {"type": "string"}, "Value": {"type": "string"}}}}
    env = {"type": "object", "maxProperties": 97, "propertyNames": {**schema._ENV_NAME, "maxLength": 512},
           "additionalProperties": {"type": "string", "maxLength": 512}}
    s3_root = {"type": "string", "maxLength": 1024,
               "pattern": r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/[^\x00-\x1f]*)?$",
               "x-hint": "this tool takes an S3 root as s3://bucket/prefix"}
    remote_function = _lenient({
        "RoleArn": {"type": "string"}, "ImageUri": {"type": "string", "minLength": 1, "maxLength": 255},
        "InstanceType": schema._INSTANCE_TYPE, "S3RootUri": s3_root, "VolumeKmsKeyId": kms,
        "VpcConfig": vpc, "Tags": tags, "EnvironmentVariables": env,
    })
    session = _lenient({"DefaultS3Bucket": sm["bucket"],
                        "DefaultS3ObjectKeyPrefix": {"type": "string", "minLength": 1, "maxLength": 512}})
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "the SageMaker Python SDK's defaults file (config.yaml)",
        **_lenient({
            "SchemaVersion": {"type": ["string", "number"]},
            "SageMaker": _lenient({
                "PythonSDK": _lenient({"Modules": _lenient({"RemoteFunction": remote_function, "Session": session})}),
                "Pipeline": _lenient({"RoleArn": {"type": "string"}, "Tags": tags}),
                "TrainingJob": _lenient({
                    "RoleArn": {"type": "string"}, "VpcConfig": vpc, "Tags": tags, "Environment": env,
                    "ResourceConfig": _lenient({"VolumeKmsKeyId": kms})}),
            }),
        }),
    }


@dataclass
class SdkDefaults:
    """What the defaults files say, as our settings, and where each came from."""

    values: dict[str, Any] = field(default_factory=dict)  # setting -> value
    sources: dict[str, list[str]] = field(default_factory=dict)  # setting -> the files that said it
    unused: dict[str, list[str]] = field(default_factory=dict)  # file -> its RemoteFunction keys not used
    notes: list[str] = field(default_factory=list)  # one line each, for stderr
    files: list[str] = field(default_factory=list)


def shown_path(path: str | Path) -> str:
    """A path as a person would type it here: relative below this folder, ``~/...`` below home."""
    path = Path(path)
    try:
        absolute = path.resolve()
    except (OSError, ValueError):
        return str(path)
    for base, prefix in ((Path.cwd(), ""), (Path.home(), "~/")):
        try:
            return prefix + str(absolute.relative_to(base))
        except ValueError:
            continue
    return str(absolute)


def label(path: str | Path) -> str:
    return f"{shown_path(path)} ({LABEL})"


def user_level_file() -> Path:
    """The SDK's user-level defaults file (``platformdirs.user_config_dir('sagemaker')``)."""
    try:
        from platformdirs import user_config_dir

        return Path(user_config_dir("sagemaker")) / FILE_NAME
    except ImportError:  # platformdirs comes with the SDK; without it, the XDG location it would give
        base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        return Path(base) / "sagemaker" / FILE_NAME


def _is_defaults_file(doc: LoadedYaml) -> bool:
    return "SageMaker" in doc.data or "SchemaVersion" in doc.data


def find(config: str | Path) -> tuple[list[LoadedYaml], list[str]]:
    """The defaults files that apply to ``config``, lowest first, loaded; and notes about what was skipped."""
    notes: list[str] = []
    docs: list[LoadedYaml] = []
    seen: set[Path] = set()

    def add(path: Path) -> None:
        real = path.resolve()
        if real not in seen:
            seen.add(real)
            docs.append(load_yaml(path))

    override = os.environ.get(OVERRIDE_ENV)
    if override:
        if override.lower().startswith("s3://"):
            notes.append(f"{OVERRIDE_ENV}={override} is in S3: not read (no AWS call is made before the config "
                         "validates); copy the file beside the config to use it")
        else:
            path = Path(os.path.expanduser(override))
            path = path / FILE_NAME if path.is_dir() else path
            if not path.is_file():
                raise ConfigError(override, "", f"{OVERRIDE_ENV} names no SageMaker defaults file ({path} does not "
                                  "exist): point it at the file or its folder, or unset it")
            add(path)
    else:
        user = user_level_file()
        if user.is_file():
            add(user)
    beside = Path(config).resolve().parent / FILE_NAME
    if beside.is_file() and beside != Path(config).resolve() and beside.resolve() not in seen:
        doc = load_yaml(beside)
        if _is_defaults_file(doc):  # else some other config.yaml (often an evaluation config): not ours
            seen.add(beside.resolve())
            docs.append(doc)
    return docs, notes


def _get(data: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _one_file(doc: LoadedYaml, notes: list[str]) -> tuple[dict[str, Any], list[str]]:
    """This file's settings (``{setting: value}``) and its RemoteFunction keys this tool does not use."""
    check_schema(doc, _file_schema())
    data = doc.data
    out: dict[str, Any] = {}
    for setting, paths in SETTINGS.items():
        if setting in _MAPPINGS:
            merged: dict[str, str] = {}
            for path in reversed(paths):  # the most specific place last, so it wins
                value = _get(data, path)
                if value is None:
                    continue
                if setting == "tags":
                    for i, tag in enumerate(value):
                        problem = aws_rules.tag_problem(tag["Key"], tag["Value"])
                        if problem:
                            raise doc.error([*path, i], problem)
                    value = {t["Key"]: t["Value"] for t in value}
                merged.update(value)
            if merged:
                out[setting] = merged
            continue
        for path in paths:
            value = _get(data, path)
            if value is None:
                continue
            if path[-1] == "S3RootUri":
                bucket, _, prefix = value[len("s3://"):].partition("/")
                value = bucket if setting == "bucket" else prefix.strip("/")
            elif setting == "role_arn":
                if _PLACEHOLDER.search(value):
                    notes.append(f"{shown_path(doc.path)}: {'.'.join(path)} is still a placeholder ({value}): "
                                 "not used; put your role's ARN there, or sagemaker.role_arn in your settings file")
                    continue
                if not ROLE_ARN_RE.match(value):
                    raise doc.error(list(path), f"'{value}' is not an IAM role ARN "
                                    "(arn:aws:iam::123456789012:role/NAME)")
            out[setting] = value
            break
    room = aws_rules.TAGS_MAX - aws_rules.OWN_TAGS
    if len(out.get("tags", {})) > room:
        raise doc.error(list(SETTINGS["tags"][0]), f"{len(out['tags'])} tags; a resource holds {aws_rules.TAGS_MAX} "
                        f"and this tool adds {aws_rules.OWN_TAGS}, so at most {room}")
    rf = _get(data, _RF)
    unused = [k for k in rf if k not in _USED_RF_KEYS] if isinstance(rf, dict) else []
    return out, unused


def read(config: str | Path) -> SdkDefaults:
    """Every defaults file that applies to ``config``, merged (a later file wins; tags and environment
    merge per key)."""
    docs, notes = find(config)
    result = SdkDefaults(notes=notes)
    for doc in docs:
        values, unused = _one_file(doc, result.notes)
        name = label(doc.path)
        result.files.append(str(doc.path))
        if unused:
            result.unused[name] = unused
        for setting, value in values.items():
            if setting in _MAPPINGS:
                result.values[setting] = {**result.values.get(setting, {}), **value}
                result.sources.setdefault(setting, []).append(name)
            else:
                result.values[setting] = value
                result.sources[setting] = [name]
    return result

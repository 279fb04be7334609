"""The two config files: YAML (safe, with line numbers) -> JSON Schema -> checks of meaning -> one
normalised, JSON-serialisable `RunConfig`. `load_config` is the only door."""

from lib.config.load import (
    DEFAULT_PIPELINE_CONFIG,
    RunConfig,
    is_remote_uri,
    load_config,
    load_evaluation_config,
    load_pipeline_config,
    validate_eventbridge_expression,
)

__all__ = ["DEFAULT_PIPELINE_CONFIG", "RunConfig", "is_remote_uri", "load_config", "load_evaluation_config",
           "load_pipeline_config", "validate_eventbridge_expression"]

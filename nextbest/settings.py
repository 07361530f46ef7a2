"""The one settings object: environment variables (``NEXTBEST_*``) over an optional YAML file over defaults.

Every path is resolved to an absolute path when the settings are built, so commands behave the same from any
working directory. Nothing reads the environment at import time: call :func:`load_settings`.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from nextbest.errors import ConfigError

PACKAGE_DIR = Path(__file__).resolve().parent


def _default_project_dir() -> Path:
    """The source checkout holding ``features/``, ``catalog/`` and ``rules/`` (editable installs and Bentos)."""
    here = PACKAGE_DIR.parent
    if (here / "features" / "feature_store.yaml").exists():
        return here
    return Path.cwd()


class ServingSettings(BaseModel):
    """Knobs of the decision service; thresholds of rules live in rule parameter files, not here."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    exploration_rate: float = Field(0.05, ge=0.0, le=1.0, description="Share of decisions that explore.")
    exploration_mode: Literal["value", "uniform"] = Field(
        "value",
        description="value: explore near-ties most (softmax over the candidates' net values, in the model's value "
        "scale); uniform: any eligible action alike.",
    )
    exploration_temperature: float = Field(0.05, gt=0.0, le=100.0, description="In units of the model's value scale.")
    exploration_floor: float = Field(
        0.02, ge=0.0, le=1.0, description="Share of the exploration spread uniformly over eligible actions."
    )
    control_group_share: float = Field(
        0.01, ge=0.0, le=1.0, description="Share of customers held out of every action, to measure the lift."
    )
    control_group_salt: str = "nextbest-global-control"
    max_batch_size: int = Field(500, ge=1)
    max_body_bytes: int = Field(
        65_536, ge=1_024, description="Largest request body of /decide, /events, /feedback and /admin (413)."
    )
    max_batch_body_bytes: int = Field(
        4_194_304,
        ge=1_024,
        description="Largest request body of /decide/batch, /feedback/batch and the explorer's lookup (413).",
    )
    max_clock_skew_s: float = Field(
        300.0, ge=0.0, le=86_400.0, description="Events and feedback dated further in the future are refused (422)."
    )
    latency_budget_ms: float = Field(50.0, gt=0)
    whatif_timeout_s: float = Field(
        5.0, gt=0.0, le=120.0, description="Longest the explorer's what-if (a pasted ruleset) may run (422 after)."
    )
    spool_max_bytes: int = Field(
        1_073_741_824,
        ge=65_536,
        description="Cap of the local spool (records kept while the decision log or online store is down); at "
        "the cap a decision is served logged: false and an event or feedback gets a 503. /ready warns at 80%.",
    )
    spool_replay_batch: int = Field(
        500, ge=1, le=100_000, description="Records replayed per kind and step (in the background, in order)."
    )
    spool_replay_interval_s: float = Field(
        1.0, gt=0.0, le=3_600.0, description="How often the service retries writing spooled records."
    )
    api_key: SecretStr | None = Field(
        None, description="Needed by writes, admin, the explorer's data and (unless decide_api_key is set) /decide."
    )
    decide_api_key: SecretStr | None = Field(
        None, description="A key for /decide and /decide/batch alone (orchestration engines); api_key works too."
    )
    model_name: str = "nextbest-uplift"
    model_alias: str = "champion"
    model_dir: Path | None = Field(None, description="Serve this model directory instead of the registry alias.")
    feature_read: Literal["direct", "feature_service"] = Field(
        "direct",
        description="How online features are read: the service's feature views through Feast's online store "
        "interface (direct), or Feast's generic get_online_features (same values, about 5x the cost).",
    )
    workers: int = Field(1, ge=1, le=64)
    instance_id: str | None = Field(
        None,
        max_length=64,
        description="Reported by /ready, so a launcher (make demo, simulate-loop) can check that the service "
        "answering is the one it started.",
    )
    access_log: bool = Field(False, description="BentoML's access line per request (read at service import).")
    port: int = Field(3000, ge=1, le=65535)
    reload_interval_s: float = Field(5.0, ge=0.0, description="How often rule/catalog files are checked; 0 = never.")
    history_days: int = Field(30, ge=1, le=365, description="Contact history window read for contact policies.")
    contacts_from: Literal["feedback", "decisions"] = Field(
        "feedback",
        description="What counts as a contact for caps and cooldowns: decisions confirmed by feedback "
        "(impression, click, conversion, dismissal), or every served decision.",
    )


class Settings(BaseSettings):
    """Where things live and which backends are used. ``NEXTBEST_HOME`` holds all local state."""

    model_config = SettingsConfigDict(
        env_prefix="NEXTBEST_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    home: Path = Field(default_factory=lambda: Path.home() / ".nextbest")
    project_dir: Path = Field(default_factory=_default_project_dir)
    environment: Literal["local", "redis"] = "local"
    data_dir: Path | None = None
    mlflow_tracking_uri: str | None = None
    decision_log_url: str | None = None
    redis_url: str = "redis://127.0.0.1:6379/0"
    feast_project: str = Field(
        "nextbest",
        pattern=r"^[A-Za-z0-9_]+$",
        description="Feast project: namespaces the registry and the online-store keys (one Redis, many projects).",
    )
    feast_registry_url: str | None = Field(
        None,
        description="SQLAlchemy URL of a Feast SQL registry shared by every host (e.g. postgresql://user@db/feast); "
        "default: a registry file under NEXTBEST_HOME.",
    )
    catalog_path: Path | None = None
    rules_path: Path | None = None
    rule_params_path: Path | None = None
    serving: ServingSettings = Field(default_factory=ServingSettings)

    @field_validator("home", "project_dir", "data_dir", "catalog_path", "rules_path", "rule_params_path")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return None if value is None else value.expanduser().resolve()

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        _redis_connection_string(value)  # rejects what the Feast connection string cannot express
        return value

    @model_validator(mode="after")
    def _fill_paths(self) -> Settings:
        # Frozen model: fill the derived defaults through object.__setattr__ once, at construction.
        defaults: dict[str, Any] = {
            "data_dir": self.home / "data",
            # Not MLFLOW_TRACKING_URI: MLflow rewrites that variable whenever a tracking URI is set in-process.
            "mlflow_tracking_uri": f"sqlite:///{self.home / 'mlflow.db'}",
            "decision_log_url": f"sqlite:///{self.home / 'decisions.db'}",
            "catalog_path": self.project_dir / "catalog" / "actions.yaml",
            "rules_path": self.project_dir / "rules" / "guardrails.yaml",
            "rule_params_path": self.project_dir / "rules" / "params" / "default.yaml",
        }
        for name, value in defaults.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlFileSource(settings_cls))

    # Derived locations -------------------------------------------------------------------------------------
    @property
    def features_dir(self) -> Path:
        return self.project_dir / "features"

    @property
    def feature_store_yaml(self) -> Path:
        if self.environment == "local":
            return self.features_dir / "feature_store.yaml"
        return self.features_dir / "environments" / f"{self.environment}.yaml"

    @property
    def feast_dir(self) -> Path:
        return self.home / "feast"

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"

    @cached_property
    def template_vars(self) -> dict[str, str]:
        """Values substituted for ``${NAME}`` in the per-environment ``feature_store.yaml`` files."""
        return {
            "NEXTBEST_HOME": str(self.home),
            "NEXTBEST_FEAST_DIR": str(self.feast_dir),
            "NEXTBEST_FEAST_PROJECT": self.feast_project,
            "NEXTBEST_REDIS_URL": self.redis_url,
            "NEXTBEST_REDIS_CONNECTION": _redis_connection_string(self.redis_url),
        }


def _redis_connection_string(url: str) -> str:
    """Feast's ``host:port,db=N,key=value...`` connection string for a Redis URL: ``redis://`` or ``rediss://``
    (TLS), with an optional ``user:password@`` (percent-decoded) and query parameters passed on to the Redis
    client (e.g. ``?ssl_cert_reqs=required&ssl_ca_certs=/etc/ssl/ca.pem``). Raises ValueError for what Feast's
    format cannot carry (its separators ``,`` inside a value) or an unknown scheme."""
    from urllib.parse import parse_qsl, unquote, urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError(f"expected redis://[user:password@]host[:port][/db] or rediss://..., got {parts.scheme!r}")
    try:
        port = parts.port or 6379
    except ValueError as exc:
        raise ValueError(f"bad port: {exc}") from None
    db = (parts.path or "/0").lstrip("/") or "0"
    if not db.isdigit():
        raise ValueError(f"the database must be a number, got {db!r}")
    params: list[tuple[str, str]] = [("db", db)]
    if parts.scheme == "rediss":
        params.append(("ssl", "true"))
    if parts.username:
        params.append(("username", unquote(parts.username)))
    if parts.password:
        params.append(("password", unquote(parts.password)))
    params += parse_qsl(parts.query, keep_blank_values=True)
    for key, value in params:
        if "," in key or "," in value or "=" in key:
            raise ValueError(f"{key}: Feast's Redis connection string cannot carry ',' in a value")
    host = parts.hostname or "127.0.0.1"
    return ",".join([f"{host}:{port}", *(f"{k}={v}" for k, v in params)])


class _YamlFileSource(PydanticBaseSettingsSource):
    """Optional YAML file named by ``NEXTBEST_CONFIG``: the lowest-priority layer above defaults."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get("NEXTBEST_CONFIG")
        if not path:
            return {}
        file = Path(path).expanduser()
        if not file.is_file():
            raise ConfigError(f"NEXTBEST_CONFIG points to {file}, which does not exist")
        try:
            data = yaml.safe_load(file.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{file}: not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{file}: expected a mapping of settings at the top level")
        return data


def load_settings(**overrides: Any) -> Settings:
    """Build the settings; a validation problem becomes a one-line :class:`ConfigError`."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        raise ConfigError(f"invalid setting {where}: {first['msg']}") from exc

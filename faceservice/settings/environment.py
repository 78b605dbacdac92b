"""The typed reader: environment variables declared as fields of pydantic-settings classes.

A topic module declares its variables once, as the fields of a `Variables` class: the
field's name is the variable's, its type says how the value is parsed, its description
is the meaning shown in docs/DEPLOY.md. `read()` reads them from os.environ and
`export()` makes each the Django setting of the same name.

Parsing keeps the rules the service always had:
- integers, numbers and flags: empty (`VAR=`, as a compose file writes an unset
  `${VAR:-}`) counts as unset, so the default applies;
- text: empty is the value; lists: comma-separated, blanks dropped, empty is an empty list;
- flags: 1/true/yes/on or 0/false/no/off, in any case.
A value that does not parse stops the start: ImproperlyConfigured names each bad
variable, never its value (it might be a secret).
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from django.core.exceptions import ImproperlyConfigured
from pydantic import BeforeValidator, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")
EMPTY_MEANS_UNSET = (int, float, bool)


def _parse_flag(value: object) -> object:
    if not isinstance(value, str):
        return value
    word = value.strip().lower()
    if word in TRUE_WORDS or word in FALSE_WORDS:
        return word in TRUE_WORDS
    raise ValueError(f"expected one of {', '.join(TRUE_WORDS)} or {', '.join(FALSE_WORDS)}")


def _split_commas(value: object) -> object:
    if not isinstance(value, str):
        return value
    return [item.strip() for item in value.split(",") if item.strip()]


# pydantic's own bool also takes t/y/f/n; ours keeps the words the service always took.
Flag = Annotated[bool, BeforeValidator(_parse_flag)]
# NoDecode: pydantic-settings would parse a list variable as JSON.
CommaList = Annotated[list[str], NoDecode, BeforeValidator(_split_commas)]


def shown(default: str) -> dict[str, str]:
    """How docs/DEPLOY.md states a default that is not a plain value (computed, or set by the image)."""
    return {"shown_default": default}


class _ProcessEnvironment(EnvSettingsSource):
    """os.environ, where an empty number or flag counts as unset."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        value, key, is_complex = super().get_field_value(field, field_name)
        if value == "" and field.annotation in EMPTY_MEANS_UNSET:
            value = None
        return value, key, is_complex


class Variables(BaseSettings):
    """One topic's environment variables: a field per variable, named as the variable.

    A field marked `exclude=True` is not exported as a Django setting of its own: it
    only feeds a setting built from it (DB_CONN_MAX_AGE goes into DATABASES).
    """

    model_config = SettingsConfigDict(case_sensitive=True, frozen=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The process environment only: no .env file, no secrets directory.
        return (init_settings, _ProcessEnvironment(settings_cls))


V = TypeVar("V", bound=Variables)


def read(variables: type[V]) -> V:
    """The variables' values from the environment; ImproperlyConfigured names any bad one."""
    try:
        return variables()
    except ValidationError as error:
        # A default computed from a bad variable fails too; name only the bad variable.
        problems = [f"{problem['loc'][0]} ({problem['msg']})" for problem in error.errors()
                    if problem["type"] != "default_factory_not_called"]
        raise ImproperlyConfigured("Bad environment variable: " + "; ".join(problems)) from None
    except SettingsError as error:
        raise ImproperlyConfigured(f"Bad environment variable: {error}") from None


def export(variables: Variables, namespace: dict[str, Any]) -> None:
    """Each variable not marked exclude=True becomes the Django setting of its name."""
    namespace.update(variables.model_dump())

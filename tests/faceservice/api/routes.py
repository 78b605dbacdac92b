"""The API's routes as Django's URL resolver knows them, in OpenAPI path style."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from django.urls import URLPattern, URLResolver, get_resolver

# <uuid:api_key_id> or <api_key_id> (path()), (?P<api_key_id>...) (re_path())
ROUTE_PARAMETER = re.compile(r"<(?:\w+:)?(\w+)>")
REGEX_PARAMETER = re.compile(r"\(\?P<(\w+)>[^)]*\)")
REGEX_ESCAPE = re.compile(r"\\(.)")  # export\.csv -> export.csv
IGNORED_METHODS = {"head", "options"}  # Django and DRF provide these for every view


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    view: type | None

    @property
    def view_name(self) -> str:
        return f"{self.view.__module__}.{self.view.__qualname__}" if self.view else "a function view"

    @property
    def declared_roles(self) -> tuple[str, ...]:
        from faceservice.api.permissions import allowed_roles

        return tuple(sorted(allowed_roles(self.view, self.method))) if self.view else ()


def _pattern_text(pattern) -> str:
    text = str(pattern)
    if hasattr(pattern, "_regex"):  # re_path: drop anchors, name the groups
        text = REGEX_PARAMETER.sub(r"{\1}", text.removeprefix("^").removesuffix("$"))
        text = REGEX_ESCAPE.sub(r"\1", text)
    return ROUTE_PARAMETER.sub(r"{\1}", text)


def _view_class(callback) -> type | None:
    return getattr(callback, "cls", None) or getattr(callback, "view_class", None)


def _methods(callback, view: type | None) -> list[str]:
    actions = getattr(callback, "actions", None)  # DRF viewsets map methods to actions
    if actions:
        return sorted(method.upper() for method in actions)
    if view is None:
        return ["*"]
    return sorted(name.upper() for name in view.http_method_names
                  if name not in IGNORED_METHODS and hasattr(view, name))


def _walk(patterns, prefix: str) -> Iterator[Route]:
    for entry in patterns:
        text = prefix + _pattern_text(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, text)
        elif isinstance(entry, URLPattern):
            view = _view_class(entry.callback)
            for method in _methods(entry.callback, view):
                yield Route(method=method, path="/" + text, view=view)


def all_routes() -> list[Route]:
    return list(_walk(get_resolver().url_patterns, ""))


def v1_routes() -> list[Route]:
    return [route for route in all_routes() if route.path.startswith("/v1/")]

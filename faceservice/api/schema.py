"""The OpenAPI schema, completed in one place: what every operation can answer.

Views describe what is particular to them (their body, their success answers,
the errors of their own domain). What is true of every tenant operation is
added here, so that no view repeats it and none can forget it:

- the error answers every authenticated request can get (401, 403, 429, 500, 503;
  400 where a query or body is read, 404 where the path names an object,
  413/415 where a body is sent, 406 where the answer is negotiated from
  `Accept`), each with the one error body `Error`. Not 405: the server answers
  it to a method a path does not document, so no documented operation can get it;
- `X-Request-ID` on every answer, `Retry-After` on a 429, `Location` on a 202;
- request bodies as JSON only, unless a view lists its media types itself
  (search, compare and index jobs also take multipart uploads);
- "exactly one of" rules a serializer declares (`exactly_one_of`) as `oneOf`;
- the description from the handler's own docstring (written for a tenant's
  developer; class docstrings are for maintainers) and the roles that may call it.
"""

from __future__ import annotations

from django.core.validators import RegexValidator
from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers
from rest_framework.negotiation import DefaultContentNegotiation

from faceservice.api.permissions import allowed_roles


class ErrorDetailOutput(serializers.Serializer):
    code = serializers.CharField(help_text="A stable code to branch on (see the error table in docs/API.md)")
    message = serializers.CharField(help_text="For people: may change between versions")
    request_id = serializers.CharField(help_text="The same as the `X-Request-ID` header: quote it to support")
    details = serializers.JSONField(required=False, help_text="Per-field problems, when there are any")


class ErrorOutput(serializers.Serializer):
    error = ErrorDetailOutput()


GENERIC_ERRORS = {
    "400": "The request is not valid (invalid_request, malformed_request): `details` names the fields",
    "401": "No API key, or not a valid one (unauthenticated, invalid_api_key)",
    "403": "The API key has no role that may call this operation (forbidden)",
    "404": "No such object in your tenant (not_found): another tenant's id reads the same",
    "406": "The `Accept` header names no type this operation answers (not_acceptable): accept "
           "`application/json`",
    "413": "The body, or an uploaded file, is larger than the service accepts (request_too_large, "
           "image_too_large)",
    "415": "The body's Content-Type is not one this operation takes (unsupported_media_type)",
    "429": "Rate limited (rate_limited): wait as long as `Retry-After` says",
    "500": "Our bug (internal_error): the answer says nothing more; quote its request id",
    "503": "PostgreSQL, Valkey or the broker is unreachable for a moment (service_unavailable): retry after "
           "`Retry-After` seconds",
}

NO_NUL = r"^[^\x00]*$"
# A non-blank CharField trims whitespace (Python's str.strip set) before refusing "": at least one other
# character. Written with escapes both JSON Schema (ECMA) and Python's re read alike.
NOT_BLANK = (r"^[^\x00]*[^\x00\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
             r"[^\x00]*$")
REQUEST_ID_HEADER = {"schema": {"type": "string"}, "required": True,
                     "description": "This request's id: yours when you sent a plain `X-Request-ID` "
                                    "(8-64 of A-Z a-z 0-9 . _ -), else a new one"}
RETRY_AFTER_HEADER = {"schema": {"type": "integer", "minimum": 1},
                      "description": "Seconds to wait before trying again"}
LOCATION_HEADER = {"schema": {"type": "string"}, "required": True,
                   "description": "Where to follow the accepted work"}


class TenantAutoSchema(AutoSchema):
    def get_description(self) -> str:
        handler = getattr(self.view, self.method.lower(), None)
        description = (handler.__doc__ or "").strip() if handler else ""
        roles = sorted(allowed_roles(self.view, self.method))
        if roles and self.path.startswith("/v1/"):
            description += f"\n\n**Roles:** {', '.join(f'`{role}`' for role in roles)}."
        return description.strip()

    def map_parsers(self) -> list[str]:
        # JSON unless the view documents its media types itself (extend_schema(request={...})).
        return ["application/json"]

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        # A CharField refuses "" unless allow_blank: drf-spectacular does not say so inside lists.
        if (direction == "request" and isinstance(field, serializers.CharField) and not field.allow_blank
                and schema.get("type") == "string" and "minLength" not in schema and "enum" not in schema):
            schema["minLength"] = 1
        if isinstance(field, serializers.RegexField):
            # drf-spectacular leaves a RegexField's pattern out: the schema must say what the server checks.
            schema["pattern"] = next(v.regex.pattern for v in field.validators if isinstance(v, RegexValidator))
        # Every DRF CharField refuses a NUL character (ProhibitNullCharactersValidator): say so.
        if (direction == "request" and isinstance(field, serializers.CharField)
                and schema.get("type") == "string" and "pattern" not in schema and "enum" not in schema):
            blank_refused = not field.allow_blank and field.trim_whitespace
            schema["pattern"] = NOT_BLANK if blank_refused else NO_NUL
        return schema

    def _postprocess_serializer_schema(self, schema, serializer, direction):
        schema = super()._postprocess_serializer_schema(schema, serializer, direction)
        for name, field in getattr(serializer, "fields", {}).items():
            # drf-spectacular leaves out a nested list's allow_empty=False: the server refuses [].
            if isinstance(field, serializers.ListSerializer) and not field.allow_empty:
                schema.get("properties", {}).get(name, {})["minItems"] = 1
        one_of = getattr(serializer, "exactly_one_of", None)
        if one_of and direction == "request":
            schema["oneOf"] = [_given(name, schema["properties"][name]) for name in one_of]
        return schema

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None or not path.startswith("/v1/"):
            return operation
        if "requestBody" in operation and self._needs_a_body():
            operation["requestBody"]["required"] = True
        responses = operation["responses"]
        for code in self._error_codes(operation):
            responses.setdefault(code, {"description": GENERIC_ERRORS[code]})
        for code, response in responses.items():
            if code >= "400" and "content" not in response:
                error = self._get_response_for_code(ErrorOutput, code)
                response["content"] = error["content"]
                response["description"] = response.get("description") or GENERIC_ERRORS.get(code, "")
            headers = response.setdefault("headers", {})
            headers["X-Request-ID"] = REQUEST_ID_HEADER
            if code in ("429", "503"):
                headers["Retry-After"] = RETRY_AFTER_HEADER
            if code == "202":
                headers["Location"] = LOCATION_HEADER
        operation["responses"] = dict(sorted(responses.items()))
        return operation

    def _needs_a_body(self) -> bool:
        # A body of optional fields of which exactly one must be given cannot be left out.
        serializers_by_type = self.get_request_serializer()
        if not isinstance(serializers_by_type, dict):
            serializers_by_type = {"": serializers_by_type}
        return any(getattr(s, "exactly_one_of", None) for s in serializers_by_type.values())

    def _error_codes(self, operation: dict) -> list[str]:
        codes = ["401", "403", "429", "500", "503"]
        if operation.get("parameters") or operation.get("requestBody"):
            codes.append("400")
        if "{" in self.path:
            codes.append("404")
        if operation.get("requestBody"):
            codes += ["413", "415"]
        if issubclass(self.view.content_negotiation_class, DefaultContentNegotiation):
            codes.append("406")  # DRF's negotiation refuses an Accept without JSON; the audit export ignores Accept
        return codes


def _given(name: str, schema: dict) -> dict:
    """The oneOf branch in which `name` is given (a list: with at least one item)."""
    branch: dict = {"required": [name]}
    if schema.get("type") == "array":
        branch["properties"] = {name: {"minItems": 1}}
    return branch

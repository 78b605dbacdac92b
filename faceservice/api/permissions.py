"""Role checks. Each view names the roles that may call it, per HTTP method."""

from __future__ import annotations

from rest_framework import permissions


def allowed_roles(view, method: str) -> frozenset[str]:
    roles = getattr(view, "allowed_roles", None)
    if isinstance(roles, dict):
        if method == "HEAD" and "HEAD" not in roles:
            method = "GET"  # Django answers HEAD with the GET handler: same roles
        roles = roles.get(method, roles.get("*", ()))
    return frozenset(roles or ())


def has_handler(view, method: str) -> bool:
    name = method.lower()
    return name in view.http_method_names and hasattr(view, name)


class HasRole(permissions.BasePermission):
    """Allow a request whose API key holds one of the view's roles for this method.

    A refusal is remembered on the request so the view can audit it after the
    request's transaction has been rolled back.
    """

    message = "Your API key does not have a role that may do this."

    def has_permission(self, request, view) -> bool:
        principal = request.user
        if not getattr(principal, "is_authenticated", False):
            return False
        if not has_handler(view, request.method):
            return True  # let DRF answer 405: a wrong method is not a missing role
        needed = allowed_roles(view, request.method)
        if principal.roles & needed:
            return True
        request._request.refused_role = {"needed": sorted(needed), "method": request.method}
        return False

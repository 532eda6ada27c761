"""The app's registered functions as a route table (``app.get_functions()``, once per app)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

_TABLES: dict[int, "FunctionTable"] = {}
_PARAM = re.compile(r"^\{(\*?)([A-Za-z_][A-Za-z0-9_]*)(:[^}?]*)?(\?)?\}$")


@dataclass(frozen=True)
class HttpRoute:
    name: str
    template: str  # as registered, without the route prefix
    methods: tuple[str, ...] | None  # None: every method
    auth_level: str  # anonymous | function | admin
    param_name: str
    function: Callable[..., Any]

    def match(self, path: str) -> dict[str, str] | None:
        """Route parameters if ``path`` (without prefix) fits the template, else None."""
        wanted = [s for s in self.template.strip("/").split("/") if s]
        given = [s for s in path.strip("/").split("/") if s]
        params: dict[str, str] = {}
        for index, segment in enumerate(wanted):
            parameter = _PARAM.match(segment)
            if parameter and parameter.group(1):  # {*rest}: catch-all
                params[parameter.group(2)] = "/".join(given[index:])
                return params
            if index >= len(given):
                return params if parameter and parameter.group(4) and index == len(wanted) - 1 else None
            if parameter:
                constraint = (parameter.group(3) or "")[1:]
                if constraint == "int" and not given[index].lstrip("-").isdigit():
                    return None
                if constraint == "alpha" and not given[index].isalpha():
                    return None
                params[parameter.group(2)] = given[index]
            elif segment.lower() != given[index].lower():
                return None
        return params if len(given) == len(wanted) else None


@dataclass(frozen=True)
class OtherFunction:
    name: str
    trigger_type: str
    param_name: str
    function: Callable[..., Any]


@dataclass(frozen=True)
class FunctionTable:
    http_routes: tuple[HttpRoute, ...]
    others: dict[str, OtherFunction]


def _level(value: Any) -> str:
    return str(getattr(value, "name", value) or "function").lower()


def function_table(app: Any) -> FunctionTable:
    """Index the app's functions; cached per app object because get_functions() runs once."""
    cached = _TABLES.get(id(app))
    if cached is not None:
        return cached
    routes: list[HttpRoute] = []
    others: dict[str, OtherFunction] = {}
    for fn in app.get_functions():
        trigger = fn.get_trigger()
        if fn.is_http_function():
            methods = tuple(str(getattr(m, "value", m)).upper() for m in trigger.methods) if trigger.methods else None
            routes.append(
                HttpRoute(
                    name=fn.get_function_name(),
                    template=(trigger.route or fn.get_function_name()).strip("/"),
                    methods=methods,
                    auth_level=_level(trigger.auth_level),
                    param_name=trigger.name,
                    function=fn.get_user_function(),
                )
            )
        else:
            others[fn.get_function_name()] = OtherFunction(
                name=fn.get_function_name(),
                trigger_type=type(trigger).__name__,
                param_name=trigger.name,
                function=fn.get_user_function(),
            )
    # Literal segments win over parameters, as in ASP.NET routing.
    routes.sort(key=lambda r: sum(1 for s in r.template.split("/") if s.startswith("{")))
    table = FunctionTable(tuple(routes), others)
    _TABLES[id(app)] = table
    return table

"""The app's registered functions as a route table.

``app.get_functions()`` may be called only once per app object (a second call raises
a duplicate-name ``ValueError``), so the table is built once and cached here, at
module level, for the life of the process.

Route templates follow the Functions host (ASP.NET Core routing), loosely:
``{name}``, ``{name?}``, ``{name=default}``, ``{*rest}`` and constraints such as
``{id:int}`` or ``{name:alpha}`` (``int``/``long``/``alpha``/``bool``/``guid`` are
checked; any other constraint only needs a non-empty segment). Literal parts match
case-insensitively, as in the host.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.parse import unquote

_TABLES: dict[int, tuple[Any, FunctionTable]] = {}
_PARAM = re.compile(r"^(\*{1,2})?([^:=?}*]+)((?::[^:=?]+)*)(=[^?]*)?(\?)?$")
_CONSTRAINTS = {
    "int": r"-?\d+",
    "long": r"-?\d+",
    "alpha": r"[A-Za-z]+",
    "bool": r"(?:[Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])",
    "guid": r"\{?[0-9A-Fa-f]{8}-?(?:[0-9A-Fa-f]{4}-?){3}[0-9A-Fa-f]{12}\}?",
}


def _tokens(segment: str) -> list[tuple[str, str]]:
    """Split one path segment into ("literal", text) and ("param", inside-braces) tokens."""
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(segment):
        start = segment.find("{", position)
        if start < 0:
            tokens.append(("literal", segment[position:]))
            break
        if start > position:
            tokens.append(("literal", segment[position:start]))
        depth, end = 0, start
        for end in range(start, len(segment)):  # constraints like regex(\d{3}) nest braces
            depth += {"{": 1, "}": -1}.get(segment[end], 0)
            if depth == 0:
                break
        tokens.append(("param", segment[start + 1 : end]))
        position = end + 1
    return tokens


@cache
def _compile(path: str) -> tuple[re.Pattern[str], list[str], dict[str, str], tuple[int, ...]]:
    """A regex for a full route path, its parameter names, defaults, and a precedence rank per segment.

    Ranks: 0 literal, 1 literal mixed with parameters, 2 constrained parameter, 3 parameter,
    4 optional parameter, 5 catch-all (ASP.NET Core's order, simplified).
    """
    pattern = ""
    names: list[str] = []
    defaults: dict[str, str] = {}
    rank: list[int] = []
    for segment in [s for s in path.split("/") if s]:
        tokens = _tokens(segment)
        spec = _PARAM.match(tokens[0][1]) if len(tokens) == 1 and tokens[0][0] == "param" else None
        if spec and spec.group(1):  # {*rest}: catch-all, may be empty
            names.append(spec.group(2))
            pattern += "(?:/(.*))?"
            rank.append(5)
            break
        if spec and (spec.group(4) or spec.group(5)):  # {name?} / {name=default}: the segment may be absent
            names.append(spec.group(2))
            if spec.group(4):
                defaults[spec.group(2)] = spec.group(4)[1:]
            constraint = _constraint(spec.group(3))
            pattern += f"(?:/({constraint}))?"
            rank.append(4)
            continue
        pattern += "/"
        segment_rank = 0
        for kind, text in tokens:
            parameter = _PARAM.match(text) if kind == "param" else None
            if parameter is None:
                pattern += re.escape(text if kind == "literal" else "{" + text + "}")
                continue
            names.append(parameter.group(2))
            pattern += f"({_constraint(parameter.group(3))})"
            segment_rank = max(segment_rank, 2 if parameter.group(3) else 3) if len(tokens) == 1 else 1
        rank.append(segment_rank)
    return re.compile(f"^{pattern}/?$", re.IGNORECASE), names, defaults, tuple(rank)


def _constraint(constraints: str | None) -> str:
    for name in (constraints or "").split(":"):
        if name.strip().lower() in _CONSTRAINTS:
            return _CONSTRAINTS[name.strip().lower()]
    return "[^/]+"


@dataclass(frozen=True)
class HttpRoute:
    """One HTTP function. ``template`` is as registered; ``path`` adds the route prefix."""

    name: str
    template: str  # as registered, without the route prefix, no leading/trailing "/"
    methods: tuple[str, ...] | None  # upper case; None: every method
    auth_level: str  # anonymous | function | admin
    param_name: str  # the HTTP trigger's parameter name (get_trigger().name)
    function: Callable[..., Any] = field(repr=False, compare=False)
    prefix: str = ""  # routePrefix from host.json, no slashes

    @property
    def path(self) -> str:
        return "/" + "/".join(part for part in (self.prefix, self.template) if part)

    def allows(self, method: str) -> bool:
        return self.methods is None or method.upper() in self.methods

    def match(self, path: str) -> dict[str, str] | None:
        """Route parameters (percent-decoded) if the raw ``path`` fits ``prefix/template``, else None."""
        pattern, names, defaults, _ = _compile(self.path)
        found = pattern.match(path)
        if found is None:
            return None
        params = dict(defaults)
        params.update({name: unquote(value) for name, value in zip(names, found.groups(), strict=True) if value is not None})
        return params

    @property
    def precedence(self) -> tuple[int, ...]:
        """Sort key: literal segments before constrained, plain, optional and catch-all parameters."""
        return _compile(self.path)[3]


Route = HttpRoute  # the name used in the docs


@dataclass(frozen=True)
class OtherFunction:
    """A non-HTTP function (timer, queue, ...), run on demand via POST /admin/functions/<name>."""

    name: str
    trigger_type: str  # e.g. "TimerTrigger"
    param_name: str
    function: Callable[..., Any] = field(repr=False, compare=False)
    #: the trigger's own settings as registered (schedule, queue_name, connection, run_on_startup, ...)
    binding: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class FunctionTable:
    http_routes: tuple[HttpRoute, ...]  # without prefix (prefix == "")
    others: dict[str, OtherFunction]


def _level(value: Any) -> str:
    return str(getattr(value, "value", value) or "function").lower()


def function_table(app: Any) -> FunctionTable:
    """Index the app's functions; cached per app object because get_functions() runs only once.

    A FunctionTable is returned as it is (the runtime path builds its own from the worker's metadata).
    """
    if isinstance(app, FunctionTable):
        return app
    cached = _TABLES.get(id(app))
    if cached is not None and cached[0] is app:
        return cached[1]
    routes: list[HttpRoute] = []
    others: dict[str, OtherFunction] = {}
    for fn in app.get_functions():
        trigger = fn.get_trigger()
        name = fn.get_function_name()
        if fn.is_http_function():
            methods = tuple(str(getattr(m, "value", m)).upper() for m in trigger.methods) if trigger.methods else None
            template = trigger.route if trigger.route is not None else name
            routes.append(
                HttpRoute(
                    name=name,
                    template=template.strip("/"),
                    methods=methods,
                    auth_level=_level(trigger.auth_level),
                    param_name=trigger.name,
                    function=fn.get_user_function(),
                )
            )
        else:
            binding = {
                key: getattr(trigger, key)
                for key in ("schedule", "run_on_startup", "use_monitor", "queue_name", "connection")
                if getattr(trigger, key, None) is not None
            }
            others[name] = OtherFunction(name, type(trigger).__name__, trigger.name, fn.get_user_function(), binding)
    table = FunctionTable(tuple(routes), others)
    _TABLES[id(app)] = (app, table)
    return table


def build_routes(app: Any, route_prefix: str = "api") -> list[HttpRoute]:
    """The HTTP routes under ``route_prefix``, in matching order (most specific first)."""
    return routes_for(function_table(app), route_prefix)


def routes_for(table: FunctionTable, route_prefix: str = "api") -> list[HttpRoute]:
    """``table``'s HTTP routes under ``route_prefix``, most specific first (literals before parameters)."""
    prefix = (route_prefix or "").strip("/")
    routes = [dataclasses.replace(route, prefix=prefix) for route in table.http_routes]
    return sorted(routes, key=lambda route: route.precedence)

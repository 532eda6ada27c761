"""The worker's logs, as the Functions host shows them: under host categories, filtered by ``host.json``.

The worker sends every record at INFO and above (:mod:`devhost.rpc.worker`); the host decides. A User log
made during an invocation goes to the function's user category, ``Function.<name>.User``; a User log outside
an invocation (at import, from a background thread) to ``Worker.Python`` here. System logs (the runtime's own:
"Function name: ..., Function Type: ..." per invocation, the indexing summary) are the platform's, not the
app's: Core Tools shows them only with ``--verbose`` and Azure keeps them out of the app's Application
Insights, so devhost shows them only with ``DEVHOST_WORKER_SYSTEM_LOGS=true``. Which are
written follows ``host.json`` ``logging.logLevel`` as .NET's logger filter picks a rule: the longest
configured category that starts the log's category (case-insensitive), else ``default``
(Microsoft Learn, "How to configure monitoring for Azure Functions", "Configure categories").

So a Python logger's name (``shared.http``, ``azure.core...``) is not a category the host filters on; it
is kept in the line: ``<host category>: [<python logger>] <message>``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: host.json level names -> Python levels ("None" turns a category off)
LEVELS = {
    "trace": 5,
    "debug": logging.DEBUG,
    "information": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "none": logging.CRITICAL + 100,
}
#: RpcLog.Level values (FunctionRpc.proto: Trace 0, Debug 1, Information 2, Warning 3, Error 4, Critical 5, None 6)
RPC_LEVELS = {0: 5, 1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR, 5: logging.CRITICAL}
WORKER_CATEGORY = "Worker.Python"
SYSTEM_CATEGORY = "Worker.Python.System"
SYSTEM_LOGS_SETTING = "DEVHOST_WORKER_SYSTEM_LOGS"
USER_LOG_CATEGORY = 0  # RpcLog.RpcLogCategory.User (FunctionRpc.proto: User 0, System 1, CustomMetric 2)


@dataclass(frozen=True)
class LogLevels:
    default: int = logging.INFO
    categories: tuple[tuple[str, int], ...] = ()  # lower-cased, longest first
    system_logs: bool = False  # the runtime's System logs too (DEVHOST_WORKER_SYSTEM_LOGS)

    @classmethod
    def from_host_json(cls, app_dir: Path | str, system_logs: bool = False) -> LogLevels:
        path = Path(app_dir) / "host.json"
        try:
            document = json.loads(path.read_text(encoding="utf-8-sig")) if path.exists() else {}
        except ValueError:
            document = {}
        configured = ((document.get("logging") or {}).get("logLevel") or {}) if isinstance(document, dict) else {}
        default = logging.INFO
        rules: list[tuple[str, int]] = []
        for category, name in configured.items():
            level = LEVELS.get(str(name).strip().lower())
            if level is None:
                continue
            if category.lower() == "default":
                default = level
            else:
                rules.append((category.lower(), level))
        return cls(default, tuple(sorted(rules, key=lambda rule: len(rule[0]), reverse=True)), system_logs)

    def minimum(self, category: str) -> int:
        lowered = category.lower()
        for prefix, level in self.categories:
            if lowered.startswith(prefix):
                return level
        return self.default


def host_category(log: Any, function_name: str | None) -> str:
    if log.log_category != USER_LOG_CATEGORY:
        return SYSTEM_CATEGORY
    return f"Function.{function_name}.User" if function_name else WORKER_CATEGORY


def route_log(log: Any, function_name: str | None, levels: LogLevels) -> None:
    """Write one ``RpcLog`` to devhost's log if ``host.json`` lets its category through at its level."""
    level = RPC_LEVELS.get(int(log.level))
    if level is None:  # RpcLog.None
        return
    category = host_category(log, function_name)
    if category == SYSTEM_CATEGORY and not levels.system_logs:
        return
    if level < levels.minimum(category):
        return
    target = logging.getLogger(category)
    source = f"[{log.category}] " if log.category else ""
    record = target.makeRecord(category, level, "(worker)", 0, "%s%s", (source, log.message), None)
    target.handle(record)

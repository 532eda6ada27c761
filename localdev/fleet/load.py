"""Async clients for the fleet: many dev users getting, refreshing, revoking and deleting tokens through the balancer.

Every HTTP answer is recorded (:class:`Answer`: status, ``Retry-After``, content type, the JSON body's shape,
latency, the instance that answered). A client performs one operation at a time (:class:`Outcome`): on 429 or
503 it waits the ``Retry-After`` it was given plus random jitter (so retries spread out instead of arriving
together) and tries again, until it succeeds or its deadline passes, as the README's frontend sample does.
Each user's operations run in order in one coroutine, so the tokens issued before an accepted revoke or delete
are known exactly (:class:`UserHistory`), which is what :mod:`localdev.fleet.verify` checks against ACS.

    recorder = Recorder()
    async with LoadDriver(fleet.url, recorder) as driver:
        await driver.mixed(users=[f"u{i}" for i in range(50)], ops_per_user=6, concurrency=16)
        await driver.storm(prefix="webinar", count=3000, within_seconds=30)
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

import aiohttp

from localdev.fleet.haproxy import INSTANCE_HEADER

#: operation -> (method, path under /api, JSON body or None)
OPERATIONS: dict[str, tuple[str, str, Any]] = {
    "issue": ("POST", "token", {"scopes": ["voip"]}),
    "refresh": ("POST", "token/refresh", {"scopes": ["voip"]}),
    "revoke": ("POST", "token/revoke", None),
    "delete": ("DELETE", "identity", None),
    "requests": ("POST", "ops/revocations", None),  # an operator's list of up to 100 requests (body given per call)
    "campaign": ("POST", "ops/campaigns", None),  # an operator's incident campaign: every token issued before now dies
}
#: the statuses that end an operation well (refresh before any identity, or after a delete, is 404 by contract)
SUCCESS: dict[str, frozenset[int]] = {
    "issue": frozenset({200}),
    "refresh": frozenset({200, 404}),
    "revoke": frozenset({202, 204}),
    "delete": frozenset({202, 204}),
    "requests": frozenset({202}),
    "campaign": frozenset({202}),
}
#: operations an operator performs (not a user: no token history)
OPERATOR_OPERATIONS = frozenset({"requests", "campaign"})
RETRYABLE = frozenset({429, 503})
#: a realistic mix after sign-in: mostly refreshes, some new sign-ins, sign-outs everywhere, a few erasures
DEFAULT_MIX: Mapping[str, float] = {"refresh": 0.55, "issue": 0.25, "revoke": 0.12, "delete": 0.08}


@dataclass(frozen=True)
class Answer:
    """One HTTP answer as the client saw it."""

    op: str
    user: str
    status: int  # 0: no HTTP answer at all (connection error, timeout)
    sent: float  # seconds since the run started
    latency: float  # seconds
    retry_after: str | None
    content_type: str
    #: "token", "pending", "accepted", "campaign", "empty", "error:<code>", "not_json", "unexpected", "connection_error:<type>"
    shape: str
    instance: str | None
    attempt: int
    identity: str | None = None  # the communicationUserId of a token answer


@dataclass
class Outcome:
    """One operation of one client, from its first attempt to its last."""

    op: str
    user: str
    started: float
    finished: float = 0.0
    attempts: int = 0
    status: int = 0
    ok: bool = False
    waited: float = 0.0  # seconds spent honouring Retry-After

    @property
    def duration(self) -> float:
        return self.finished - self.started


@dataclass
class UserHistory:
    """A user's tokens in the order issued; ``tokens[:killed_before]`` were issued before an accepted revoke/delete."""

    tokens: list[str] = field(default_factory=list)
    killed_before: int = 0
    acs_id: str | None = None


@dataclass(frozen=True)
class ClientPolicy:
    """How a client treats 429/503: honour ``Retry-After`` plus up to ``jitter`` of it at random, within a deadline."""

    honour_retry_after: bool = True
    jitter: float = 0.5
    deadline_seconds: float = 180.0
    #: when a retryable answer carries no usable Retry-After (itself a violation the verifier reports)
    fallback_retry_after: float = 1.0


@dataclass(frozen=True)
class CampaignStart:
    """An incident campaign the driver started: its id and when it was asked for (seconds since the run started)."""

    campaign_id: str
    sent: float
    answered: float


class Recorder:
    """Everything a run produced, for the verifier and the report."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        #: the same moment by the wall clock (``time.time()``), which the emulator's call log uses
        self.wall_started = time.time()
        self.answers: list[Answer] = []
        self.outcomes: list[Outcome] = []
        self.users: dict[str, UserHistory] = {}
        self.marks: list[tuple[float, str]] = []  # (seconds since start, what the scenario did)
        self.campaigns: list[CampaignStart] = []

    def now(self) -> float:
        return time.monotonic() - self.started

    def wall(self, moment: float) -> float:
        """``moment`` (seconds since the run started) as ``time.time()``."""
        return self.wall_started + moment

    def mark(self, what: str) -> None:
        self.marks.append((self.now(), what))


def body_shape(status: int, content_type: str, raw: bytes) -> tuple[str, Any]:
    """Classify a body: what kind of answer it is, and the parsed JSON (None if none)."""
    if not raw:
        return "empty", None
    if not content_type.startswith("application/json"):
        return "not_json", None
    try:
        document = json.loads(raw)
    except ValueError:
        return "not_json", None
    if not isinstance(document, dict):
        return "unexpected", document
    if status == 200 and {"token", "expiresOn", "communicationUserId"} <= document.keys():
        return "token", document
    if status == 202 and document.get("status") == "pending":
        return "pending", document
    if status == 202 and isinstance(document.get("accepted"), int):
        return "accepted", document  # an operator's recorded revocation requests
    if status == 202 and isinstance(document.get("id"), str) and document.get("status") == "active":
        return "campaign", document  # an operator's incident campaign, recorded
    error = document.get("error")
    if isinstance(error, dict) and isinstance(error.get("code"), str) and isinstance(error.get("message"), str):
        return f"error:{error['code']}", document
    return "unexpected", document


def retry_after_seconds(value: str | None) -> float | None:
    """Delay-seconds from a Retry-After header (the only form this API sends); None when absent or not a number."""
    if value is None or not value.strip().isdigit():
        return None
    return float(value.strip())


def plan_mixed(
    users: Iterable[str], ops_per_user: int, rng: random.Random, mix: Mapping[str, float] = DEFAULT_MIX
) -> dict[str, list[str]]:
    """Each user signs in first, then does ``ops_per_user - 1`` operations drawn from ``mix``."""
    names, weights = list(mix), list(mix.values())
    return {user: ["issue", *rng.choices(names, weights, k=max(0, ops_per_user - 1))] for user in users}


class LoadDriver:
    """One aiohttp session against the balancer; every call recorded in ``recorder``."""

    def __init__(
        self,
        base_url: str,
        recorder: Recorder | None = None,
        *,
        policy: ClientPolicy | None = None,
        connections: int = 500,
        request_timeout: float = 240.0,
        seed: int = 13,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.recorder = recorder or Recorder()
        self.policy = policy or ClientPolicy()
        self.rng = random.Random(seed)  # noqa: S311 - a reproducible load mix, not a secret
        self._connections = connections
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        connector = aiohttp.TCPConnector(limit=self._connections, limit_per_host=self._connections)
        self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # one request ---------------------------------------------------------------

    async def call(self, op: str, user: str, attempt: int = 1, body: Any = None) -> tuple[Answer, Any]:
        """One HTTP request as ``user`` (``body`` replaces the operation's own); the recorded answer and its JSON body."""
        if self._session is None:
            raise RuntimeError("use `async with LoadDriver(...)`")
        method, path, default_body = OPERATIONS[op]
        body = default_body if body is None else body
        headers = {"X-Dev-User": user}
        sent = self.recorder.now()
        started = time.perf_counter()
        try:
            async with self._session.request(method, f"{self.base_url}/api/{path}", json=body, headers=headers) as response:
                raw = await response.read()
                status, response_headers = response.status, response.headers
        except (aiohttp.ClientError, TimeoutError) as error:
            failure = f"connection_error:{type(error).__name__}"
            answer = Answer(op, user, 0, sent, time.perf_counter() - started, None, "", failure, None, attempt)
            self.recorder.answers.append(answer)
            return answer, None
        latency = time.perf_counter() - started
        content_type = response_headers.get("Content-Type", "")
        shape, document = body_shape(status, content_type, raw)
        identity = str(document["communicationUserId"]) if shape == "token" else None
        answer = Answer(
            op, user, status, sent, latency, response_headers.get("Retry-After"), content_type, shape,
            response_headers.get(INSTANCE_HEADER), attempt, identity,
        )  # fmt: skip
        self.recorder.answers.append(answer)
        return answer, document

    # one operation, retried as a well-behaved client does --------------------------------

    async def perform(self, op: str, user: str, body: Any = None) -> Outcome:
        """``op`` for ``user`` until it succeeds, fails for good, or the deadline passes (429/503: honour Retry-After)."""
        outcome, _ = await self._perform(op, user, body)
        return outcome

    async def _perform(self, op: str, user: str, body: Any = None) -> tuple[Outcome, Any]:
        """:meth:`perform`, also returning the last answer's JSON body."""
        outcome = Outcome(op, user, started=self.recorder.now())
        document: Any = None
        history = self.recorder.users.setdefault(user, UserHistory()) if op not in OPERATOR_OPERATIONS else UserHistory()
        deadline = outcome.started + self.policy.deadline_seconds
        while True:
            outcome.attempts += 1
            answer, document = await self.call(op, user, outcome.attempts, body)
            outcome.status = answer.status
            if answer.status in SUCCESS[op]:
                outcome.ok = True
                if answer.status == 200 and isinstance(document, dict):
                    history.tokens.append(str(document["token"]))
                    history.acs_id = str(document.get("communicationUserId"))
                elif op in ("revoke", "delete"):
                    history.killed_before = len(history.tokens)
                break
            retryable = answer.status in RETRYABLE or answer.status == 0
            if not (retryable and self.policy.honour_retry_after):
                break
            wait = retry_after_seconds(answer.retry_after)
            wait = self.policy.fallback_retry_after if wait is None else wait
            wait *= 1 + self.rng.uniform(0, self.policy.jitter)
            if self.recorder.now() + wait > deadline:
                break
            outcome.waited += wait
            await asyncio.sleep(wait)
        outcome.finished = self.recorder.now()
        self.recorder.outcomes.append(outcome)
        return outcome, document

    # scenarios -------------------------------------------------------------------------

    async def run_user(self, user: str, ops: Sequence[str], think_seconds: float = 0.0) -> None:
        """A user's operations in order, with up to ``think_seconds`` (random) between them."""
        for index, op in enumerate(ops):
            if index and think_seconds:
                await asyncio.sleep(self.rng.uniform(0, think_seconds))
            await self.perform(op, user)

    async def mixed(
        self,
        users: Sequence[str],
        ops_per_user: int,
        *,
        concurrency: int,
        think_seconds: float = 0.0,
        mix: Mapping[str, float] = DEFAULT_MIX,
    ) -> None:
        """``users`` (each with its own script, see :func:`plan_mixed`) run by ``concurrency`` workers."""
        plans = plan_mixed(users, ops_per_user, self.rng, mix)
        queue: asyncio.Queue[str] = asyncio.Queue()
        for user in users:
            queue.put_nowait(user)

        async def worker() -> None:
            while not queue.empty():
                user = queue.get_nowait()
                await self.run_user(user, plans[user], think_seconds)

        await asyncio.gather(*(worker() for _ in range(min(concurrency, len(users)))))

    async def storm(self, prefix: str, count: int, within_seconds: float) -> list[Outcome]:
        """``count`` new users arriving evenly within ``within_seconds``, each getting its first token (retrying as told)."""
        self.recorder.mark(f"storm {prefix}: {count} users within {within_seconds:.0f} s")
        begin = self.recorder.now()

        async def arrive(index: int) -> Outcome:
            delay = begin + index * within_seconds / count - self.recorder.now()
            if delay > 0:
                await asyncio.sleep(delay)
            return await self.perform("issue", f"{prefix}-{index}")

        return list(await asyncio.gather(*(arrive(index) for index in range(count))))

    async def incident_campaign(self, reason: str = "fleet incident") -> CampaignStart | None:
        """An operator starts an incident campaign (``POST /api/ops/campaigns``): every token issued before now dies.

        The tokens every user had received before the request was sent are surely older than the campaign's T
        (the server's clock when it records it), so they are due to die; tokens still in flight are not counted.
        """
        self.recorder.mark("campaign: revoke every token issued before now")
        sent = self.recorder.now()
        issued_before = {user: len(history.tokens) for user, history in self.recorder.users.items()}
        outcome, document = await self._perform("campaign", "operator", {"reason": reason})
        if not outcome.ok or not isinstance(document, dict):
            return None
        for user, count in issued_before.items():
            history = self.recorder.users[user]
            history.killed_before = max(history.killed_before, count)
        started = CampaignStart(str(document["id"]), sent, outcome.finished)
        self.recorder.campaigns.append(started)
        return started

    async def revocation_requests(self, users: Sequence[str], action: str = "revoke", chunk: int = 100) -> list[Outcome]:
        """An operator records ``action`` for ``users`` (``POST /api/ops/revocations``, lists of ``chunk``).

        Tokens a user got before its request was accepted are then due to die (the sweep carries it out).
        """
        self.recorder.mark(f"requests: {action} {len(users)} users")
        outcomes = []
        for start in range(0, len(users), chunk):
            batch = users[start : start + chunk]
            histories = {user: self.recorder.users.setdefault(user, UserHistory()) for user in batch}
            issued_before = {user: len(history.tokens) for user, history in histories.items()}  # before sending: surely earlier
            body = [{"userId": user, "action": action, "reason": "fleet operator requests"} for user in batch]
            outcome = await self.perform("requests", "operator", body)
            if outcome.ok:
                for user, history in histories.items():
                    history.killed_before = max(history.killed_before, issued_before[user])
            outcomes.append(outcome)
        return outcomes

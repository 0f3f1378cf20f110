"""The one place the Core Client depends on the inside of the ``ocpp`` package (written for ocpp 2.1).

``ocpp``'s ``ChargePoint.route_message`` drops frames it cannot parse, answers with OCPP 2.0's error
names, logs whole payloads, and queues every CALLRESULT/CALLERROR it receives in an unbounded queue
(read only by the call in flight). :class:`OcppLink` replaces it, and keeps the rest of ``ocpp``:

- every frame is parsed and every CALL validated against ``ocpp``'s own OCPP 1.6 JSON schemas by
  :mod:`core_client.ocpp.wire`, answering with 1.6's error codes; handlers are therefore declared with
  :func:`on` (``ocpp``'s ``@on`` without its second, 2.0-coded validation of the same schema);
- a CALL then goes to its ``@on`` handler (from ``ocpp``'s ``route_map``) as ``ocpp``'s ``_handle_call``
  would take it: the handler answers, the answer is sent, then the ``@after`` handler runs (follow-up
  calls go there, never before the answer). :meth:`OcppLink._handle_call` does it without what
  ``ocpp`` recomputes for every CALL: whether a handler takes ``call_unique_id`` (``inspect.signature``)
  is decided once per handler, each key is converted once (:func:`snake_case`, :func:`camel_case`), and
  the answer is built in one pass (a tenth of the CPU per CALL: ``python -m benchmarks.ocpp_wire``);
- a CALLRESULT/CALLERROR is passed on only if its id is that of a call of ours in flight; any other
  is dropped (and the first few per connection logged), so nothing piles up;
- exceptions a handler raises that are listed in :attr:`OcppLink.error_codes` become the CALLERROR
  named there; ``ocpp``'s own logs of frames and errors are cut to :data:`EXCERPT` characters;
- ``ocpp`` reads each JSON schema from disk on first use (and turns a failed read, e.g. "too many
  open files", into NotImplemented): :func:`load_schemas` reads all of OCPP 1.6's at start (and
  compiles the CALL schemas :mod:`~core_client.ocpp.wire` checks with);
- ``ocpp`` validates a call of ours and its answer in the loop's default thread pool
  (``ocpp.messages.ASYNC_VALIDATION``), where the daemon's chain reads queue: under load a RemoteStart
  waited seconds there before it was sent. :func:`load_schemas` turns that off: ``jsonschema`` checks
  them on the loop (tens of microseconds, once or twice per session);
- a call of ours that ``ocpp`` refuses before sending it (its own validation) raises :class:`NotSent`,
  never an error that looks like the charge point's answer.

:data:`RELIED_ON` names what this needs of ``ocpp``'s private side; :func:`problems` checks it (a
test runs it, and so does every new link), so a new ``ocpp`` version that changes it fails loudly.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import logging
import sys
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any, ClassVar

from ocpp import messages
from ocpp.charge_point import camel_to_snake_case, snake_to_camel_case
from ocpp.exceptions import OCPPError
from ocpp.messages import Call, MessageType, get_validator
from ocpp.routing import on as ocpp_on
from ocpp.v16 import ChargePoint
from ocpp.v16.enums import Action

from core_client.errors import CoreClientError
from core_client.ocpp.wire import FrameError, check_action, compiled_call_schema, parse_frame, validate_call, wire_text

log = logging.getLogger("core_client.ocpp")
EXCERPT = 300  # characters of a frame or payload that go into a log line
DROPS_LOGGED = 5  # unsolicited results logged per connection (all are counted)
#: ``ocpp`` internals used here: ChargePoint methods, instance attributes, and parameters of call().
RELIED_ON = {
    "methods": ("_send", "call", "start"),
    "attributes": ("_response_queue", "_response_timeout", "_connection", "_ocpp_version", "route_map", "logger"),
    "call parameters": ("payload", "suppress", "unique_id"),
    "messages module": ("ASYNC_VALIDATION",),
}


class OcppIncompatible(CoreClientError):
    """The installed ``ocpp`` package no longer has what :class:`OcppLink` relies on."""


class NotSent(CoreClientError):
    """A call of ours that ``ocpp`` refused before sending it (the charge point never saw it)."""


#: OCPP 1.6 schemas ``ocpp`` reads with Decimal floats (its _validate_payload); the rest with float.
DECIMAL_SCHEMAS = {(MessageType.Call, "SetChargingProfile"), (MessageType.Call, "RemoteStartTransaction")}
DECIMAL_SCHEMAS.add((MessageType.CallResult, "GetCompositeSchedule"))


def load_schemas() -> int:
    """Read every OCPP 1.6 JSON schema into ``ocpp``'s cache, so that no frame needs a file later (a
    process out of descriptors still validates), and compile the CALL schemas; from now on ``ocpp``
    validates our calls and their answers on the loop, not in its thread pool. Returns how many
    schemas; OcppIncompatible if one is missing."""
    messages.ASYNC_VALIDATION = False
    loaded = 0
    for action in Action:
        for kind in (MessageType.Call, MessageType.CallResult):
            parse_float = Decimal if (kind, action.value) in DECIMAL_SCHEMAS else float
            try:
                get_validator(kind, action.value, "1.6", parse_float=parse_float)
                if kind == MessageType.Call:
                    compiled_call_schema(action.value)
            except (OSError, ValueError) as error:
                raise OcppIncompatible(f"ocpp's OCPP 1.6 schema of {action.value} cannot be read: {error}") from None
            loaded += 1
    return loaded


def problems(link: ChargePoint | None = None) -> list[str]:
    """What of :data:`RELIED_ON` is missing in the installed ``ocpp`` (empty: all there)."""
    found = []
    for name in RELIED_ON["methods"]:
        if not callable(getattr(ChargePoint, name, None)):
            found.append(f"ChargePoint.{name}() is gone")
    found += [f"ocpp.messages.{a} is gone" for a in RELIED_ON["messages module"] if not hasattr(messages, a)]
    if callable(getattr(ChargePoint, "call", None)):
        parameters = inspect.signature(ChargePoint.call).parameters
        found += [f"ChargePoint.call() has no '{p}'" for p in RELIED_ON["call parameters"] if p not in parameters]
    if link is not None:
        found += [f"ChargePoint().{a} is gone" for a in RELIED_ON["attributes"] if not hasattr(link, a)]
        if not isinstance(getattr(link, "_response_queue", None), asyncio.Queue):
            found.append("ChargePoint()._response_queue is not an asyncio.Queue")
    return found


@functools.lru_cache(maxsize=1024)
def snake_key(key: str) -> str:
    """``ocpp``'s camelCase -> snake_case conversion of one payload key (``chargePointVendor`` ->
    ``charge_point_vendor``), remembered: the schemas name a few dozen keys (what else a peer sends
    is refused before it gets here; the cache is bounded all the same)."""
    return next(iter(camel_to_snake_case({key: None})))


@functools.lru_cache(maxsize=1024)
def camel_key(key: str) -> str:
    """``ocpp``'s snake_case -> camelCase conversion of one key of an answer, remembered."""
    return next(iter(snake_to_camel_case({key: None})))


def snake_case(data: Any) -> Any:
    """``ocpp``'s ``camel_to_snake_case`` of a CALL's payload (its handler's keyword arguments), each key
    converted once (:func:`snake_key`)."""
    if isinstance(data, dict):
        return {snake_key(key): snake_case(value) for key, value in data.items()}
    if isinstance(data, list):
        return [snake_case(value) for value in data]
    return data


def camel_case(data: Any) -> Any:
    """The payload of a handler's answer (an ``ocpp`` call_result dataclass) as ``ocpp`` sends it, in
    one pass: dataclasses and dicts as objects without their None values, lists without None items,
    keys in camelCase (:func:`camel_key`); what ``snake_to_camel_case(remove_nones(serialize_as_dict(...)))``
    builds with a deep copy and three walks."""
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        items = ((field.name, getattr(data, field.name)) for field in dataclasses.fields(data))
    elif isinstance(data, dict):
        items = iter(data.items())
    elif isinstance(data, list | tuple):
        return [camel_case(value) for value in data if value is not None]
    else:
        return data
    return {camel_key(key): camel_case(value) for key, value in items if value is not None}


def takes_call_id(handler: Callable) -> bool:
    """Whether a route_map hook (a bound method, or a wrapper of one) takes ``ocpp``'s ``call_unique_id``
    keyword: decided once per function, not per CALL."""
    unwrapped = inspect.unwrap(handler)
    return _takes_call_id(getattr(unwrapped, "__func__", unwrapped))


@functools.cache
def _takes_call_id(function: Callable) -> bool:
    return "call_unique_id" in inspect.signature(function).parameters


def on(action: Any) -> Callable:
    """``ocpp``'s ``@on(action)`` for a link whose CALLs :class:`OcppLink` has validated already."""
    return ocpp_on(action, skip_schema_validation=True)


def excerpt(value: Any) -> str:
    """A value as it may appear in a log line: escaped (see :func:`~core_client.ocpp.wire.wire_text`), at most :data:`EXCERPT` characters."""
    return wire_text(value if isinstance(value, str) else repr(value), EXCERPT)


class _Excerpts(logging.LoggerAdapter):
    """The logger handed to ``ocpp``: its frame and error logs name at most an excerpt of a payload."""

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("exc_info") and isinstance(sys.exc_info()[1], OCPPError):
            level, kwargs["exc_info"] = logging.WARNING, False  # answered with its CALLERROR: no traceback
        if self.isEnabledFor(level):
            self.logger.log(level, msg, *(excerpt(a) for a in args), **kwargs)


class OcppLink(ChargePoint):
    """One OCPP 1.6J connection with 1.6 error codes, answers before follow-ups, bounded results."""

    #: Exceptions of handlers that are the charge point's fault -> the OCPP error answering them.
    error_codes: ClassVar[dict[type[Exception], type[OCPPError]]] = {}

    def __init__(self, cp_id: str, connection: Any, response_timeout: float, wire_log: logging.Logger) -> None:
        super().__init__(cp_id, connection, response_timeout=response_timeout, logger=_Excerpts(wire_log, {}))
        missing = problems(self)
        if missing:
            raise OcppIncompatible(f"the installed ocpp package does not fit core_client: {'; '.join(missing)}")
        self._handled = {action for action, hooks in self.route_map.items() if "_on_action" in hooks}
        for hooks in self.route_map.values():
            if "_on_action" in hooks:
                hooks["_on_action"] = self._mapping_errors(hooks["_on_action"])
        self._takes_id = {
            h: takes_call_id(h) for hooks in self.route_map.values() for h in hooks.values() if callable(h)
        }
        self._follow_ups: set[asyncio.Future] = set()  # @after handlers that are coroutines, running
        self._in_flight: set[str] = set()
        self._answered: set[str] = set()  # calls in flight whose answer arrived
        self.dropped_results = 0

    @property
    def response_timeout(self) -> float:
        """Seconds a call waits for the charge point's answer."""
        return self._response_timeout

    async def close(self, reason: str) -> None:
        """Close the connection (code 1000, ``reason``)."""
        await self._connection.close(1000, reason)

    def heard(self, action: str) -> None:
        """A valid CALL ``action`` came in, about to be handled (a hook for subclasses)."""

    async def route_message(self, raw_msg: str | bytes) -> None:
        """Route one frame; errors get 1.6's CALLERROR instead of being dropped or crashing the link."""
        try:
            msg = parse_frame(raw_msg)
            if isinstance(msg, Call):
                check_action(msg, self._handled)
                validate_call(msg)
        except FrameError as error:
            log.warning("%s: %s (frame %s)", self.id, error, excerpt(raw_msg))
            if error.reply:
                await self._send(error.call_error())
            return
        if not isinstance(msg, Call):
            if msg.unique_id in self._in_flight:
                self._answered.add(msg.unique_id)
                self._response_queue.put_nowait(msg)
                return
            self.dropped_results += 1
            if self.dropped_results <= DROPS_LOGGED:
                log.warning("%s: result for no call in flight dropped (id %s)", self.id, excerpt(msg.unique_id))
            return
        self.heard(msg.action)
        try:
            await self._handle_call(msg)
        except OCPPError as error:
            await self._send(msg.create_call_error(error).to_json())

    async def _handle_call(self, msg: Call) -> None:
        """Answer a validated CALL of a handled action: its ``@on`` handler's answer is sent, then its
        ``@after`` handler runs (as ``ocpp``'s ``_handle_call``; a handler's exception is answered with
        its CALLERROR, InternalError for one that is no OCPPError)."""
        hooks = self.route_map[msg.action]
        kwargs = snake_case(msg.payload)
        try:
            response = self._run(hooks["_on_action"], kwargs, msg.unique_id)
            if inspect.isawaitable(response):
                response = await response
        except Exception as error:
            self.logger.exception("Error while handling request '%s'", msg)
            await self._send(msg.create_call_error(error).to_json())
            return
        await self._send(msg.create_call_result(camel_case(response)).to_json())
        follow_up = hooks.get("_after_action")
        if follow_up is not None:
            started = self._run(follow_up, kwargs, msg.unique_id)
            if inspect.isawaitable(started):  # a task: a call of ours there must not hold up this link's reads
                task = asyncio.ensure_future(started)
                self._follow_ups.add(task)
                task.add_done_callback(self._follow_ups.discard)

    def _run(self, handler: Callable, kwargs: dict[str, Any], unique_id: str) -> Any:
        if self._takes_id[handler]:
            return handler(**kwargs, call_unique_id=unique_id)
        return handler(**kwargs)

    async def call(self, payload: Any, suppress: bool = True, unique_id: str | None = None, **kwargs: Any) -> Any:
        """``ocpp``'s call(), with its id registered as in flight while it waits for the answer. An OCPP
        error without an answer is ``ocpp``'s own refusal before sending: :class:`NotSent`."""
        unique_id = unique_id or str(uuid.uuid4())
        self._in_flight.add(unique_id)
        try:
            return await super().call(payload, suppress=suppress, unique_id=unique_id, **kwargs)
        except OCPPError as error:
            if unique_id in self._answered:
                raise
            cause = f"{error.code}: {error.description}" + (f" {error.details}" if error.details else "")
            raise NotSent(f"{type(payload).__name__} not sent ({excerpt(cause)})") from None
        finally:
            self._in_flight.discard(unique_id)
            self._answered.discard(unique_id)

    def _mapping_errors(self, handler: Callable) -> Callable:
        codes = self.error_codes

        def mapped(error: Exception) -> OCPPError:
            code = next(c for e, c in codes.items() if isinstance(error, e))
            log.warning("%s: %s", self.id, excerpt(str(error)))
            return code(description=str(error))

        if inspect.iscoroutinefunction(handler):  # a handler that waits (a roaming token asked of its eMSP)

            @functools.wraps(handler)
            async def waiting(*args: Any, **kwargs: Any) -> Any:
                try:
                    return await handler(*args, **kwargs)
                except tuple(codes) as error:
                    raise mapped(error) from None

            return waiting

        @functools.wraps(handler)
        def answering(*args: Any, **kwargs: Any) -> Any:
            try:
                return handler(*args, **kwargs)
            except tuple(codes) as error:
                raise mapped(error) from None

        return answering

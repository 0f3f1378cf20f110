"""How a link hands a CALL to its handler and sends the answer (core_client.ocpp.adapter): the payload
conversions it does once per key build exactly what the ``ocpp`` package builds for every CALL, so the
handlers see the same arguments and the charge points the same answers (no network); a command of ours
goes out without waiting for the loop's thread pool (a real websocket, the charge point's frames
written here from the spec)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading

import pytest
import websockets
from ocpp.charge_point import camel_to_snake_case, remove_nones, serialize_as_dict, snake_to_camel_case
from ocpp.v16 import call_result, datatypes
from ocpp.v16.enums import AuthorizationStatus, RegistrationStatus
from websockets.asyncio.server import ServerConnection

from benchmarks.fuzz_frames import SCHEMAS, FrameGenerator
from core_client.ocpp.adapter import camel_case, load_schemas, snake_case, takes_call_id
from core_client.ocpp.link import StationLink


def _as_ocpp_sends(answer: object) -> str:
    return json.dumps(snake_to_camel_case(remove_nones(serialize_as_dict(answer))), sort_keys=True)


@pytest.mark.issue(21, item=4)
def test_a_calls_payload_reaches_its_handler_with_the_keys_ocpp_gives_it():
    generator = FrameGenerator(7)
    frames = [f for f in generator.frames(3000) if f.kind in ("valid", "mutated")]
    assert len(frames) > 1000
    for frame in frames:
        payload = json.loads(frame.data)[3]
        assert snake_case(payload) == camel_to_snake_case(payload), frame.excerpt(300)


def _answers() -> list[object]:
    """Answers of every call_result the OCPP 1.6 schemas describe, optional fields at random (None when
    left out), plus ones as our links build them: nested dataclasses, None inside what they carry."""
    generator = FrameGenerator(3)
    answers: list[object] = []
    for name, cls in vars(call_result).items():
        schema_file = SCHEMAS / f"{name}Response.json"
        if not (dataclasses.is_dataclass(cls) and schema_file.exists()):
            continue
        schema = json.loads(schema_file.read_text())
        for _ in range(20):
            answers.append(cls(**camel_to_snake_case(generator.instance(schema))))
    info = datatypes.IdTagInfo(
        status=AuthorizationStatus.accepted, parent_id_tag=None, expiry_date="2027-01-01T00:00:00Z"
    )
    answers += [
        call_result.StartTransaction(transaction_id=17, id_tag_info=info),
        call_result.StopTransaction(id_tag_info=None),
        call_result.Authorize(id_tag_info=datatypes.IdTagInfo(status=AuthorizationStatus.blocked)),
        call_result.BootNotification(
            current_time="2026-12-06T00:00:00Z", interval=300, status=RegistrationStatus.pending
        ),
        call_result.GetConfiguration(configuration_key=[{"key": "k", "readonly": True, "value": None}, None]),
    ]
    return answers


@pytest.mark.issue(21, item=4)
def test_an_answer_goes_out_as_ocpp_would_send_it():
    answers = _answers()
    assert len({type(a) for a in answers}) > 30
    for answer in answers:
        assert json.dumps(camel_case(answer), sort_keys=True) == _as_ocpp_sends(answer), answer


@pytest.mark.issue(21, item=4)
def test_whether_a_handler_takes_the_message_id_is_read_from_its_signature():
    link = StationLink("CP-1", object(), service=None)  # type: ignore[arg-type]
    hooks = link.route_map
    assert takes_call_id(hooks["StartTransaction"]["_on_action"])  # the proxy's decided transaction ids
    assert not takes_call_id(hooks["MeterValues"]["_on_action"])
    assert not takes_call_id(hooks["StopTransaction"]["_after_action"])


@pytest.mark.issue(21, item=4)
async def test_a_command_goes_out_while_the_loops_thread_pool_is_busy():
    """ocpp validated a call of ours and its answer in the loop's default thread pool, where the daemon's
    chain reads queue: with every thread of it busy, a RemoteStart was not even sent (under load it
    waited seconds). After load_schemas (the daemon's start), it goes out and its answer is taken."""
    load_schemas()
    loop = asyncio.get_running_loop()
    busy = threading.Event()
    blockers = [loop.run_in_executor(None, busy.wait) for _ in range(64)]  # more than the pool's threads
    links: asyncio.Queue[StationLink] = asyncio.Queue()

    async def serve(connection: ServerConnection) -> None:
        link = StationLink("CP-1", connection, service=None)  # type: ignore[arg-type]
        links.put_nowait(link)
        await link.start()

    try:
        async with websockets.serve(serve, "127.0.0.1", 0, subprotocols=["ocpp1.6"]) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            async with websockets.connect(f"ws://127.0.0.1:{port}/CP-1", subprotocols=["ocpp1.6"]) as charge_point:
                link = await asyncio.wait_for(links.get(), 10)
                command = asyncio.ensure_future(link.remote_start(1, "EVN1"))
                frame = json.loads(await asyncio.wait_for(charge_point.recv(), 5))  # was: TimeoutError
                assert frame[:3] == [2, frame[1], "RemoteStartTransaction"]
                assert frame[3] == {"connectorId": 1, "idTag": "EVN1"}
                await charge_point.send(json.dumps([3, frame[1], {"status": "Accepted"}]))
                assert await asyncio.wait_for(command, 5) == "Accepted"
    finally:
        busy.set()
        await asyncio.gather(*blockers)

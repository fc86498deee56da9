"""``/ws/fleet/`` and ``/ws/devices/<id>/``: snapshots, live events, visibility, controls."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async

from gateway.layers import get_channel_layer
from gateway.testing import WebsocketCommunicator
from project.asgi import application
from project.dashboard.device_socket import NOT_FOUND
from project.iot.events import (
    FLEET_GROUP,
    device_group,
    devices_event,
    readings_event,
)
from project.iot.models import Thing
from project.iot.services import create_thing, summaries
from tests.project.dashboard.test_consumers import ORIGIN, WAIT, opened, session_of

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def things(staff: Any, member: Any) -> tuple[Thing, Thing]:
    """The staff user's boiler and the member's fridge (accepting ``open`` only)."""
    boiler, _ = await sync_to_async(create_thing)(staff, "boiler-1", "Boiler")
    fridge, _ = await sync_to_async(create_thing)(member, "fridge-1", "Fridge", commands=["open"])
    return boiler, fridge


async def announce(event: dict[str, Any], group: str) -> None:
    layer = get_channel_layer()
    assert layer is not None
    await layer.group_send(group, event)


async def test_the_fleet_socket_forwards_only_the_members_devices(
    member: Any, things: tuple[Thing, Thing]
) -> None:
    socket = await opened("/ws/fleet/", member)
    snapshot = await socket.receive_json_from(WAIT)
    assert snapshot["type"] == "snapshot"
    assert [d["device_id"] for d in snapshot["devices"]] == ["fridge-1"]

    boiler_summary, fridge_summary = await sync_to_async(summaries)(await _staff_of(things))
    await announce(devices_event([boiler_summary, fridge_summary]), FLEET_GROUP)
    # The boiler comes first in the batch: had it been forwarded, it would be this one.
    assert await socket.receive_json_from(WAIT) == {"type": "device", "device": fridge_summary}
    assert await socket.receive_nothing()
    await socket.disconnect()


async def _staff_of(things: tuple[Thing, Thing]) -> Any:
    return await sync_to_async(lambda: things[0].owner)()


async def test_another_users_device_socket_closes_as_not_found(
    member: Any, things: tuple[Thing, Thing]
) -> None:
    for device_id in ("boiler-1", "nothing-here"):
        socket = WebsocketCommunicator(
            application, f"/ws/devices/{device_id}/", headers=[ORIGIN, await session_of(member)]
        )
        accepted, _ = await socket.connect(WAIT)
        assert accepted
        close = await socket.receive_output(WAIT)
        assert (close["type"], close["code"]) == ("websocket.close", NOT_FOUND)
        await socket.disconnect()


async def test_the_device_socket_sends_a_snapshot_then_its_events(
    member: Any, things: tuple[Thing, Thing]
) -> None:
    socket = await opened("/ws/devices/fridge-1/", member)
    snapshot = await socket.receive_json_from(WAIT)
    assert snapshot["type"] == "snapshot"
    assert snapshot["device"]["device_id"] == "fridge-1"
    assert snapshot["commands_allowed"] == ["open"]
    assert (snapshot["points"], snapshot["alerts"], snapshot["thresholds"]) == ([], [], [])
    assert snapshot["bad_payloads"]["count"] == 0

    at, values = "2030-01-01T00:00:00+00:00", {"temperature": 4.5}
    await announce(readings_event("fridge-1", [(at, values)]), device_group("fridge-1"))
    assert await socket.receive_json_from(WAIT) == {
        "type": "readings",
        "points": [[at, values]],
        "dropped": 0,
    }
    await socket.disconnect()


async def test_commands_and_thresholds_over_the_socket(
    member: Any, things: tuple[Thing, Thing]
) -> None:
    socket = await opened("/ws/devices/fridge-1/", member)
    await socket.receive_json_from(WAIT)

    await socket.send_json_to({"type": "command", "name": "open", "args": {}})
    refused = [await socket.receive_json_from(WAIT) for _ in range(2)]
    # Answered directly and through the device's group: the page keys them by id.
    assert {m["command"]["id"] for m in refused} == {refused[0]["command"]["id"]}
    assert refused[0]["command"]["status"] == "refused"
    assert "offline" in refused[0]["command"]["reason"]

    await socket.send_json_to({"type": "command", "name": "explode", "args": {}})
    unknown = (await socket.receive_json_from(WAIT))["command"]
    assert (unknown["status"], unknown["name"]) == ("refused", "explode")
    await socket.receive_json_from(WAIT)

    threshold = {"type": "threshold", "metric": "temperature", "direction": "above"}
    await socket.send_json_to({**threshold, "limit": 8, "hysteresis": 1})
    assert (await socket.receive_json_from(WAIT))["thresholds"] == [
        {
            "metric": "temperature",
            "direction": "above",
            "limit": 8.0,
            "hysteresis": 1.0,
            "enabled": True,
        }
    ]
    await socket.send_json_to({**threshold, "limit": 8, "hysteresis": -1})
    error = await socket.receive_json_from(WAIT)
    assert (error["type"], list(error["errors"])) == ("error", ["hysteresis"])
    await socket.send_json_to(
        {"type": "delete_threshold", "metric": "temperature", "direction": "above"}
    )
    assert (await socket.receive_json_from(WAIT))["thresholds"] == []
    await socket.send_json_to({"type": "launch"})
    assert (await socket.receive_json_from(WAIT))["reason"] == "unknown message type 'launch'"
    await socket.disconnect()

import pytest

from gateway.routing import ChannelNameRouter
from tests.gateway.routing.apps import RecordingApp, never_receive, never_send


async def test_dispatches_on_channel_name() -> None:
    thumbnails, logs = RecordingApp("thumbnails"), RecordingApp("logs")
    router = ChannelNameRouter({"thumbnail.generate": thumbnails, "chat.log": logs})

    await router({"type": "channel", "channel": "chat.log"}, never_receive, never_send)

    assert logs.scope == {"type": "channel", "channel": "chat.log"}
    assert thumbnails.scopes == []
    assert set(router.application_mapping) == {"thumbnail.generate", "chat.log"}


async def test_unknown_channel_names_the_channel_and_the_known_ones() -> None:
    router = ChannelNameRouter({"chat.log": RecordingApp()})

    with pytest.raises(ValueError, match=r"channel name 'nope'.*configured: chat\.log"):
        await router({"type": "channel", "channel": "nope"}, never_receive, never_send)


async def test_scope_without_channel_is_refused() -> None:
    router = ChannelNameRouter({"chat.log": RecordingApp()})

    with pytest.raises(ValueError, match="without a 'channel' key"):
        await router({"type": "websocket", "path": "/"}, never_receive, never_send)

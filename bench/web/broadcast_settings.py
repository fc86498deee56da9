"""Django settings for the broadcast benchmark: bench/web/settings.py plus one in-memory
channel layer per framework.

gateway's and Channels' consumers read ``CHANNEL_LAYERS`` alike, so each names its
own alias (``channel_layer_alias``) and one settings module serves every server.
"""

from bench.web.settings import *  # noqa: F403

CHANNEL_LAYERS = {
    "gateway": {"BACKEND": "gateway.layers.InMemoryChannelLayer"},
    "channels": {"BACKEND": "channels.layers.InMemoryChannelLayer"},
}

"""Writes api_auth seeds signed by the Python server SDK (PyPI `pusher` 3.3.4).

Run with that package installed: `python3 python_sdk.py ../corpus/api_auth`. The SDK's clock is
frozen at the api_auth target's NOW so the seeds verify; each seed is `METHOD TARGET\\nBODY`
exactly as the SDK would send it (its query string is unescaped, as it puts it in the URL).
"""
import sys
import time

import pusher
from pusher.pusher_client import PusherClient

NOW = 1353088179
time.time = lambda: NOW

out = sys.argv[1]
client = PusherClient(app_id="3", key="278d425bdf160c739803", secret="7ad3773142a6692b25b8")


def write(name, request):
    with open(f"{out}/{name}", "wb") as f:
        f.write(f"{request.method} {request.signed_path}\n".encode() + request.body)


write("sdk-python-trigger", client.trigger.make_request("my-channel", "my-event", {"message": "hello world"}))
write("sdk-python-trigger-many", client.trigger.make_request(
    ["presence-room", "private-a", "cache-b"], "App\\Events\\OrderShipped", {"id": 7, "text": "caf\u00e9 \"quoted\""}))
write("sdk-python-trigger-except", client.trigger.make_request("news", "update", "plain string", socket_id="1234.5678"))
write("sdk-python-batch", client.trigger_batch.make_request([
    {"channel": "a", "name": "e1", "data": {"x": 1}},
    {"channel": "private-b", "name": "e2", "data": "two", "socket_id": "1.2"},
]))
write("sdk-python-channels-info", client.channels_info.make_request("presence-", ["user_count"]))
write("sdk-python-channel-info", client.channel_info.make_request("presence-room", ["user_count", "subscription_count"]))
write("sdk-python-users-info", client.users_info.make_request("presence-room"))

"""Writes the hand-made seeds of the fuzz corpora (the `sdk-*` api_auth seeds come from the
server SDKs themselves, see sdk-seeds/).

Run from protocol/fuzz: `python3 make_corpus.py`. Standard library only; rewriting the files
gives the same bytes. Each seed is small and stands for something real: what pusher-js, Chromium
and the server SDKs send, and the malformed variants each check of the parsers exists for.
"""
import hashlib
import hmac
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
KEY = "278d425bdf160c739803"
SECRET = "7ad3773142a6692b25b8"
NOW = 1353088179


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---------------------------------------------------------------- frame_decoder
# Input: settings byte (bit 0: decode as a client; bits 1-2: 0 default limits, 1 tiny, 2 large),
# split-seed byte, then the stream.
MASK_KEY = bytes([0x37, 0xFA, 0x21, 0x3D])


def frame(opcode, payload, fin=True, mask=MASK_KEY, rsv=0, length=None):
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    mbit = 0x80 if mask is not None else 0
    if n <= 125:
        head += bytes([mbit | n])
    elif n <= 0xFFFF:
        head += bytes([mbit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack(">Q", n)
    if mask is None:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def fd(name, stream, settings=0, seed=0):
    write("frame_decoder", name, bytes([settings, seed]) + stream)


SUB = '{"event":"pusher:subscribe","data":{"auth":"","channel":"my-channel"}}'
PING = '{"event":"pusher:ping","data":{}}'
WHISPER = '{"event":"client-typing","channel":"private-chat.1","data":{"name":"Taylor","typing":true}}'
ESTABLISHED = ('{"event":"pusher:connection_established","data":"{\\"socket_id\\":\\"1234.5678\\",'
               '\\"activity_timeout\\":30}"}')

fd("pusherjs-subscribe", frame(1, SUB))
fd("pusherjs-ping", frame(1, PING), seed=7)
fd("pusherjs-whisper", frame(1, WHISPER), seed=200)
fd("pusherjs-session", frame(1, SUB) + frame(1, PING) + frame(1, WHISPER) + frame(10, b"") +
   frame(8, struct.pack(">H", 1000)), seed=3)
fd("ping-pong-close", frame(9, b"hello") + frame(10, b"hello") + frame(8, struct.pack(">H", 1001) + b"going away"))
fd("close-empty", frame(8, b""))
fd("fragmented-with-ping", frame(1, "Hel", fin=False) + frame(9, b"mid") + frame(0, "lo wörld"), seed=11)
fd("fragmented-binary", frame(2, bytes(range(100)), fin=False) + frame(0, bytes(range(100, 200)), fin=False) +
   frame(0, b"", fin=True))
fd("binary-16bit-length", frame(2, bytes(i % 251 for i in range(300))))
fd("text-utf8-split", frame(1, "€𝄞 naïve " * 20), seed=99)
fd("empty-text", frame(1, b""))
fd("client-server-frames", frame(1, ESTABLISHED, mask=None) + frame(9, b"", mask=None), settings=1)
fd("client-masked-frame", frame(1, "x", mask=MASK_KEY), settings=1)
fd("tiny-limits-fragmented", frame(1, "a" * 100, fin=False) + frame(0, "b" * 100, fin=False) +
   frame(0, "c" * 100), settings=2)
fd("tiny-limits-frame-too-large", frame(2, b"z" * 126), settings=2)
fd("large-limits-64bit-length", frame(2, b"q" * 70, length=70000), settings=4)
fd("unmasked-client-frame", frame(1, "hi", mask=None))
fd("reserved-bits", frame(1, "hi", rsv=4))
fd("reserved-opcode", frame(3, "hi"))
fd("reserved-control-opcode", frame(11, b""))
fd("fragmented-control", frame(9, b"x", fin=False))
fd("control-too-long", frame(9, b"p" * 126))
fd("unexpected-continuation", frame(0, "orphan"))
fd("expected-continuation", frame(1, "a", fin=False) + frame(1, "b"))
fd("invalid-utf8", frame(1, b"ok \xc3\x28 bad"))
fd("invalid-utf8-fail-fast", frame(1, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80" + b"x" * 40)[:30])
fd("invalid-utf8-across-fragments", frame(1, b"\xf0\x9f", fin=False) + frame(0, b"\x98\x28"))
fd("truncated-utf8-at-end", frame(1, b"\xe2\x82", fin=True))
fd("close-one-byte", frame(8, b"\x03"))
fd("close-code-1005", frame(8, struct.pack(">H", 1005)))
fd("close-code-999", frame(8, struct.pack(">H", 999)))
fd("close-code-4100-reason", frame(8, struct.pack(">H", 4100) + "trop lent ✓".encode()))
fd("close-invalid-utf8-reason", frame(8, struct.pack(">H", 1000) + b"\xff"))
fd("length-msb-set", b"\x82\xff\x80\x00\x00\x00\x00\x00\x00\x01" + MASK_KEY)
fd("frame-too-large-default", frame(2, b"", length=10001)[:14])
fd("message-too-large-default", frame(2, b"m" * 6000, fin=False) + frame(0, b"n" * 6000))
fd("incomplete-header", b"\x81")
fd("incomplete-payload", frame(1, SUB)[:20], seed=5)

# ---------------------------------------------------------------- handshake
CHROMIUM = (
    "GET /app/app-key?protocol=7&client=js&version=8.6.0&flash=false HTTP/1.1\r\n"
    "Host: 127.0.0.1:8080\r\n"
    "Connection: Upgrade\r\n"
    "Pragma: no-cache\r\n"
    "Cache-Control: no-cache\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/156.0.0.0 Safari/537.36\r\n"
    "Upgrade: websocket\r\n"
    "Origin: http://127.0.0.1:8000\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Accept-Encoding: gzip, deflate, br, zstd\r\n"
    "Accept-Language: en-US,en;q=0.9\r\n"
    "Sec-WebSocket-Key: w4v7O6xFTi36lq3RNcgctw==\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    "\r\n"
)
NODE = (
    "GET /app/app-key?protocol=7&client=js&version=8.6.0&flash=false HTTP/1.1\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Connection: Upgrade\r\n"
    "Upgrade: websocket\r\n"
    "Host: localhost:8080\r\n"
    "\r\n"
)
FIREFOX = (
    "GET /app/app-key?protocol=7&client=js&version=8.6.0&flash=false HTTP/1.1\r\n"
    "Host: example.test\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0\r\n"
    "Accept: */*\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Origin: https://example.test\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate\r\n"
    "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
    "Connection: keep-alive, Upgrade\r\n"
    "Upgrade: WebSocket\r\n"
    "\r\n"
)


def hs(name, text):
    write("handshake", name, text)


hs("chromium-upgrade", CHROMIUM)
hs("pusherjs-node-upgrade", NODE)
hs("firefox-upgrade", FIREFOX)
hs("upgrade-with-pipelined-frame", NODE.encode() + frame(1, SUB))
hs("upgrade-bare-lf", NODE.replace("\r\n", "\n"))
hs("upgrade-absolute-form", NODE.replace("GET /app/", "GET http://localhost:8080/app/"))
hs("upgrade-version-8", NODE.replace("Version: 13", "Version: 8"))
hs("upgrade-two-versions", NODE.replace("Sec-WebSocket-Version: 13\r\n", "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 8\r\n"))
hs("upgrade-no-version", NODE.replace("Sec-WebSocket-Version: 13\r\n", ""))
hs("upgrade-no-key", NODE.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""))
hs("upgrade-short-key", NODE.replace("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZQ=="))
hs("upgrade-key-not-base64", NODE.replace("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZ!="))
hs("upgrade-post", NODE.replace("GET ", "POST "))
hs("upgrade-http10", NODE.replace("HTTP/1.1", "HTTP/1.0"))
hs("upgrade-two-hosts", NODE.replace("Host: localhost:8080\r\n", "Host: a\r\nHost: b\r\n"))
hs("upgrade-no-host", NODE.replace("Host: localhost:8080\r\n", ""))
hs("upgrade-no-connection-token", NODE.replace("Connection: Upgrade", "Connection: keep-alive"))
hs("upgrade-no-upgrade", NODE.replace("Upgrade: websocket\r\n", ""))
hs("api-post-head-and-body",
   "POST /apps/3/events?auth_key=k&auth_timestamp=1&auth_version=1.0&body_md5=x&auth_signature=y HTTP/1.1\r\n"
   "Content-Type: application/json\r\nX-Pusher-Library: pusher-http-node 5.3.4\r\nHost: 127.0.0.1:8080\r\n"
   "Content-Length: 58\r\nConnection: keep-alive\r\n\r\n"
   '{"name":"e","channels":["a"],"data":"{\\"x\\":1}"}')
hs("health-http10", "GET /up HTTP/1.0\r\n\r\n")
hs("chunked-body", "POST /apps/3/events HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
hs("transfer-encoding-gzip", "POST /apps/3/events HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n")
hs("content-length-bad", "POST /apps/3/events HTTP/1.1\r\nHost: h\r\nContent-Length: 1x\r\n\r\n")
hs("content-length-twice", "POST /apps/3/events HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
hs("content-length-too-large", "POST /apps/3/events HTTP/1.1\r\nHost: h\r\nContent-Length: 999999999999\r\n\r\n")
hs("too-many-headers", "GET / HTTP/1.1\r\n" + "".join(f"X-H{i}: v\r\n" for i in range(70)) + "\r\n")
hs("head-too-large-incomplete", "GET / HTTP/1.1\r\nX-Big: " + "a" * 8300)
hs("incomplete-head", NODE[:-2])
hs("request-line-only", "GET /app/app-key HTTP/1.1\r\n")
hs("not-http", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
hs("http2-preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
hs("header-value-latin1", b"GET / HTTP/1.1\r\nHost: h\r\nX-Name: caf\xe9\r\n\r\n")

# ---------------------------------------------------------------- pusher_message
PM = {
    "subscribe-public": SUB,
    "subscribe-private": '{"event":"pusher:subscribe","data":{"auth":"278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4","channel":"private-foobar"}}',
    "subscribe-presence": '{"event":"pusher:subscribe","data":{"auth":"278d425bdf160c739803:31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80","channel_data":"{\\"user_id\\":10,\\"user_info\\":{\\"name\\":\\"Mr. Channels\\"}}","channel":"presence-foobar"}}',
    "subscribe-data-as-string": '{"event":"pusher:subscribe","data":"{\\"channel\\":\\"news\\"}"}',
    "subscribe-auth-null": '{"event":"pusher:subscribe","data":{"auth":null,"channel":"news"}}',
    "subscribe-server-to-user": '{"event":"pusher:subscribe","data":{"auth":"","channel":"#server-to-user-42"}}',
    "subscribe-no-channel": '{"event":"pusher:subscribe","data":{"auth":""}}',
    "subscribe-channel-number": '{"event":"pusher:subscribe","data":{"channel":7}}',
    "unsubscribe": '{"event":"pusher:unsubscribe","data":{"channel":"my-channel"}}',
    "ping": PING,
    "ping-no-data": '{"event":"pusher:ping"}',
    "pong": '{"event":"pusher:pong","data":{}}',
    "signin": '{"event":"pusher:signin","data":{"auth":"278d425bdf160c739803:4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba","user_data":"{\\"id\\":\\"12345\\"}"}}',
    "whisper-object": WHISPER,
    "whisper-string": '{"event":"client-message","channel":"private-room","data":"just \\"text\\" \\u2028"}',
    "whisper-nested": '{"event":"client-x","channel":"presence-room","data":{"a":[1,2.5e3,-0,true,null,{"b":"\\ud83d\\ude00"}]}}',
    "whisper-no-data": '{"event":"client-x","channel":"private-room"}',
    "whisper-no-channel": '{"event":"client-x","data":{}}',
    "whisper-name-too-long": json.dumps({"event": "client-" + "x" * 200, "channel": "private-a", "data": {}}),
    "unknown-pusher-event": '{"event":"pusher:bogus","data":{}}',
    "internal-event": '{"event":"pusher_internal:member_added","data":{}}',
    "event-without-prefix": '{"event":"hello","data":{}}',
    "missing-event": '{"data":{}}',
    "event-not-string": '{"event":42}',
    "array": '[{"event":"pusher:ping"}]',
    "invalid-json": '{"event":"pusher:ping",',
    "duplicate-keys": '{"event":"pusher:ping","event":"client-x","channel":"private-a"}',
    "deep-nesting": '{"event":"client-x","channel":"private-a","data":' + "[" * 200 + "]" * 200 + "}",
    "not-utf8": b'{"event":"client-x","channel":"private-a","data":"\xff"}',
    "whitespace": ' \n{ "event" : "pusher:unsubscribe" , "data" : { "channel" : "a" } }\t',
}
for name, text in PM.items():
    write("pusher_message", name, text)

# ---------------------------------------------------------------- api_auth
# Input: `METHOD TARGET\nBODY`, verified against KEY/SECRET at NOW (see src/api_auth.rs).


def sign(method, path, params, body=b""):
    params = dict(params)
    params.setdefault("auth_key", KEY)
    params.setdefault("auth_timestamp", str(NOW))
    params.setdefault("auth_version", "1.0")
    if body:
        params.setdefault("body_md5", hashlib.md5(body).hexdigest())
    to_sign = "&".join(f"{k.lower()}={v}" for k, v in sorted(params.items(), key=lambda kv: kv[0].lower()))
    sig = hmac.new(SECRET.encode(), f"{method}\n{path}\n{to_sign}".encode(), hashlib.sha256).hexdigest()
    return params, sig


def api(name, method, path, body=b"", params=(), raw_query=None, tamper=None):
    if isinstance(body, str):
        body = body.encode()
    params, sig = sign(method, path, params, body)
    if tamper:
        tamper(params)
    query = raw_query if raw_query is not None else "&".join(f"{k}={v}" for k, v in params.items())
    write("api_auth", name, f"{method} {path}?{query}&auth_signature={sig}\n".encode() + body)


DOCS_BODY = '{"name":"foo","channels":["project-3"],"data":"{\\"some\\":\\"data\\"}"}'
api("docs-example", "POST", "/apps/3/events", DOCS_BODY)
api("event-one-channel", "POST", "/apps/3/events", '{"name":"e","channel":"news","data":"hi"}')
api("event-info", "POST", "/apps/3/events",
    '{"name":"e","channels":["presence-a","b"],"data":"{}","info":"user_count,subscription_count"}')
api("event-socket-id", "POST", "/apps/3/events", '{"name":"e","channel":"a","data":"x","socket_id":"123.456"}')
api("batch", "POST", "/apps/3/batch_events",
    '{"batch":[{"name":"a","channel":"x","data":"1"},{"name":"b","channels":["y"],"data":"2"}]}')
api("legacy-channel-event", "POST", "/apps/3/channels/my-channel/events", '{"hello":"world"}',
    params={"name": "my-event", "socket_id": "1.2"})
api("get-channels-info", "GET", "/apps/3/channels", params={"info": "user_count,subscription_count"})
# PHP's http_build_query escapes the comma: the signature covers the decoded value.
params, sig = sign("GET", "/apps/3/channels", {"filter_by_prefix": "presence-", "info": "user_count"})
write("api_auth", "get-channels-percent-encoded",
      "GET /apps/3/channels?" + "&".join(f"{k}={v}".replace(",", "%2C").replace("presence-", "presence%2D")
                                        for k, v in params.items()) + f"&auth_signature={sig}\n")
api("get-connections", "GET", "/apps/3/connections")
api("terminate-user", "POST", "/apps/3/users/u%2F1/terminate_connections", "{}")
api("wrong-signature", "POST", "/apps/3/events", DOCS_BODY, tamper=lambda p: p.update(auth_timestamp=str(NOW + 1)))
api("expired-timestamp", "POST", "/apps/3/events", DOCS_BODY, params={"auth_timestamp": str(NOW - 601)})
api("wrong-key", "POST", "/apps/3/events", DOCS_BODY, params={"auth_key": "someone-else"})
api("auth-version-2", "POST", "/apps/3/events", DOCS_BODY, params={"auth_version": "2.0"})
api("missing-body-md5", "POST", "/apps/3/events", DOCS_BODY, tamper=lambda p: p.pop("body_md5"))
api("body-md5-mismatch", "POST", "/apps/3/events", DOCS_BODY, params={"body_md5": "0" * 32})
api("duplicate-auth-key", "POST", "/apps/3/events", DOCS_BODY, tamper=lambda p: p.update(AUTH_KEY=KEY))
api("bad-percent", "GET", "/apps/3/channels", raw_query="info=%zz")
api("method-not-allowed", "GET", "/apps/3/events")
api("unknown-path", "POST", "/apps/3/nothing", "{}")
api("empty-segment", "POST", "/apps//events", "{}")
api("channel-and-channels", "POST", "/apps/3/events", '{"name":"e","channel":"a","channels":["b"],"data":"x"}')
api("no-channel", "POST", "/apps/3/events", '{"name":"e","data":"x"}')
api("empty-channels", "POST", "/apps/3/events", '{"name":"e","channels":[],"data":"x"}')
api("duplicate-channels", "POST", "/apps/3/events", '{"name":"e","channels":["a","a"],"data":"x"}')
api("too-many-channels", "POST", "/apps/3/events",
    json.dumps({"name": "e", "channels": [f"c{i}" for i in range(101)], "data": "x"}))
api("invalid-channel-name", "POST", "/apps/3/events", '{"name":"e","channel":"bad channel!","data":"x"}')
api("data-not-string", "POST", "/apps/3/events", '{"name":"e","channel":"a","data":{"x":1}}')
api("data-too-large", "POST", "/apps/3/events", json.dumps({"name": "e", "channel": "a", "data": "d" * 10241}))
api("name-too-long", "POST", "/apps/3/events", json.dumps({"name": "n" * 201, "channel": "a", "data": "x"}))
api("bad-socket-id", "POST", "/apps/3/events", '{"name":"e","channel":"a","data":"x","socket_id":"1.2.3"}')
api("unknown-info", "POST", "/apps/3/events", '{"name":"e","channel":"a","data":"x","info":"everything"}')
api("batch-too-large", "POST", "/apps/3/batch_events",
    json.dumps({"batch": [{"name": "e", "channel": "a", "data": str(i)} for i in range(11)]}))
api("batch-item-two-channels", "POST", "/apps/3/batch_events",
    '{"batch":[{"name":"e","channels":["a","b"],"data":"x"}]}')
api("batch-not-array", "POST", "/apps/3/batch_events", '{"batch":{}}')
api("body-not-json", "POST", "/apps/3/events", "name=e&channel=a")
api("body-duplicate-field", "POST", "/apps/3/events", '{"name":"e","name":"f","channel":"a","data":"x"}')
write("api_auth", "request-line-only", "GET /apps/3/channels")
write("api_auth", "empty", "")

"""Checks webhook requests with the PyPI `pusher` package's own validation.

Reads one JSON object a line on stdin: {"id", "key", "signature", "body", "app_id", "app_key",
"secret"}. For each it answers one JSON line on stdout: {"id", "valid", "wrong_secret_valid",
"events"}: `valid` is whether `Pusher.validate_webhook` with the app's secret accepts the
request, `wrong_secret_valid` whether it accepts it with a wrong secret (it must not), and
`events` the events of the decoded body.
"""

import json
import sys

import pusher


def main():
    clients = {}
    for line in sys.stdin:
        req = json.loads(line)
        ident = (req["app_id"], req["app_key"], req["secret"])
        if ident not in clients:
            clients[ident] = (
                pusher.Pusher(app_id=req["app_id"], key=req["app_key"], secret=req["secret"]),
                pusher.Pusher(app_id=req["app_id"], key=req["app_key"], secret=req["secret"] + "-wrong"),
            )
        good, bad = clients[ident]
        decoded = good.validate_webhook(req["key"], req["signature"], req["body"])
        wrong = bad.validate_webhook(req["key"], req["signature"], req["body"])
        print(
            json.dumps(
                {
                    "id": req["id"],
                    "valid": decoded is not None,
                    "wrong_secret_valid": wrong is not None,
                    "events": decoded["events"] if decoded else None,
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()

"""Parses a Prometheus text exposition from stdin with prometheus_client's parser and prints
its samples as JSON: {"families": [{"name", "type", "help", "samples": [{"name", "labels",
"value"}]}]}. Exits 1, with the parser's error, when the text is not valid."""

import json
import math
import sys

from prometheus_client.parser import text_string_to_metric_families


def main() -> int:
    text = sys.stdin.read()
    try:
        families = [
            {
                "name": f.name,
                "type": f.type,
                "help": f.documentation,
                "samples": [
                    {
                        "name": s.name,
                        "labels": s.labels,
                        "value": "+Inf" if math.isinf(s.value) else s.value,
                    }
                    for s in f.samples
                ],
            }
            for f in text_string_to_metric_families(text)
        ]
    except Exception as e:  # the parser raises ValueError and others on bad input
        print(f"prometheus_client refused the exposition: {e!r}", file=sys.stderr)
        return 1
    json.dump({"families": families}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())

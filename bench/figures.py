"""Reads one figure from a ringcast-bench JSON report, for the comparison scripts
(compare.sh, cluster.sh): a metric by its name, or a latency percentile as `label:field` (the
first latency row whose description starts with `label`, e.g. `end-to-end:p99_ms`)."""

import json


def value(path, name):
    """The figure `name` of the report at `path`, or None when the report has none."""
    r = json.load(open(path))
    if ':' in name:
        label, field = name.split(':')
        for l in r.get('latency', []):
            if l.get('what', '').startswith(label):
                return l.get(field)
        return None
    for m in r.get('metrics', []):
        if m['name'] == name:
            return m['value']
    return None

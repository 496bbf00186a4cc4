"""Checks a kosoku (Autobahn) report of ringcast's /echo endpoint.

Usage: check.py INDEX_JSON EXPECTED_JSON [--update]

Fails when a case's behavior is not OK, NON-STRICT or INFORMATIONAL, or its closing behavior is
not OK or INFORMATIONAL, and when the per-case summary differs from EXPECTED_JSON. With --update,
EXPECTED_JSON is rewritten from this report (the failing-case check still applies).
"""

import json
import sys

ACCEPTED_BEHAVIOR = {"OK", "NON-STRICT", "INFORMATIONAL"}
ACCEPTED_CLOSE = {"OK", "INFORMATIONAL"}


def case_key(case_id):
    return tuple(int(part) for part in case_id.split("."))


def summarize(index):
    """{case id: {"behavior": ..., "behaviorClose": ...}} in case order, for one agent."""
    if len(index) != 1:
        raise SystemExit(f"expected one server in the report, found {sorted(index)}")
    (cases,) = index.values()
    return {
        case: {"behavior": cases[case]["behavior"], "behaviorClose": cases[case]["behaviorClose"]}
        for case in sorted(cases, key=case_key)
    }


def dump(summary):
    """JSON with one case per line, so a change of one case is a one-line diff."""
    lines = [f"  {json.dumps(case)}: {json.dumps(result)}" for case, result in summary.items()]
    return "{\n" + ",\n".join(lines) + "\n}\n"


def main(argv):
    if len(argv) not in (3, 4) or (len(argv) == 4 and argv[3] != "--update"):
        raise SystemExit(__doc__)
    index_path, expected_path = argv[1], argv[2]
    update = len(argv) == 4

    try:
        with open(index_path, encoding="utf-8") as f:
            summary = summarize(json.load(f))
    except FileNotFoundError:
        print(f"no report at {index_path}: kosoku did not finish", file=sys.stderr)
        return 1

    counts = {}
    for result in summary.values():
        counts[result["behavior"]] = counts.get(result["behavior"], 0) + 1
    print(f"Autobahn: {len(summary)} cases: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))

    failed = [
        case
        for case, r in summary.items()
        if r["behavior"] not in ACCEPTED_BEHAVIOR or r["behaviorClose"] not in ACCEPTED_CLOSE
    ]
    for case in failed:
        r = summary[case]
        print(f"  FAILED {case}: behavior={r['behavior']} behaviorClose={r['behaviorClose']}", file=sys.stderr)

    ok = not failed
    if update:
        with open(expected_path, "w", encoding="utf-8") as f:
            f.write(dump(summary))
        print(f"wrote {expected_path} ({len(summary)} cases)")
    else:
        try:
            with open(expected_path, encoding="utf-8") as f:
                expected = json.load(f)
        except FileNotFoundError:
            print(f"{expected_path} is missing: create it with run.sh --update", file=sys.stderr)
            return 1
        diffs = []
        for case in sorted(set(expected) | set(summary), key=case_key):
            want, got = expected.get(case), summary.get(case)
            if want != got:
                diffs.append(f"  {case}: expected {want}, got {got}")
        if diffs:
            ok = False
            print(
                f"Autobahn summary differs from {expected_path} in {len(diffs)} case(s) "
                "(run.sh --update accepts this run):",
                file=sys.stderr,
            )
            print("\n".join(diffs), file=sys.stderr)
        else:
            print(f"Autobahn summary matches {expected_path}")

    passed = len(summary) - len(failed)
    print(f"autobahn: {passed} passed, {len(failed)} failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))

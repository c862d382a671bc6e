#!/usr/bin/env python3
# judge.py: a `command` judge: rlj starts it once (judge.command.argv, no shell), writes one JSON request per
# line on its stdin and reads one JSON answer per line from its stdout. This one rewards answers that state
# the reference exactly and penalises hedging words; a sample without a reference gets an error (kind
# "invalid"), never a reward of 0.
import json
import sys

HEDGES = ("maybe", "perhaps", "i think", "probably")

for line in sys.stdin:
    request = json.loads(line)
    reference = request["reference"].strip()
    if not reference:
        answer = {"id": request["id"], "error": "the sample has no reference", "kind": "invalid"}
    else:
        completion = request["completion"].strip().lower()
        states = 1.0 if completion == reference.lower() else 0.0
        hedging = -0.5 if any(word in completion for word in HEDGES) else 0.0
        answer = {"id": request["id"], "reward": states + hedging,
                  "components": {"states_reference": states, "hedging": hedging},
                  "rationale": "states the reference" if states else "does not state the reference"}
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()

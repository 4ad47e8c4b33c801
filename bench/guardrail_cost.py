"""Instructions of the default guardrail policy on one bench request, and of its parts, under
callgrind: what scanning costs per request without the rest of the gateway around it.

    python bench/guardrail_cost.py [--source DIR ...] [--calls 100]

The request is the shared bench chat (`../shared/bench/body_chat.json`: a system prompt, and a
user ticket whose number changes per call, so the scan cache answers for the system prompt alone,
as in `bench/instructions.py`), the answer the mock provider's ("tok0 tok1 ... tok19"). Each
checkout runs in its own Python under `valgrind --tool=callgrind` with instrumentation off: the
child builds an Engine of the default policy, warms every part up, and then, part by part, the
parent switches counting on (`callgrind_control -i on`) for `--calls` calls and reads the dump.
Parts: the input and output scans as the gateway runs them, then each detector on the user text
and on the answer, then the PERSON rules and model apart. A fixed hash seed; counts repeat to
well under 1%, so a change of a few thousand instructions shows (the gateway's own count moves
by ~1% between runs). Each call also counts ~1.3K instructions of harness (the `empty` part).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = """
import gc, json, sys
sys.path.insert(0, {source!r})
from signalvault.guardrails.engine import Context, Engine, Redactor
from signalvault.guardrails.pii_names import name_tokens
from signalvault.guardrails.pii_numbers import scan_numbers
from signalvault.guardrails.pii_person import Token
from signalvault.guardrails.policy import DEFAULT_RULES, Policy
assert sys.modules["signalvault"].__file__.startswith({source!r})
engine = Engine(Policy(1, DEFAULT_RULES), lambda text, model: 0, cache_entries=4096)
body = json.loads(open({body!r}).read())
system, user = body["messages"][0]["content"], body["messages"][1]["content"]
users = [user.replace("48213", str(10_000_000 + i)) for i in range({calls} + 300)]
answer = " ".join(f"tok{{i}}" for i in range(20))
context = Context(None, "key", "dev", body["model"], body.get("max_tokens"))
detectors = {{type(d).__name__: d for d in engine._detectors.values()}}
pii, secrets = detectors["PiiDetector"], detectors["SecretsDetector"]
injection, person = detectors["InjectionDetector"], detectors["PiiDetector"]._names
tokens = name_tokens(users[0], person.lexicon, False)
ruled = person.rules.scan(users[0], tokens, False)
candidates = [Token(s, e, w, w.lower()) for s, e, w in tokens]
PARTS = {{
    "input scan (system + user)": lambda i: engine.scan(
        [system, users[i]], "input", context, Redactor()
    ),
    "output scan (answer)": lambda i: engine.scan([answer], "output", context, Redactor()),
    "pii(user)": lambda i: pii(users[i]),
    "pii(answer)": lambda i: pii(answer),
    "secrets(user)": lambda i: secrets(users[i]),
    "secrets(answer)": lambda i: secrets(answer),
    "injection(user)": lambda i: injection(users[i]),
    "person(user)": lambda i: person.scan(users[i]),
    "  name_tokens": lambda i: name_tokens(users[i], person.lexicon, False),
    "  rules": lambda i: person.rules.scan(users[i], tokens, False),
    "  model": lambda i: person.model.token_scores(users[i], ruled, candidates, False),
    "numbers(user)": lambda i: list(scan_numbers(users[i])),
    "addresses(user)": lambda i: pii._addresses.scan(users[i]),
    "empty": lambda i: None,
}}
for part in PARTS.values():
    for i in range(300):
        part(i)
gc.collect()
gc.disable()
print("\\t".join(PARTS), flush=True)
for part in PARTS.values():
    sys.stdin.readline()
    for i in range(300, 300 + {calls}):
        part(i)
    print("done", flush=True)
sys.stdin.readline()
"""


def count(source: Path, calls: int) -> dict[str, float]:
    """Instructions per call of every part, for checkout `source`."""
    body = ROOT.parent / "shared" / "bench" / "body_chat.json"
    if not body.exists():
        body = Path("/work/shared/bench/body_chat.json")
    with tempfile.TemporaryDirectory(prefix="guardcost-") as tmp:
        out = Path(tmp) / "callgrind.out"
        code = _CHILD.format(source=str(source), body=str(body), calls=calls)
        child = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no",
             f"--callgrind-out-file={out}", sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )  # fmt: skip
        assert child.stdin is not None and child.stdout is not None
        names = child.stdout.readline().rstrip("\n").split("\t")
        found: dict[str, float] = {}
        for name in names:
            control = ["callgrind_control"]
            subprocess.run([*control, "-i", "on", str(child.pid)], check=True, capture_output=True)
            child.stdin.write("go\n")
            child.stdin.flush()
            child.stdout.readline()
            subprocess.run([*control, "-i", "off", str(child.pid)], check=True, capture_output=True)
            before = set(Path(tmp).glob("callgrind.out.*"))
            subprocess.run([*control, "-d", str(child.pid)], check=True, capture_output=True)
            (dump,) = set(Path(tmp).glob("callgrind.out.*")) - before
            total = sum(
                int(line.split()[1])
                for line in dump.read_text(errors="replace").splitlines()
                if line.startswith("totals:")
            )
            found[name] = total / calls
        child.stdin.write("exit\n")
        child.stdin.flush()
        child.wait()
    return found


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--source", action="append", type=Path, help="checkout(s) to compare")
    parser.add_argument("--calls", type=int, default=100, help="calls counted per part")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    sources = [s.resolve() for s in (args.source or [ROOT])]
    results = {source: count(source, args.calls) for source in sources}
    names = list(next(iter(results.values())))
    print(f"{'K instructions per call':30}" + "".join(f"{s.name[:14]:>15}" for s in sources))
    for name in names:
        print(f"{name:30}" + "".join(f"{results[s][name] / 1e3:15.1f}" for s in sources))
    return 0


if __name__ == "__main__":
    sys.exit(main())

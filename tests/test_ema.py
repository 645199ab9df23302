"""EMA of weights (srbench/nn/ema.py) against closed forms, ECDP's update loop and torch's AveragedModel."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from srbench.nn.ema import EMA


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1))


def _perturb(model: nn.Module, step: int) -> None:
    """A deterministic stand-in for an optimizer step (also moves BatchNorm running stats)."""
    g = torch.Generator().manual_seed(1000 + step)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
        if isinstance(model, nn.Sequential):
            model.train()
            model(torch.randn(2, 3, 8, 8, generator=g))


def test_constant_target_matches_closed_form():
    # p constant after init: p_avg_k = p + β^k (p_0 − p)
    model = nn.Linear(5, 3).double()
    p0 = {n: p.detach().clone() for n, p in model.named_parameters()}
    ema = EMA(model, decay=0.9)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    for _ in range(7):
        ema.update()
    for n, p in model.named_parameters():
        expected = p.double() + 0.9**7 * (p0[n].double() - p.double())
        torch.testing.assert_close(ema.shadow[n].double(), expected, rtol=1e-6, atol=1e-6)


def test_matches_ecdp_update_loop_bitwise():
    # ECDP lib/trainer.py: param_dst.mul_(1 - eps); param_dst.add_(param_src, alpha=eps), eps = 1/N
    model = _net()
    reference = _net()
    reference.load_state_dict(model.state_dict())
    ema = EMA(model, n=1000)
    for step in range(5):
        _perturb(model, step)
        ema.update()
        eps = 1 / 1000
        with torch.no_grad():
            for src, dst in zip(model.parameters(), reference.parameters()):
                dst.mul_(1 - eps)
                dst.add_(src, alpha=eps)
    for (n, _), ref in zip(model.named_parameters(), reference.parameters()):
        assert torch.equal(ema.shadow[n], ref), n


def test_matches_torch_averaged_model():
    model = _net()
    oracle = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.99))
    oracle.update_parameters(model)  # AveragedModel copies on its first update; ECDP starts from the model
    ema = EMA(model, decay=0.99)
    for step in range(10):
        _perturb(model, step)
        ema.update()
        oracle.update_parameters(model)
    for (n, _), ref in zip(model.named_parameters(), oracle.module.parameters()):
        torch.testing.assert_close(ema.shadow[n], ref, rtol=1e-5, atol=1e-6)


def test_invsr_warmup_decay():
    # InvSR trainer.py: decay = min(rate, (1 + it) / (10 + it)); ema = decay·ema + (1 − decay)·p
    model = nn.Linear(4, 4)
    ref = {n: p.detach().clone() for n, p in model.named_parameters()}
    ema = EMA(model, decay=0.999, warmup=True)
    for it in range(6):
        _perturb(model, it)
        ema.update()
        d = min(0.999, (1 + it) / (10 + it))
        for n, p in model.named_parameters():
            ref[n] = d * ref[n] + (1 - d) * p.detach()
    for n, value in ref.items():
        torch.testing.assert_close(ema.shadow[n], value, rtol=1e-6, atol=1e-7)


def test_only_trainable_parameters_tracked_and_buffers_optional():
    model = _net()
    model[0].weight.requires_grad_(False)
    ema = EMA(model, decay=0.5)
    assert "0.weight" not in ema.shadow and "0.bias" in ema.shadow
    assert not any("running" in k for k in ema.shadow)
    ema_b = EMA(model, decay=0.5, average_buffers=True)
    assert "1.running_mean" in ema_b.shadow
    assert "1.num_batches_tracked" not in ema_b.shadow  # integer buffer: never averaged
    before = ema_b.shadow["1.running_mean"].clone()
    _perturb(model, 0)
    ema_b.update()
    expected = 0.5 * before + 0.5 * model[1].running_mean
    torch.testing.assert_close(ema_b.shadow["1.running_mean"], expected)
    with pytest.raises(ValueError):
        EMA(nn.Linear(2, 2).requires_grad_(False), decay=0.9)
    with pytest.raises(ValueError):
        EMA(model, decay=0.9, n=10)


def test_swapped_restores_trained_weights_even_on_error():
    model = _net()
    ema = EMA(model, n=10)
    for step in range(3):
        _perturb(model, step)
        ema.update()
    trained = {k: v.clone() for k, v in model.state_dict().items()}
    with ema.swapped():
        for n, p in model.named_parameters():
            assert torch.equal(p, ema.shadow[n])
        assert not torch.equal(model[0].weight, trained["0.weight"])
    for k, v in model.state_dict().items():
        assert torch.equal(v, trained[k]), k
    with pytest.raises(RuntimeError), ema.swapped():
        raise RuntimeError("validation failed")
    for k, v in model.state_dict().items():
        assert torch.equal(v, trained[k]), k


def test_low_precision_parameters_are_averaged_in_float32():
    model = nn.Linear(8, 8).to(torch.bfloat16)
    ema = EMA(model, decay=0.999)
    assert all(t.dtype == torch.float32 for t in ema.shadow.values())
    start = ema.shadow["weight"].clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update()
    # a 0.001 step survives in float32 (in bf16 it would round away for |w| ≳ 0.25)
    torch.testing.assert_close(ema.shadow["weight"] - start, 0.001 * (model.weight.float() - start),
                               rtol=1e-3, atol=1e-6)


def test_state_dict_round_trip_and_mismatch():
    modules = {"a": _net(0), "b": nn.Linear(3, 3)}
    ema = EMA(modules, decay=0.9)
    for step in range(3):
        _perturb(modules["a"], step)
        ema.update()
    fresh = EMA({"a": _net(5), "b": nn.Linear(3, 3)}, decay=0.9)
    fresh.load_state_dict(ema.state_dict())
    assert fresh.num_updates == 3
    for k in ema.shadow:
        assert torch.equal(fresh.shadow[k], ema.shadow[k])
    assert set(ema.shadow) >= {"a.0.weight", "b.weight"}
    with pytest.raises(KeyError, match="missing"):
        EMA({"a": _net(0)}, decay=0.9).load_state_dict(ema.state_dict())


def test_averaged_state_dict_and_copy_to():
    model = _net()
    model[0].weight.requires_grad_(False)
    ema = EMA(model, decay=0.5)
    frozen = model[0].weight.detach().clone()
    _perturb(model, 0)  # also moves the frozen weight: it is not tracked, so export takes the live one
    ema.update()
    sd = ema.averaged_state_dict()
    assert set(sd) == set(model.state_dict())
    assert torch.equal(sd["0.bias"], ema.shadow["0.bias"])
    assert torch.equal(sd["0.weight"], model[0].weight) and not torch.equal(sd["0.weight"], frozen)
    ema.copy_to()
    assert torch.equal(model[3].weight, ema.shadow["3.weight"])

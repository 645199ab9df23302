"""Stage-(c) gradients: the adjoint PF-ODE solve against direct back-propagation.

The oracle is autograd through the unrolled solver (``odeint``) on the same ODE; the adjoint
method (``odeint_adjoint``, as the authors fine-tune) must give the same U-Net gradients while
keeping nothing per solver step for backward.
"""

from __future__ import annotations

import pytest
import torch

from methods.ecdp.errors import ECDPConfigError
from methods.ecdp.method import ECDP
from methods.ecdp.model import ECDPNet
from methods.ecdp.sampler import SolverSettings, solve_pf_ode
from methods.ecdp.sde import ProbabilityFlowODE

TINY = {
    "encoder_blocks": 1,
    "block_selection": (0,),
    "unet_channels": (16, 32),
    "unet_blocks": (1, 1),
    "time_channels": 16,
    "encoder_features": 8,
    "encoder_growth": 4,
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _tiny_net(dtype=torch.float64) -> ECDPNet:
    torch.manual_seed(0)
    net = ECDPNet(**TINY).to(dtype)
    with torch.no_grad():  # move away from the near-identity init so every parameter matters
        for p in net.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return net


def _loss_and_grads(net: ECDPNet, lr, z, settings, adjoint: bool):
    net.zero_grad(set_to_none=True)
    size = tuple(z.shape[-2:])
    with torch.no_grad():
        cond = net.condition(lr, size, project=False)
    ode = ProbabilityFlowODE(lambda x, tau: net.unet(x, tau, cond))
    x_end, counter = solve_pf_ode(
        ode, z, settings, adjoint=adjoint, adjoint_params=tuple(net.unet.parameters())
    )
    loss = x_end.square().mean()
    loss.backward()
    grads = torch.cat([p.grad.flatten() for p in net.unet.parameters()])
    return loss.detach(), grads, counter


def test_adjoint_gradients_match_direct_backprop():
    net = _tiny_net()
    g = torch.Generator().manual_seed(1)
    lr = torch.rand(1, 3, 2, 2, generator=g, dtype=torch.float64)
    z = torch.randn(1, 3, 8, 8, generator=g, dtype=torch.float64)
    # A fixed grid makes both gradients converge fast (discrete vs continuous adjoint differ by
    # O(h⁴)); adaptive dopri5 needs rtol ≈ 1e-9 and minutes for the same agreement.
    settings = SolverSettings(method="rk4", steps=100)
    loss_d, grad_d, _ = _loss_and_grads(net, lr, z, settings, adjoint=False)
    loss_a, grad_a, counter = _loss_and_grads(net, lr, z, settings, adjoint=True)
    torch.testing.assert_close(loss_a, loss_d, rtol=1e-9, atol=0)
    assert grad_d.abs().max() > 0
    rel = ((grad_a - grad_d).norm() / grad_d.norm()).item()
    assert rel < 1e-4, rel
    assert counter.nfe > 0


@pytest.mark.parametrize(
    "tol, bound",
    [(1e-5, 1e-2), pytest.param(1e-6, 2e-3, marks=pytest.mark.slow)],
)
def test_dopri5_adjoint_with_step_t_matches_direct_backprop(tol, bound):
    """The fine-tuning path: adaptive dopri5 with ``step_t`` at τ_end, adjoint vs autograd.

    The backward solve inherits the forward options (step_t included); the two gradients
    differ by the solver error only, so they agree to about the tolerance (measured rel.
    difference 4.8e-3 at 1e-5, 5.0e-4 at 1e-6, 1.7e-4 at 1e-7).
    """
    net = _tiny_net()
    g = torch.Generator().manual_seed(1)
    lr = torch.rand(1, 3, 2, 2, generator=g, dtype=torch.float64)
    z = torch.randn(1, 3, 8, 8, generator=g, dtype=torch.float64)
    settings = SolverSettings(method="dopri5", rtol=tol, atol=tol)
    loss_d, grad_d, _ = _loss_and_grads(net, lr, z, settings, adjoint=False)
    loss_a, grad_a, counter = _loss_and_grads(net, lr, z, settings, adjoint=True)
    torch.testing.assert_close(loss_a, loss_d, rtol=1e-12, atol=0)  # same forward solve
    rel = ((grad_a - grad_d).norm() / grad_d.norm()).item()
    assert rel < bound, rel
    assert counter.accepted > 0  # adaptive steps were taken, not a fixed grid


def _saved_bytes(net, lr, z, settings, adjoint: bool) -> int:
    """Bytes of tensors autograd keeps for backward during the forward solve (dedup by storage)."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        size = tuple(z.shape[-2:])
        with torch.no_grad():
            cond = net.condition(lr, size, project=False)
        ode = ProbabilityFlowODE(lambda x, tau: net.unet(x, tau, cond))
        x_end, _ = solve_pf_ode(
            ode, z, settings, adjoint=adjoint, adjoint_params=tuple(net.unet.parameters())
        )
        x_end.square().mean()
    param_bytes = {p.untyped_storage().data_ptr() for p in net.parameters()}
    return sum(b for ptr, b in seen.items() if ptr not in param_bytes)


def test_adjoint_memory_is_flat_in_solver_steps():
    net = _tiny_net(torch.float32)
    lr, z = torch.rand(1, 3, 4, 4), torch.randn(1, 3, 16, 16)
    few, many = SolverSettings(method="rk4", steps=2), SolverSettings(method="rk4", steps=20)
    direct = [_saved_bytes(net, lr, z, s, adjoint=False) for s in (few, many)]
    adjoint = [_saved_bytes(net, lr, z, s, adjoint=True) for s in (few, many)]
    assert direct[1] > 5 * direct[0]  # unrolled autograd keeps every stage of every step
    assert adjoint[1] <= adjoint[0] * 1.01 + 1024  # the adjoint keeps only the end state
    assert adjoint[1] < direct[0]


def test_finetune_step_gives_no_gradient_to_the_encoder():
    cfg = {
        "weights": "random",
        "encoder": {"num_blocks": 1, "block_selection": [0], "num_features": 8, "growth": 4},
        "unet": {"channels": [16, 32], "num_blocks": [1, 1], "time_channels": 16},
        "sampler": {"method": "euler", "steps": 3},
        "channels_last": False,
        "train": {"stage": "finetune", "percep_backbone": "random", "allow_random_init": True},
    }
    method = ECDP.from_config(cfg, "cpu")
    trainer = method.trainer({"method": cfg})
    hr = torch.rand(1, 3, 32, 32)
    batch = {"hr": hr, "lr": torch.nn.functional.avg_pool2d(hr, 4), "scale": 4.0, "names": ["a"]}
    out = trainer.training_step(batch)
    out["loss"].backward()
    assert all(p.grad is None for p in method.net.lr_feats.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in method.net.unet.parameters())
    groups = trainer.parameter_groups(1e-5)
    assert len(groups) == 1 and {id(p) for p in groups[0]["params"]} == {
        id(p) for p in method.net.unet.parameters()
    }


@pytest.mark.gpu
def test_adjoint_peak_cuda_memory_flat_in_steps():
    net = _tiny_net(torch.float32).cuda()
    lr, z = torch.rand(1, 3, 16, 16, device="cuda"), torch.randn(1, 3, 64, 64, device="cuda")
    peaks = []
    for steps in (4, 40):
        torch.cuda.reset_peak_memory_stats()
        _loss_and_grads(net, lr, z, SolverSettings(method="rk4", steps=steps), adjoint=True)
        peaks.append(torch.cuda.max_memory_allocated())
    assert peaks[1] < 1.2 * peaks[0]


def test_finetune_refuses_a_random_start():
    cfg = {
        "weights": "random",
        "encoder": {"num_blocks": 1, "block_selection": [0], "num_features": 8, "growth": 4},
        "unet": {"channels": [16, 32], "num_blocks": [1, 1], "time_channels": 16},
        "train": {"stage": "finetune"},
    }
    from srbench.errors import is_user_error

    with pytest.raises(ECDPConfigError, match="init.checkpoint") as err:
        ECDP.from_config(cfg, "cpu").trainer({"method": cfg, "init": {"checkpoint": None}})
    assert is_user_error(err.value) and "\n" not in str(err.value)
    # a stage-b run to start from (the runner loads it after building the trainer) lifts the refusal
    cfg["train"]["percep_backbone"] = "random"
    ECDP.from_config(cfg, "cpu").trainer({"method": cfg, "init": {"checkpoint": "runs/b"}})

"""The compiled and CUDA-graphed update steps follow the eager ``Learner.update``."""

from __future__ import annotations

import pytest
import torch
from dopa_rl.algos import make_config, names
from dopa_rl.core.errors import ConfigError
from dopa_rl.learn.compiled import CompiledUpdate, make_update_fn, resolve_update_mode
from dopa_rl.learn.learner import Learner
from dopa_rl.replay.buffer import Batch
from omegaconf import OmegaConf

SMALL_CNN = (2, 36, 36)  # the smallest input the Nature CNN's strides accept
NUM_ACTIONS = 3  # make_learner's action count: batches must hold actions below it


def make_learner(name: str, obs_shape: tuple[int, ...], device: str, **overrides) -> Learner:
    units = {"dqn": 1, "iqn": 1}.get(name, 11)
    fields = dict(num_units=units, hidden=[32, 32], lr=1e-3, target_update_every=2)
    fields.update(overrides)
    if name == "iqn":
        fields.update(iqn_num_taus=8, iqn_num_taus_act=4, iqn_embedding_dim=16)
    if name == "c51":  # its support defaults to ${env.value_min}, absent from an agent config
        fields.update(v_min=-10.0, v_max=10.0)
    cfg = OmegaConf.structured(make_config(name, **fields))
    return Learner(cfg, obs_shape, NUM_ACTIONS, torch.device(device), seed=0)


def make_batches(obs_shape: tuple[int, ...], count: int, size: int, device: str) -> list[Batch]:
    g = torch.Generator().manual_seed(1)

    def obs() -> torch.Tensor:
        if len(obs_shape) == 3:
            return torch.randint(0, 256, (size, *obs_shape), generator=g, dtype=torch.uint8)
        return torch.randn(size, *obs_shape, generator=g)

    batches = []
    for _ in range(count):
        b = Batch(
            obs=obs(),
            action=torch.randint(0, NUM_ACTIONS, (size,), generator=g),
            reward=torch.randn(size, generator=g),
            discount=0.99 * (torch.rand(size, generator=g) > 0.1).float(),
            next_obs=obs(),
        )
        batches.append(Batch(*(t.to(device) for t in vars(b).values())))
    return batches


def run_updates(learner: Learner, mode: str, batches: list[Batch]) -> list[dict[str, float]]:
    update = CompiledUpdate(learner, backend="aot_eager") if mode == "aot_eager" else None
    update = update or make_update_fn(learner, mode)
    # metrics are cloned: graphed ones are overwritten by the next replay
    return [{k: float(v.clone()) for k, v in update(b).items()} for b in batches]


def assert_same_learners(a: Learner, b: Learner, atol: float, rtol: float) -> None:
    assert a.updates == b.updates
    for net in ("online", "target"):
        pa, pb = getattr(a, net).state_dict(), getattr(b, net).state_dict()
        for key in pa:
            torch.testing.assert_close(pa[key], pb[key], atol=atol, rtol=rtol, msg=f"{net}.{key}")


def compare_modes(
    name: str, obs_shape: tuple[int, ...], mode: str, device: str, steps: int, atol: float
) -> None:
    batches = make_batches(obs_shape, steps, 16, device)
    eager, other = make_learner(name, obs_shape, device), make_learner(name, obs_shape, device)
    m_eager = run_updates(eager, "eager", batches)
    m_other = run_updates(other, mode, batches)
    assert_same_learners(eager, other, atol=atol, rtol=atol)
    for x, y in zip(m_eager, m_other, strict=True):
        assert x.keys() == y.keys()
        for key in x:
            assert abs(x[key] - y[key]) <= atol * (1 + abs(x[key])), key


def test_mode_resolution_and_errors() -> None:
    assert resolve_update_mode("auto", "cpu") == "eager"
    assert resolve_update_mode("auto", "cuda") == "cudagraph"
    assert resolve_update_mode("compile", "cpu") == "compile"
    with pytest.raises(ConfigError, match="cudagraph.*CUDA"):
        resolve_update_mode("cudagraph", "cpu")
    with pytest.raises(ConfigError, match="unknown update mode"):
        resolve_update_mode("graph", "cpu")
    learner = make_learner("qrdqn", (4,), "cpu")
    assert make_update_fn(learner, "auto") == learner.update
    with pytest.raises(ConfigError):
        make_update_fn(learner, "cudagraph")


@pytest.mark.parametrize("name", ["qrdqn", "dqn", "iqn"])
def test_traced_graphs_match_eager(name: str) -> None:
    """Dynamo + AOTAutograd without code generation: fast, checks the traced forward/backward."""
    compare_modes(name, (4,), "aot_eager", "cpu", steps=3, atol=1e-5)


# Inductor code generation on 2 shared CPU cores (measured): MLP 17-32 s, Nature CNN 36-124 s.
@pytest.mark.slow
@pytest.mark.parametrize("name", ["qrdqn", "dqn"])
@pytest.mark.parametrize("obs_shape", [(4,), SMALL_CNN], ids=["mlp", "cnn"])
def test_compile_matches_eager(name: str, obs_shape: tuple[int, ...]) -> None:
    compare_modes(name, obs_shape, "compile", "cpu", steps=3, atol=1e-4)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", names())
@pytest.mark.parametrize("obs_shape", [(4,), (4, 84, 84)], ids=["mlp", "nature_cnn"])
def test_cudagraph_matches_eager(name: str, obs_shape: tuple[int, ...]) -> None:
    """7 updates with target sync every 2 (the graph keeps reading the synced target net),
    against eager with the graph's Adam arithmetic (``eager_capturable``). On the CPU the
    emulated graph matches it exactly (tests/test_graph_check.py), so what remains on a GPU is
    kernel numerics: the bound is 2e-4 or 4x how far eager departs from itself under another
    cuDNN algorithm (deterministic against benchmark-chosen), whichever is larger. Adam
    turns tiny gradient differences of near-zero gradients into lr-sized steps, so the
    convolutions' noise can exceed 2e-4 after a few updates (the H200 run: Nature CNN only)."""
    from dopa_rl.learn.graph_check import compare_step_by_step

    batches = make_batches(obs_shape, 7, 16, "cuda")

    def make() -> Learner:
        return make_learner(name, obs_shape, "cuda")

    graphed = compare_step_by_step(make, batches, "eager_capturable", "cudagraph", 2e-4, 2e-4)
    if graphed.first is None:
        return
    noise = compare_step_by_step(
        make,
        batches,
        "eager_capturable",
        "eager_capturable",
        cudnn={"benchmark": True, "deterministic": False},
        reference_cudnn={"benchmark": False, "deterministic": True},
    )
    bound = [max(2e-4, 4 * n) for n in noise.max_abs_per_update]
    within = all(g <= b for g, b in zip(graphed.max_abs_per_update, bound, strict=True))
    assert within, {"graphed": graphed.as_dict(), "eager_noise": noise.as_dict()}


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cudagraph_recaptures_after_load_state() -> None:
    """Resume replaces the Adam state tensors: the graph must follow, not the stale copies."""
    batches = make_batches((4,), 6, 16, "cuda")
    eager, graphed = make_learner("qrdqn", (4,), "cuda"), make_learner("qrdqn", (4,), "cuda")
    update = make_update_fn(graphed, "cudagraph")
    for b in batches[:3]:
        eager.update(b)
        update(b)
    snapshot = {k: {n: t.clone() for n, t in v.items()} for k, v in eager.state_tensors().items()}
    graphed.load_state(snapshot, eager.state_meta())
    for b in batches[3:]:
        eager.update(b)
        update(b)
    assert_same_learners(eager, graphed, atol=2e-4, rtol=2e-4)


def test_host_syncing_update_is_never_graphed() -> None:
    """ER-DQN's imputation polish (batched cholesky_solve) syncs with the host on CUDA."""
    problem = make_learner("erdqn", (4,), "cpu", imputation_iterations=2)
    problem = problem.algo.graph_capture_problem()
    assert problem is not None and "cholesky_solve" in problem
    assert make_learner("erdqn", (4,), "cpu").algo.graph_capture_problem() is None
    assert make_learner("qrdqn", (4,), "cpu").algo.graph_capture_problem() is None
    assert resolve_update_mode("auto", "cuda", problem) == "eager"
    with pytest.raises(ConfigError, match="cholesky_solve"):
        resolve_update_mode("cudagraph", "cuda", problem)


def test_lr_written_as_a_number_reaches_the_held_tensor() -> None:
    """What the graph reads: a schedule or a resume writes group["lr"] = x; the next update
    copies x into the held tensor (same object, so the captured address stays valid)."""
    from dopa_rl.learn.compiled import hold_lr_in_tensors, sync_lr_tensors

    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, foreach=False)
    held = hold_lr_in_tensors(opt)
    assert opt.param_groups[0]["lr"] is held[0] and float(held[0]) == pytest.approx(1e-3)
    assert hold_lr_in_tensors(opt)[0] is held[0]  # a recapture keeps the same tensor
    opt.param_groups[0]["lr"] = 0.25
    sync_lr_tensors(opt, held)
    assert opt.param_groups[0]["lr"] is held[0] and float(held[0]) == 0.25
    # an Adam step with the tensor lr is the step with the number
    ref = torch.nn.Linear(3, 2)
    ref.load_state_dict(net.state_dict())
    ref_opt = torch.optim.Adam(ref.parameters(), lr=0.25, foreach=False)
    x = torch.randn(5, 3)
    for model, o in ((net, opt), (ref, ref_opt)):
        model(x).square().sum().backward()
        o.step()
    for a, b in zip(net.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_precision_choices() -> None:
    from dopa_rl.core.device import configure_backends

    assert configure_backends(torch.device("cpu"), "auto", False) == "fp32"
    assert configure_backends(torch.device("cpu"), "bf16", False) == "bf16"
    with pytest.raises(ConfigError, match="precision"):
        configure_backends(torch.device("cpu"), "fp16", False)
    learner = make_learner("qrdqn", SMALL_CNN, "cpu")
    obs = torch.randint(0, 256, (4, *SMALL_CNN), dtype=torch.uint8)
    full = learner.online(obs)
    learner.use_bf16_torso()
    half = learner.online(obs)
    assert half.dtype == torch.float32 and not torch.equal(half, full)
    torch.testing.assert_close(half, full, atol=0.05, rtol=0.05)

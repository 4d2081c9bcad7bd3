"""The CUDA-graph update paths, proved on the CPU with the graph emulated
(``dopa_rl.learn.graph_check``): capture, warm-up and restore follow the eager update exactly,
and the emulator does catch the capture bugs it is meant to catch."""

from __future__ import annotations

import pytest
import torch
from dopa_rl.algos import names
from dopa_rl.learn.graph_check import CaptureError, compare_step_by_step, emulated_cuda_graphs
from test_compiled import SMALL_CNN, make_batches, make_learner


@pytest.mark.parametrize("name", names())
@pytest.mark.parametrize("obs_shape", [(4,), SMALL_CNN], ids=["mlp", "cnn"])
def test_emulated_graph_follows_eager_exactly(name: str, obs_shape: tuple[int, ...]) -> None:
    """Bit-exact against eager with the graph's Adam arithmetic, over 7 updates with target
    syncs every 2: no state is missed by the capture (step count, target sync, Adam moments,
    the generator of IQN's τ), so a GPU departure is kernel numerics, not capture logic."""
    with emulated_cuda_graphs():
        result = compare_step_by_step(
            lambda: make_learner(name, obs_shape, "cpu"),
            make_batches(obs_shape, 7, 16, "cpu"),
            "eager_capturable",
            "cudagraph",
            atol=0.0,
            rtol=0.0,
        )
    assert result.first is None, result.as_dict()


def test_eager_against_default_adam_departs_by_rounding_only() -> None:
    """Graph against plain eager (Adam with a float lr): the rounding of the capturable Adam
    arithmetic, first seen at update 1, far below the CUDA test's 2e-4."""
    with emulated_cuda_graphs():
        result = compare_step_by_step(
            lambda: make_learner("qrdqn", SMALL_CNN, "cpu"),
            make_batches(SMALL_CNN, 5, 16, "cpu"),
            "eager",
            "cudagraph",
            atol=0.0,
            rtol=0.0,
        )
    assert result.first is not None and result.first.update == 1
    assert max(result.max_abs_per_update) < 1e-5


def test_emulator_catches_an_lr_baked_into_the_graph(monkeypatch) -> None:
    """Without the lr held in a tensor the captured Adam step keeps the capture's lr: a change
    of lr then departs at the next update, named by the comparison."""
    from dopa_rl.learn import compiled

    monkeypatch.setattr(compiled, "hold_lr_in_tensors", lambda opt: [])
    monkeypatch.setattr(compiled, "sync_lr_tensors", lambda opt, held: None)
    from dopa_rl.learn.compiled import GraphedUpdate

    batches = make_batches((4,), 4, 16, "cpu")
    with emulated_cuda_graphs():
        learner = make_learner("qrdqn", (4,), "cpu")
        graphed = GraphedUpdate(learner)
        reference = make_learner("qrdqn", (4,), "cpu")
        for i, b in enumerate(batches):
            if i == 2:  # an lr schedule, in both learners
                for lrn in (learner, reference):
                    lrn.optimizer.param_groups[0]["lr"] = 1e-4
            graphed(b)
            reference.update(b)
            same = all(
                torch.allclose(p, q, atol=1e-6)
                for p, q in zip(
                    learner.online.parameters(), reference.online.parameters(), strict=True
                )
            )
            assert same == (i < 2), i  # updates 1, 2 follow; 3 used the captured lr


def test_emulator_refuses_a_host_read_in_the_capture(monkeypatch) -> None:
    """An ``.item()`` inside the update fails the capture, as on CUDA."""
    learner = make_learner("dqn", (4,), "cpu")
    loss = learner.loss

    def loss_with_host_read(batch):
        out, metrics = loss(batch)
        if float(out) > 1e9:  # a Python branch on a tensor value
            pass
        return out, metrics

    monkeypatch.setattr(learner, "loss", loss_with_host_read)
    from dopa_rl.learn.compiled import GraphedUpdate

    with emulated_cuda_graphs(), pytest.raises(RuntimeError, match="capture") as err:
        GraphedUpdate(learner)(make_batches((4,), 1, 16, "cpu")[0])
    assert isinstance(err.value.__cause__, CaptureError)


def test_emulated_acting_graph_draws_what_eager_acting_draws() -> None:
    """GraphedAct (the overlapped loop's acting on CUDA): warm-up, capture and the generator's
    restore leave the random stream where eager acting has it, and the graph reads the newest
    weights (an update between calls)."""
    from dopa_rl.learn.compiled import GraphedAct

    graphed, eager = make_learner("qrdqn", (4,), "cpu"), make_learner("qrdqn", (4,), "cpu")
    batches = make_batches((4,), 3, 16, "cpu")
    obs = torch.randn(5, 4, 4, generator=torch.Generator().manual_seed(3))
    with emulated_cuda_graphs():
        act = GraphedAct(graphed, 4, (4,), torch.float32)
        for i in range(5):
            got = act(obs[i], 0.5).clone()
            assert act.graph is not None and not act.eager
            assert torch.equal(got, eager.act(obs[i], 0.5)), i
            if i < 3:  # both learners update: the graph must act with the new weights
                graphed.update(batches[i])
                eager.update(batches[i])

"""Step by step: where does a CUDA-graphed update depart from the eager one, and is it more
than convolution numerics?

For each algorithm, three comparisons over ``--updates`` updates of two learners built alike
and fed the same random batches (``dopa_rl.learn.graph_check.compare_step_by_step``), each
naming the first tensor beyond 2e-4 and its update, and the largest difference per update:

* ``graphed``: the graph against eager with the graph's Adam arithmetic (``eager_capturable``);
* ``graphed_vs_default_adam``: the graph against plain eager (what the old CUDA test compared);
* ``eager_cudnn_noise``: eager against eager, cuDNN deterministic against benchmark-chosen
  algorithms: the size of convolution numerics. ``tolerance`` = max(2e-4, 4 x its largest
  difference) is the bound ``tests/test_compiled.py::test_cudagraph_matches_eager`` uses.

On the CPU the graph is emulated (``emulated_cuda_graphs``): ``graphed`` is then exactly 0
when the capture logic is right, and cuDNN does not apply.

    python scripts/bench/graph_vs_eager.py --device cuda                  # Nature CNN, 84x84
    python scripts/bench/graph_vs_eager.py --device cpu --shape 4 --updates 3
"""

from __future__ import annotations

import argparse
import contextlib
import json

import torch
from dopa_rl.algos import make_config
from dopa_rl.learn.graph_check import compare_step_by_step, emulated_cuda_graphs
from dopa_rl.learn.learner import Learner
from dopa_rl.replay.buffer import Batch

NUM_ACTIONS = 6


def make_learner(name: str, shape: tuple[int, ...], device: str) -> Learner:
    fields = dict(num_units=11, hidden=[32, 32], lr=1e-3, target_update_every=2)
    if name == "iqn":
        fields.update(iqn_num_taus=8, iqn_num_taus_act=4, iqn_embedding_dim=16)
    if name == "c51":
        fields.update(v_min=-10.0, v_max=10.0)
    if name in ("dqn", "iqn"):
        fields["num_units"] = 1
    return Learner(make_config(name, **fields), shape, NUM_ACTIONS, torch.device(device), seed=0)


def batches(shape: tuple[int, ...], count: int, size: int, device: str) -> list[Batch]:
    g = torch.Generator().manual_seed(1)

    def obs() -> torch.Tensor:
        if len(shape) == 3:
            return torch.randint(0, 256, (size, *shape), generator=g, dtype=torch.uint8)
        return torch.randn(size, *shape, generator=g)

    out = []
    for _ in range(count):
        b = Batch(
            obs=obs(),
            action=torch.randint(0, NUM_ACTIONS, (size,), generator=g),
            reward=torch.randn(size, generator=g),
            discount=0.99 * (torch.rand(size, generator=g) > 0.1).float(),
            next_obs=obs(),
        )
        out.append(Batch(*(t.to(device) for t in vars(b).values())))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--algos", default="qrdqn,dqn")
    p.add_argument("--shape", default="4,84,84", help="observation shape (4: the MLP)")
    p.add_argument("--updates", type=int, default=7)
    p.add_argument("--batch", type=int, default=16)
    args = p.parse_args()
    torch.set_num_threads(min(torch.get_num_threads(), 4))
    shape = tuple(int(x) for x in args.shape.split(","))
    emulate = emulated_cuda_graphs() if args.device == "cpu" else contextlib.nullcontext()
    data = batches(shape, args.updates, args.batch, args.device)
    with emulate:
        for name in args.algos.split(","):

            def make(name: str = name) -> Learner:
                return make_learner(name, shape, args.device)

            graphed = compare_step_by_step(make, data, "eager_capturable", "cudagraph", 2e-4, 2e-4)
            default = compare_step_by_step(make, data, "eager", "cudagraph", 2e-4, 2e-4)
            noise = compare_step_by_step(
                make,
                data,
                "eager_capturable",
                "eager_capturable",
                2e-4,
                2e-4,
                cudnn={"benchmark": True, "deterministic": False},
                reference_cudnn={"benchmark": False, "deterministic": True},
            )
            bound = max(2e-4, 4 * max(noise.max_abs_per_update))
            record = {
                "figure": "graph_vs_eager",
                "algo": name,
                "shape": list(shape),
                "device": args.device,
                "emulated_graph": args.device == "cpu",
                "graphed": graphed.as_dict(),
                "graphed_vs_default_adam": default.as_dict(),
                "eager_cudnn_noise": noise.as_dict(),
                "tolerance": bound,
                "graphed_within_tolerance": max(graphed.max_abs_per_update) <= bound,
            }
            print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()

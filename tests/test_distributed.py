"""Two CPU processes on gloo give the same losses and updates as one process on the same global batch."""
import json

import pytest
import torch

from test_training import _data

STEPS = 3


def _train(rank, world, tmp, ckpt, global_batch, result):
    import os

    from csplade_pyserini.encoder import resolve_card
    from csplade_pyserini.training.args import TrainArguments
    from csplade_pyserini.training.trainer import Trainer, build_model

    torch.set_num_threads(1)
    if world > 1:
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
        torch.distributed.init_process_group("gloo", init_method=f"file://{tmp}/rendezvous", rank=rank,
                                             world_size=world)
    args = TrainArguments(train_data=f"{tmp}/train.jsonl", output_dir=f"{tmp}/out{world}", device="cpu",
                          batch_size=global_batch // world, negatives=1, learning_rate=3e-3, lora_rank=4, lora_alpha=8,
                          lora_dropout=0.0, warmup_ratio=0.0, scheduler="constant_with_warmup", max_steps=STEPS,
                          q_flops_weight=0.01, d_flops_weight=0.02, logging_steps=1000, save_steps=0)
    torch.manual_seed(0)
    model, base = build_model(args, resolve_card(ckpt))
    t = Trainer(args, resolve_card(ckpt), model, base)
    losses = [t.train_step() for _ in range(STEPS)]
    if rank == 0:
        params = {n: p.detach().tolist() for n, p in model.named_parameters() if p.requires_grad}
        with open(result, "w") as fh:
            json.dump({"losses": losses, "params": params}, fh)
    if world > 1:
        torch.distributed.destroy_process_group()


def test_two_gloo_processes_match_one(tmp_path, tiny_checkpoint):
    import torch.multiprocessing as mp

    _data(tmp_path)
    _train(0, 1, str(tmp_path), str(tiny_checkpoint), 4, tmp_path / "one.json")
    mp.spawn(_train, args=(2, str(tmp_path), str(tiny_checkpoint), 4, tmp_path / "two.json"), nprocs=2, join=True)
    one, two = (json.loads((tmp_path / f).read_text()) for f in ("one.json", "two.json"))
    for a, b in zip(one["losses"], two["losses"]):
        for k in ("loss", "rank", "flops_q", "flops_d", "nnz_d"):
            assert b[k] == pytest.approx(a[k], rel=1e-4, abs=1e-5), k
    assert one["params"].keys() == two["params"].keys()
    for n in one["params"]:
        torch.testing.assert_close(torch.tensor(two["params"][n]), torch.tensor(one["params"][n]), rtol=1e-4, atol=1e-5)

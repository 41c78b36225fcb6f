"""Two CPU processes on gloo give the same losses and updates as one process on the same global batch."""
import json

import pytest
import torch

from test_training import _data

STEPS = 3


def _train(rank, world, tmp, ckpt, global_batch, result, fsdp=False):
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
                          q_flops_weight=0.01, d_flops_weight=0.02, logging_steps=1000, save_steps=0, fsdp=fsdp)
    torch.manual_seed(0)
    model, base = build_model(args, resolve_card(ckpt))
    t = Trainer(args, resolve_card(ckpt), model, base)
    losses = [t.train_step() for _ in range(STEPS)]
    full = t.trained_state()  # gathers FSDP shards (collective)
    if fsdp:
        t.export()
    if rank == 0:
        params = {n: v.tolist() for n, v in full.items()}
        with open(result, "w") as fh:
            json.dump({"losses": losses, "params": params}, fh)
    if world > 1:  # no rank tears its connections down while another still writes or communicates
        torch.distributed.barrier()
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


def _train_fsdp(rank, world, tmp, ckpt, result):
    _train(rank, world, tmp, ckpt, 4, result, fsdp=True)


def test_fsdp_two_processes_match_one(tmp_path, tiny_checkpoint):
    """Decoder layers sharded with FSDP2 over 2 gloo processes: same losses and weights as 1 process, and the
    export gathers the full adapter."""
    import torch.multiprocessing as mp

    _data(tmp_path)
    _train(0, 1, str(tmp_path), str(tiny_checkpoint), 4, tmp_path / "one.json")
    mp.spawn(_train_fsdp, args=(2, str(tmp_path), str(tiny_checkpoint), tmp_path / "fsdp.json"), nprocs=2, join=True)
    one, two = (json.loads((tmp_path / f).read_text()) for f in ("one.json", "fsdp.json"))
    for a, b in zip(one["losses"], two["losses"]):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4, abs=1e-5)
    for n in one["params"]:
        torch.testing.assert_close(torch.tensor(two["params"][n]), torch.tensor(one["params"][n]), rtol=1e-4, atol=1e-5)
    from safetensors.torch import load_file

    exported = load_file(str(tmp_path / "out2" / "encoder" / "stage1" / "adapter_model.safetensors"))
    assert exported and all(v.ndim == 2 for v in exported.values())

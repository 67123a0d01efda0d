"""Training: schedules, data order, augmentations, and short real runs on tiny packed shards."""
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from conftest import load_script
import torch
import torchvision
from PIL import Image

from imagenet_sd import training as tr
from imagenet_sd.distributed import count_devices, free_port, run_rank
from imagenet_sd.models import ARCHS, build_model
from imagenet_sd.transforms import MultiCrop, SingleCrop, eval_transform, train_transform

torch.set_num_threads(1)  # other test runs share the 2 cores: 2 threads would wait on each other
ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["n01558993", "n02123045"]
TINY = {"arch": "resnet18", "epochs": 2, "batch_size": 4, "lr": 0.4, "warmup_epochs": 1, "resolution": 32,
        "local_crops": 1, "local_resolution": 16, "eval_resolution": 32, "workers": 0, "shuffle_buffer": 8}


def chunk_tar(path: Path, wnid: str, n: int) -> Path:
    """A generation chunk: {wnid}_{index:06d}.jpg + .json per image; class 0 dark, class 1 bright images."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(int(wnid[1:]))
    base = 40 if wnid == CLASSES[0] else 210
    with tarfile.open(path, "w") as tar:
        for i in range(n):
            pixels = np.clip(base + rng.normal(0, 20, (24, 24, 3)), 0, 255).astype(np.uint8)
            buf = io.BytesIO()
            Image.fromarray(pixels).save(buf, format="JPEG")
            for name, data in ((f"{wnid}_{i:06d}.jpg", buf.getvalue()),
                               (f"{wnid}_{i:06d}.json", json.dumps({"wnid": wnid, "index": i}).encode())):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train")
    tars = [chunk_tar(tmp / f"{w}.tar", w, 8) for w in CLASSES]
    out = tmp / "clone"
    load_script("pack").main(train_tars=tars, heldout_tars=[], shards_dir=out / "train", index=out / "train.json",
                             heldout_dir=out / "heldout", classes=CLASSES, images_per_class=8, shard_size=6, seed=0)
    return out


def run_train(packed, run_dir, **settings):
    load_script("train").main(index=packed / "train.json", shards_dir=packed / "train",
                              checkpoint=run_dir / "checkpoint.pt", metrics=run_dir / "metrics.jsonl",
                              training={**TINY, **settings}, classes=CLASSES, threads=1, device="cpu")
    return run_dir


# ---- schedules and data order ----------------------------------------------------------------------------
def test_warmup_then_cosine():
    lr = tr.warmup_cosine_schedule(peak=0.4, total_steps=100, warmup_steps=10)
    assert len(lr) == 100
    assert lr[0] == pytest.approx(0.04) and lr[9] == pytest.approx(0.4)
    assert np.all(np.diff(lr[:10]) > 0)
    assert lr[10] == pytest.approx(0.4)
    assert np.all(np.diff(lr[10:]) < 0)
    assert 0 < lr[-1] < 0.4 * 1e-2
    assert lr[55] == pytest.approx(0.2)  # cosine half-way


def test_schedule_edge_cases():
    assert tr.warmup_cosine_schedule(1.0, 5, 0)[0] == pytest.approx(1.0)
    lr = tr.warmup_cosine_schedule(1.0, 4, 10)  # warm-up longer than the run: clamped
    assert len(lr) == 4 and lr[-1] == pytest.approx(1.0)


def test_epoch_plan_counts_full_batches_per_worker():
    counts = [5, 5, 5, 3]
    order = tr.epoch_shard_order(4, seed=0, epoch=0)
    assert sorted(order) == [0, 1, 2, 3]
    assert tr.steps_in_epoch(counts, [0, 1, 2, 3], workers=1, batch_size=4) == 4
    assert tr.steps_in_epoch(counts, [0, 1, 2, 3], workers=2, batch_size=4) == 2 + 2  # 10 -> 2, 8 -> 2
    assert tr.steps_in_epoch(counts, [0, 3, 1, 2], workers=2, batch_size=4) == 2 + 2
    plan = tr.plan_epochs(counts, epochs=3, seed=0, workers=1, batch_size=4)
    assert plan.total_steps == 12 and plan.shard_orders == tr.plan_epochs(counts, 3, 0, 1, 4).shard_orders
    with pytest.raises(ValueError, match="batch size"):
        tr.plan_epochs([3], epochs=1, seed=0, workers=1, batch_size=4)


def test_training_defaults_come_from_the_schema():
    t = tr.resolve_training({"epochs": 3})
    assert t["epochs"] == 3 and t["batch_size"] == 256 and t["augmentation"] == "dino" and t["max_steps"] is None
    with pytest.raises(ValueError, match="bogus"):
        tr.resolve_training({"bogus": 1})


# ---- augmentations and the multi-crop loss -----------------------------------------------------------
def test_transforms_shapes():
    img = Image.new("RGB", (40, 30), (120, 30, 200))
    crops = MultiCrop(32, 3, 16)(img)
    assert [tuple(c.shape) for c in crops] == [(3, 32, 32)] + [(3, 16, 16)] * 3
    assert [tuple(c.shape) for c in SingleCrop(24)(img)] == [(3, 24, 24)]
    assert len(train_transform(tr.resolve_training({"local_crops": 0, "resolution": 32}))(img)) == 1
    assert tuple(eval_transform(32)(img).shape) == (3, 32, 32)


def test_multicrop_forward_groups_by_resolution_and_labels_every_crop():
    calls = []

    class Probe(torch.nn.Module):
        def forward(self, x):
            calls.append(tuple(x.shape))
            return torch.zeros(len(x), 2).index_fill_(1, torch.tensor([0]), 1.0) * x.mean()

    crops = [torch.ones(3, 3, 8, 8), torch.ones(3, 3, 4, 4), torch.ones(3, 3, 4, 4)]
    logits = tr.multicrop_logits(Probe(), crops)
    assert calls == [(3, 3, 8, 8), (6, 3, 4, 4)] and logits.shape == (9, 2)
    batch = tr.collate_crops([([torch.zeros(3, 8, 8), torch.zeros(3, 4, 4)], 1)] * 5)
    assert [tuple(c.shape) for c in batch[0]] == [(5, 3, 8, 8), (5, 3, 4, 4)] and batch[1].tolist() == [1] * 5


def test_sgd_on_one_batch_lowers_the_multicrop_loss():
    torch.manual_seed(0)
    model = build_model("resnet18", 2)
    crops = [torch.randn(4, 3, 32, 32), torch.randn(4, 3, 16, 16)]
    labels = torch.tensor([0, 1, 0, 1])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    losses = []
    for _ in range(6):
        loss = tr.multicrop_loss(model, crops, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


# ---- real runs ---------------------------------------------------------------------------------------
def test_training_run_writes_metrics_and_a_torchvision_checkpoint(packed, tmp_path):
    run = run_train(packed, tmp_path)
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [m for m in lines if m["event"] == "step"]
    epochs = [m for m in lines if m["event"] == "epoch"]
    assert [m["step"] for m in steps] == [1, 2, 3, 4, 5, 6, 7, 8]  # 16 images, batch 4, 2 epochs
    assert [(m["epoch"], m["step"]) for m in epochs] == [(0, 4), (1, 8)]
    assert all(np.isfinite(m["loss"]) and m["lr"] > 0 and m["img_per_s"] > 0 for m in steps)
    assert steps[3]["lr"] == pytest.approx(0.4 * 4 / 256)  # end of the 1-epoch warm-up: peak lr x batch/256
    ckpt = torch.load(run / "checkpoint.pt", weights_only=False)
    assert ckpt["classes"] == CLASSES and ckpt["arch"] == "resnet18" and ckpt["step"] == 8
    assert ckpt["training"]["momentum"] == 0.9 and "torch" in ckpt["versions"]
    model = torchvision.models.resnet18()
    model.fc = torch.nn.Linear(512, len(CLASSES), bias=False)
    model.load_state_dict(ckpt["state_dict"])
    assert not (run / "checkpoint.resume.pt").exists()


def test_loader_workers_yield_the_planned_steps(packed, tmp_path):
    # Two real loader processes; shards of 6, 6, 4 images; each worker drops its own last partial batch.
    index = json.loads((packed / "train.json").read_text())
    assert [s["count"] for s in index["shards"]] == [6, 6, 4]
    tr.train(shard_paths=[str(packed / "train" / s["name"]) for s in index["shards"]], shard_counts=[6, 6, 4],
             classes=CLASSES, training=TINY | {"arch": "resnet18", "local_crops": 0}, checkpoint=tmp_path / "c.pt",
             metrics=tmp_path / "metrics.jsonl", workers=2, device=torch.device("cpu"))
    plan = tr.plan_epochs([6, 6, 4], epochs=2, seed=0, workers=2, batch_size=4)
    assert plan.steps[0] != plan.steps[1]  # this seed's shard orders give uneven epochs: a real test of the plan
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines if m["event"] == "step"] == list(range(1, plan.total_steps + 1))
    assert [m["step"] for m in lines if m["event"] == "epoch"] == [plan.steps[0], plan.total_steps]


def test_resnet50_checkpoint_loads_as_the_paper_says(packed, tmp_path):
    run = run_train(packed, tmp_path, arch="resnet50", max_steps=1, local_crops=0)
    ckpt = torch.load(run / "checkpoint.pt", weights_only=False)
    model = torchvision.models.resnet50()
    model.fc = torch.nn.Linear(2048, len(CLASSES), bias=False)
    model.load_state_dict(ckpt["state_dict"])
    assert ckpt["step"] == 1


def test_interrupted_run_resumes_at_the_epoch_boundary(packed, tmp_path, monkeypatch):
    whole = run_train(packed, tmp_path / "whole")
    real_epoch = tr.train_one_epoch

    def crash_in_epoch(crash_epoch):
        def train_one_epoch(*args, epoch, **kw):
            if epoch == crash_epoch:
                raise KeyboardInterrupt
            return real_epoch(*args, epoch=epoch, **kw)
        return train_one_epoch

    monkeypatch.setattr(tr, "train_one_epoch", crash_in_epoch(1))
    with pytest.raises(KeyboardInterrupt):
        run_train(packed, tmp_path / "resumed")
    assert (tmp_path / "resumed" / "checkpoint.resume.pt").is_file()
    monkeypatch.setattr(tr, "train_one_epoch", crash_in_epoch(0))  # proves epoch 0 is not trained again
    run_train(packed, tmp_path / "resumed")
    assert not (tmp_path / "resumed" / "checkpoint.resume.pt").exists()

    a = torch.load(whole / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=False)
    assert a["step"] == b["step"] == 8
    for k in a["state_dict"]:
        torch.testing.assert_close(a["state_dict"][k], b["state_dict"][k])
    events = [[json.loads(line)["event"] for line in (run / "metrics.jsonl").read_text().splitlines()]
              for run in (whole, tmp_path / "resumed")]
    assert events[0] == events[1]


def test_resume_state_of_another_training_is_ignored(tmp_path):
    path = tmp_path / "checkpoint.resume.pt"
    torch.save({"identity": {"training": {"lr": 0.1}}, "epoch": 0, "step": 4}, path)
    assert tr.load_resume(path, {"training": {"lr": 0.2}}) is None
    assert tr.load_resume(path, {"training": {"lr": 0.1}})["step"] == 4


# ---- several devices: DistributedDataParallel over gloo on CPU --------------------------------------------
def test_device_count_and_the_plan_across_ranks():
    cpu = torch.device("cpu")
    assert count_devices("auto", cpu) == count_devices(1, cpu) == 1
    with pytest.raises(ValueError, match="sees none"):
        count_devices(2, cpu)  # a config asking for GPUs on a machine without: an error, not a silent 1
    assert count_devices(2, cpu, processes_on_cpu=True) == 2
    plan = tr.plan_epochs([6, 6, 4], epochs=2, seed=0, workers=1, batch_size=4, ranks=2)
    for order, steps in zip(plan.shard_orders, plan.steps):  # batches of 2 per rank; the poorer rank sets the pace
        assert steps == min(sum([6, 6, 4][i] for i in order[r::2]) // 2 for r in range(2))
    with pytest.raises(ValueError, match="split evenly"):
        tr.plan_epochs([6, 6, 4], epochs=1, seed=0, workers=1, batch_size=5, ranks=2)
    with pytest.raises(ValueError, match="fewer devices"):
        tr.plan_epochs([6, 6, 4], epochs=1, seed=0, workers=1, batch_size=4, ranks=4)


def test_two_processes_train_one_model_and_rank_0_alone_writes(packed, tmp_path):
    run = run_train(packed, tmp_path / "run", devices=2)
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt", "metrics.jsonl"]
    plan = tr.plan_epochs([6, 6, 4], epochs=2, seed=0, workers=1, batch_size=4, ranks=2)
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines if m["event"] == "step"] == list(range(1, plan.total_steps + 1))
    assert [m["step"] for m in lines if m["event"] == "epoch"] == [plan.steps[0], plan.total_steps]
    ckpt = torch.load(run / "checkpoint.pt", weights_only=False)
    assert ckpt["step"] == plan.total_steps and ckpt["training"]["devices"] == 2
    model = torchvision.models.resnet18()
    model.fc = torch.nn.Linear(512, len(CLASSES), bias=False)
    assert list(ckpt["state_dict"]) == list(model.state_dict())  # no `module.`/`backbone.` prefixes
    model.load_state_dict(ckpt["state_dict"])


def groupnorm_resnet(arch, num_classes):
    """build_model with GroupNorm for BatchNorm: per-sample normalisation, so a batch split across ranks gives
    the same gradients as the whole batch in one process (BatchNorm statistics are per rank by design).
    One group: with 8, this tiny net is so ill-conditioned that float rounding grows 1e4-fold in three steps."""
    model = ARCHS[arch](weights=None, norm_layer=lambda channels: torch.nn.GroupNorm(1, channels))
    model.fc = torch.nn.Linear(model.fc.in_features, num_classes, bias=False)
    return model


def rank_with_probes(rank, ranks, port, train_kwargs, out):
    """A training rank (a spawned process: the patches are its own) that records, per epoch, the sample keys it
    read and the batches it was given."""
    real_shuffle, real_collate, epochs = tr.seeded_shuffle, tr.collate_crops, []

    def recording_shuffle(samples, **kw):
        epochs.append({"keys": [], "batches": []})
        for sample in real_shuffle(samples, **kw):
            epochs[-1]["keys"].append(sample["__key__"])
            yield sample

    def recording_collate(samples):
        epochs[-1]["batches"].append(real_collate(samples))
        return epochs[-1]["batches"][-1]

    tr.build_model, tr.seeded_shuffle, tr.collate_crops = groupnorm_resnet, recording_shuffle, recording_collate
    run_rank(rank, ranks, port, "cpu", 1, None, tr.train, train_kwargs)
    torch.save(epochs, out / f"rank{rank}.pt")


def test_two_ranks_on_disjoint_shards_train_as_one_process_on_both_batches(packed, tmp_path):
    index = json.loads((packed / "train.json").read_text())
    training = TINY | {"local_crops": 1, "weight_decay": 0.01}
    job = {"shard_paths": [str(packed / "train" / s["name"]) for s in index["shards"]], "shard_counts": [6, 6, 4],
           "classes": CLASSES, "training": training, "checkpoint": tmp_path / "checkpoint.pt",
           "metrics": tmp_path / "metrics.jsonl", "workers": 0}
    torch.multiprocessing.spawn(rank_with_probes, args=(2, free_port(), job, tmp_path), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    plan = tr.plan_epochs([6, 6, 4], epochs=2, seed=0, workers=1, batch_size=4, ranks=2)
    for epoch in range(len(plan.steps)):
        keys = [set(r[epoch]["keys"]) for r in ranks]
        assert keys[0] and keys[1] and not keys[0] & keys[1]

    # The same steps in one process, each on the two ranks' batches together: the same weights.
    lrs = [m["lr"] for m in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines())
           if m["event"] == "step"]
    t = tr.resolve_training(training)
    torch.manual_seed(t["seed"])
    model = groupnorm_resnet(t["arch"], len(CLASSES))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0, momentum=t["momentum"], weight_decay=t["weight_decay"])
    batches = [pair for epoch, steps in enumerate(plan.steps)
               for pair in zip(*(r[epoch]["batches"][:steps] for r in ranks))]
    assert len(batches) == len(lrs) == plan.total_steps
    for ((crops0, labels0), (crops1, labels1)), lr in zip(batches, lrs):
        assert len(labels0) == len(labels1) == t["batch_size"] // 2
        crops = [torch.cat(pair) for pair in zip(crops0, crops1)]
        optimizer.param_groups[0]["lr"] = lr
        optimizer.zero_grad()
        tr.multicrop_loss(model, crops, torch.cat([labels0, labels1])).backward()
        optimizer.step()
    trained = torch.load(tmp_path / "checkpoint.pt", weights_only=False)["state_dict"]
    for name, value in model.state_dict().items():
        torch.testing.assert_close(trained[name], value, rtol=1e-4, atol=1e-6, msg=name)

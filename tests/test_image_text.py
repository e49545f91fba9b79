"""Image-text: retrieval metric, SVO-CLIP's game, ClipLoss under DDP, and the data modules on real formats."""

import json
import os
import socket
import warnings

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from shapvision.data import (
    CC3MDataModule,
    DigitScenesDataModule,
    KarpathyDataModule,
    ParquetImageTextDataModule,
)
from shapvision.metrics.retrieval import ImageTextRetrieval, retrieval_recalls
from shapvision.modules import SVOCLIP, CLIPFineTune
from shapvision.modules.svo_clip import shared_vote_fraction
from shapvision.objectives.svo import svo_clip_shapley_loss
from shapvision.shapley import exact_shapley

from .helpers import jpeg, karpathy_fixture, write_shards

TINY = "shapvision-digits-clip"


# --- retrieval ---------------------------------------------------------------------------------


def test_retrieval_ranks_on_a_hand_made_matrix_with_several_captions_per_image():
    # 3 images; captions 0, 1 -> image 0, caption 2 -> image 1, captions 3, 4 -> image 2
    similarity = torch.tensor(
        [
            [0.9, 0.1, 0.3, 0.0, 0.2],
            [0.5, 0.2, 0.1, 0.8, 0.1],
            [0.1, 0.7, 0.2, 0.4, 0.3],
        ]
    )
    caption_image = torch.tensor([0, 0, 1, 2, 2])
    recalls = retrieval_recalls(similarity, caption_image, (1, 2, 3, 4))
    t2i = [sum(1 - recalls[f"t2i_r{k}"][t].item() for k in (1, 2, 3)) for t in range(5)]
    i2t = [sum(1 - recalls[f"i2t_r{k}"][i].item() for k in (1, 2, 3)) for i in range(3)]
    # caption 0: image 0 best -> 0; caption 1: image 2 (0.7) > image 1 (0.2) > image 0 (0.1) -> 2;
    # caption 2: image 0 (0.3) > image 1 (0.1)... image 2 (0.2) > 0.1 too -> 2; caption 3: image 1 0.8 > 0.4 -> 1;
    # caption 4: image 0 0.2 < 0.3, image 1 0.1 -> 0
    assert t2i == [0, 2, 2, 1, 0]  # the rank, summed from the recalls at K = 1, 2, 3
    # image 0: its captions rank 0 (0.9) and 4 (0.1) -> best 0; image 1: caption 2 (0.1) ranks below
    # 0.5, 0.2, 0.8 -> 3, tied with caption 4's 0.1: at place 3 or 4 with equal chance; image 2:
    # caption 3 (0.4) is below 0.7 -> 1, caption 4 (0.3) below 0.7, 0.4 -> 2; best 1
    assert i2t == [0, 3, 1]
    assert recalls["i2t_r4"].tolist() == [1.0, 0.5, 1.0]
    metric = ImageTextRetrieval(ks=(1, 2))
    images = torch.eye(3)
    # features whose dot products are the matrix: images one-hot, texts = columns
    metric.update(images, torch.arange(3), similarity.T, torch.arange(5), caption_image)
    result = metric.compute()
    assert result["t2i_r1"] == pytest.approx(2 / 5) and result["t2i_r2"] == pytest.approx(3 / 5)
    assert result["i2t_r1"] == pytest.approx(1 / 3) and result["i2t_r2"] == pytest.approx(2 / 3)


def test_retrieval_drops_padded_duplicates_and_refuses_orphan_captions():
    similarity = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    metric = ImageTextRetrieval(ks=(1,))
    metric.update(
        torch.eye(2), torch.tensor([0, 1]), similarity.T, torch.tensor([0, 1]), torch.tensor([0, 1])
    )
    # a DistributedSampler pads with a copy of image 0 and its caption: must not count twice
    metric.update(
        torch.eye(2)[:1], torch.tensor([0]), similarity.T[:1], torch.tensor([0]), torch.tensor([0])
    )
    assert metric.compute()["t2i_r1"] == 1.0
    orphan = ImageTextRetrieval()
    orphan.update(
        torch.eye(2)[:1],
        torch.tensor([0]),
        similarity.T,
        torch.tensor([0, 1]),
        torch.tensor([0, 1]),
    )
    with pytest.raises(ValueError, match="captions refer to images that were not evaluated"):
        orphan.compute()


# --- SVO-CLIP's game ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scenes():
    data = DigitScenesDataModule(train_scenes=64, val_scenes=16, test_scenes=16)
    data.setup()
    return data


def masked_scores(model, images, text, masks):
    """v(S) = s(x_S, t) ``(B, M)`` for each image's caption ``text`` ``(B, D)``, in cosine units."""
    return (model.masked_embedding_sums(images, masks) @ text.unsqueeze(2)).squeeze(2)


@pytest.mark.parametrize("keep_cls", [False, True])
def test_svo_clip_votes_sum_to_the_score_and_the_empty_coalition_is_worth_zero(scenes, keep_cls):
    torch.manual_seed(0)
    model = SVOCLIP(clip_model=TINY, img_size=32, keep_cls=keep_cls).eval()
    batch = torch.utils.data.default_collate([scenes.train_set[i] for i in range(3)])
    images, tokens = batch["image"], batch["text"]
    with torch.no_grad():
        phi = model.explain(images, tokens)
        text = model.text_features(tokens)
        score = (model.image_features(images) * text).sum(1) * model.num_patches
        full = torch.ones(3, 1, model.num_patches, dtype=torch.bool)
        values = masked_scores(model, images, text, torch.cat([full, ~full], 1))
    assert torch.allclose(phi.sum(1), score, atol=1e-5)
    assert torch.allclose(values[:, 0], score, atol=1e-5) and torch.equal(
        values[:, 1], torch.zeros(3)
    )


def block_input_lengths(blocks) -> list[int]:
    """Record the sequence length every call of the first block sees."""
    lengths = []
    blocks[0].register_forward_pre_hook(lambda module, args: lengths.append(args[0].shape[1]))
    return lengths


@pytest.mark.parametrize("clip_model", [TINY, "EVA02-B-16"])
def test_svo_clip_drops_cls_in_both_branches_as_the_paper(clip_model):
    """Paper: "remove masked patches along with [cls]". With CLS dropped, only patch tokens enter the
    blocks, the full mask's value equals the full branch's score and v(empty) = 0, on open_clip's own
    ViT and on EVA02 (rotary embeddings on every position once the prefix is gone); keep_cls keeps it."""
    torch.manual_seed(0)
    size = 32 if clip_model == TINY else 64
    depth = {} if clip_model == TINY else {"vision_depth": 2, "text_depth": 1}
    model = SVOCLIP(clip_model=clip_model, img_size=size, **depth).eval()
    kept = SVOCLIP(clip_model=clip_model, img_size=size, keep_cls=True, **depth).eval()
    kept.load_state_dict(model.state_dict())
    n = model.num_patches
    backbone = model.towers.backbone
    blocks = (
        backbone.model.blocks
        if hasattr(backbone, "model")
        else backbone.visual.transformer.resblocks
    )
    lengths = block_input_lengths(blocks)
    images = torch.randn(2, 3, size, size)
    text = torch.nn.functional.normalize(
        torch.randn(2, model.patch_embeddings(images[:1]).shape[-1]), dim=-1
    )
    masks = torch.stack(
        [
            torch.ones(2, n, dtype=torch.bool),
            torch.zeros(2, n, dtype=torch.bool),
            torch.rand(2, n) > 0.5,
        ],
        1,
    )
    with torch.no_grad():
        score = (model.patch_embeddings(images) @ text.unsqueeze(2)).squeeze(2).sum(1)
        values = masked_scores(model, images, text, masks)
        attention = backbone.forward_patches(images, masks[:, 2], masking="attention").tokens
        dropped = backbone.forward_patches(images, masks[:, 2], masking="drop").tokens
        kept_score = (kept.patch_embeddings(images) @ text.unsqueeze(2)).squeeze(2).sum(1)
    assert max(lengths) <= n  # no CLS in any forward: full (n tokens), masked rows packed within n
    torch.testing.assert_close(values[:, 0], score, atol=1e-5, rtol=0)
    assert torch.equal(values[:, 1], torch.zeros(2))
    torch.testing.assert_close(dropped, attention, atol=1e-4, rtol=0)
    assert not torch.allclose(
        kept_score, score, atol=1e-3
    )  # CLS kept: another sequence, other values


def test_svo_clip_shapley_loss_in_logit_units_over_the_batch_captions_by_hand():
    """2 images x 2 patches, 2 captions, one mask each; the loss equals the hand-computed mean."""
    e = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.6, 0.8], [1.0, 0.0]]])  # (B, N, D) unit
    t = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # caption 0 = x axis, caption 1 = y axis
    masks = torch.tensor(
        [[[True, False]], [[False, True]]]
    )  # image 0 keeps patch 0, image 1 patch 1
    masked = torch.tensor([[[0.8, 0.6]], [[0.0, 1.0]]])  # summed embeddings of the masked images
    units = 10.0  # logit_scale / N
    # image 0: additive = e00 . t = (1, 0); game = (0.8, 0.6) -> gaps (-0.2, 0.6) x 10
    # image 1: additive = e11 . t = (1, 0); game = (0, 1) -> gaps (-1, 1) x 10
    expected = 100 * (0.04 + 0.36 + 1.0 + 1.0) / 4
    loss = svo_clip_shapley_loss(e @ t.T, masked, t, masks, units)
    assert loss.item() == pytest.approx(expected)
    matched = svo_clip_shapley_loss(e @ t.T, masked, t, masks, units, torch.tensor([[0], [1]]))
    assert matched.item() == pytest.approx(100 * (0.04 + 1.0) / 2)


def test_svo_clip_shapley_gradient_reaches_the_vision_tower_through_every_vote(scenes):
    torch.manual_seed(0)
    model = SVOCLIP(clip_model=TINY, img_size=32, num_masks=2, paired=True)
    batch = torch.utils.data.default_collate([scenes.train_set[i] for i in range(4)])
    patches = model.patch_embeddings(batch["image"])
    patches.retain_grad()
    text = model.text_features(batch["text"])
    loss = model.shapley_loss(batch["image"], patches @ text.T, text)
    loss.backward()
    assert (patches.grad.norm(dim=-1) > 0).all()  # every patch of every image
    assert model.towers.clip.visual.conv1.weight.grad.abs().sum() > 0
    assert model.towers.logit_scale.grad is None  # the temperature is a constant of this loss


def test_shared_vote_fraction_is_one_for_caption_independent_votes():
    votes = torch.randn(2, 4, 1).expand(2, 4, 3)
    assert shared_vote_fraction(votes).item() == pytest.approx(1.0)
    centred = torch.randn(2, 4, 3)
    centred = centred - centred.mean(-1, keepdim=True)
    assert shared_vote_fraction(centred).item() == pytest.approx(0.0, abs=1e-6)


def test_vote_sparsity_penalises_the_positive_votes_in_logit_units(scenes):
    """The training loss = contrastive + vote_sparsity x mean over every caption of the batch of
    max(logit_scale / N x vote, 0) (``absolute``: |.|); a negative vote costs nothing by default."""
    batch = torch.utils.data.default_collate([scenes.train_set[i] for i in range(4)])
    losses = {}
    for part in ("positive", "absolute"):
        torch.manual_seed(0)
        model = SVOCLIP(
            clip_model=TINY,
            img_size=32,
            shapley_weight=0,
            vote_sparsity=2.0,
            vote_sparsity_part=part,
        )
        logged = {}
        model.log = lambda name, value, logged=logged, **kwargs: logged.__setitem__(name, value)
        losses[part] = model.training_loss(batch["image"], batch["text"]).item()
        with torch.no_grad():
            votes = model.patch_embeddings(batch["image"]) @ model.text_features(batch["text"]).T
            scaled = model.towers.logit_scale.exp() / model.num_patches * votes
        hand = (scaled.clamp_min(0) if part == "positive" else scaled.abs()).mean()
        assert (scaled < 0).any() and (scaled > 0).any()  # both signs occur: the parts differ
        assert losses[part] == pytest.approx(
            logged["train/contrastive_loss"].item() + 2.0 * hand.item(), rel=1e-5
        )
    assert losses["positive"] < losses["absolute"]
    with pytest.raises(ValueError, match="vote_sparsity_part must be 'positive' or 'absolute'"):
        SVOCLIP(clip_model=TINY, img_size=32, vote_sparsity_part="relu")


@pytest.mark.slow  # two exact computations (2^16 masked forwards each): about 30 s
def test_svo_clip_training_brings_votes_towards_exact_shapley_values(scenes):
    """A few steps of SVO-CLIP with a large lambda: the votes track the exact values of its own game."""
    torch.manual_seed(0)
    model = SVOCLIP(clip_model=TINY, img_size=32, shapley_weight=1.0, num_masks=8, paired=True)
    batch = torch.utils.data.default_collate([scenes.train_set[i] for i in range(4)])
    images, tokens = batch["image"], batch["text"]

    def error() -> float:
        with torch.no_grad():
            phi = model.explain(images[:1], tokens[:1])[0]
            text = model.text_features(tokens[:1])

            def game(keep):
                return masked_scores(model, images[:1], text, keep.unsqueeze(0))[0]

            exact = exact_shapley(game, model.num_patches)
        return float((phi - exact).norm())

    before = error()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(30):
        optimizer.zero_grad()
        text = model.text_features(tokens)
        model.shapley_loss(images, model.patch_embeddings(images) @ text.T, text).backward()
        optimizer.step()
    assert error() < 0.5 * before


def test_vit_methods_apply_to_an_eva02_tower_and_are_refused_on_open_clips_own():
    from shapvision.attribution.attention_capture import captured_attention
    from shapvision.attribution.caption_model import CaptionExplainedModel
    from shapvision.attribution.registry import create_method

    torch.manual_seed(0)
    options = {"clip_model": "EVA02-B-16", "img_size": 64, "vision_depth": 2, "text_depth": 1}
    eva = SVOCLIP(keep_cls=True, **options).eval()
    model = CaptionExplainedModel(eva, "eva")
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        model.set_captions(eva.text_features(eva_tokens(["a dog", "a cat"])))
        with captured_attention(eva.towers.backbone) as maps:
            model.logits(images)
    # the hook sees Eva's post-softmax attention of both blocks: (B, heads, 1 + 16, 1 + 16), rows sum to 1
    assert len(maps) == 2 and maps[0].shape == (2, 12, 17, 17)
    assert torch.allclose(maps[1].sum(-1), torch.ones(2, 12, 17), atol=1e-5)
    for name in ("gradcam", "rollout", "game"):
        values = create_method(name, model).explain(images, torch.tensor([0, 1])).patches
        assert values.shape == (2, 16) and torch.isfinite(values).all()
    # the paper's SVO-CLIP runs without CLS: the methods that read its attention row are refused
    paper = SVOCLIP(**options).eval()
    without_cls = CaptionExplainedModel(paper, "SVO-CLIP without CLS")
    without_cls.set_captions(paper.text_features(eva_tokens(["a dog", "a cat"])).detach())
    assert create_method("gradcam", without_cls).explain(
        images, torch.tensor([0, 1])
    ).patches.shape == (2, 16)
    with pytest.raises(ValueError, match="reads the CLS row of the attention"):
        create_method("rollout", without_cls)
    tiny = CaptionExplainedModel(SVOCLIP(clip_model=TINY, img_size=32), "the tiny CLIP")
    with pytest.raises(
        ValueError,
        match=r"method 'rollout' does not apply to the tiny CLIP's backbone \(OpenCLIPViTBackbone",
    ):
        create_method("rollout", tiny)


def eva_tokens(captions):
    import open_clip

    return open_clip.get_tokenizer("EVA02-B-16")(captions)


# --- ClipLoss and the shard loader under 2-process DDP ------------------------------------------


def free_port() -> int:
    with socket.socket() as handle:
        handle.bind(("127.0.0.1", 0))
        return handle.getsockname()[1]


def _ddp_worker(rank, world, port, shards, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    mp.set_start_method("spawn", force=True)  # loader workers must pickle (spawn / forkserver)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    from types import SimpleNamespace

    from open_clip.loss import ClipLoss

    torch.manual_seed(0)
    image_features = torch.nn.functional.normalize(torch.randn(8, 16), dim=-1)
    text_features = torch.nn.functional.normalize(torch.randn(8, 16), dim=-1)
    local = slice(4 * rank, 4 * rank + 4)
    loss = ClipLoss(gather_with_grad=True, rank=rank, world_size=world)(
        image_features[local], text_features[local], torch.tensor(10.0)
    )
    data = CC3MDataModule(shards, tokenizer=TINY, img_size=32, batch_size=2, num_workers=2)
    data.trainer = SimpleNamespace(global_rank=rank, world_size=world)
    keys, batches = [], 0
    for batch in data.train_dataloader():
        keys += batch["caption_index"].tolist()
        batches += 1
    torch.save({"loss": float(loss), "keys": keys, "batches": batches}, f"{out}/{rank}.pt")
    dist.destroy_process_group()


def test_clip_loss_and_shard_loader_under_two_process_ddp(tmp_path):
    from open_clip.loss import ClipLoss

    shards = write_shards(tmp_path / "shards", [5, 2, 7, 3, 1, 4])  # uneven, 22 samples
    mp.spawn(_ddp_worker, args=(2, free_port(), str(shards), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"{r}.pt") for r in range(2)]
    torch.manual_seed(0)
    image_features = torch.nn.functional.normalize(torch.randn(8, 16), dim=-1)
    text_features = torch.nn.functional.normalize(torch.randn(8, 16), dim=-1)
    single = ClipLoss()(image_features, text_features, torch.tensor(10.0))
    assert ranks[0]["loss"] == pytest.approx(float(single), abs=1e-5)
    assert ranks[1]["loss"] == pytest.approx(float(single), abs=1e-5)
    # ceil(22 / (2 x 2)) = 6 batches per rank, rounded up to a multiple of 2 workers
    assert ranks[0]["batches"] == ranks[1]["batches"] == 6
    assert not set(ranks[0]["keys"]) & set(ranks[1]["keys"])  # shards split by rank
    # 24 sample slots for 22 samples: a worker whose shards run out repeats them, a long one is cut
    assert set(ranks[0]["keys"]) | set(ranks[1]["keys"]) <= set(range(22))
    assert len(set(ranks[0]["keys"]) | set(ranks[1]["keys"])) >= 16


def test_shard_order_changes_with_the_epoch_and_errors_name_the_layout(tmp_path):
    shards = write_shards(tmp_path / "shards", [3, 3, 3, 3])
    data = CC3MDataModule(str(shards), tokenizer=TINY, img_size=32, batch_size=3, num_workers=0)
    orders = []
    for epoch in (0, 1):
        data.set_epoch(epoch)
        orders.append([k for b in data.train_pipeline(0, 1) for k in b["caption_index"].tolist()])
    assert sorted(orders[0]) == sorted(orders[1]) == list(range(12)) and orders[0] != orders[1]
    (shards / "00002_stats.json").unlink()
    with pytest.raises(FileNotFoundError, match="00002_stats.json is missing"):
        CC3MDataModule(str(shards), tokenizer=TINY)
    with pytest.raises(FileNotFoundError, match="is not a folder; expected SHARDS/NNNNN.tar"):
        CC3MDataModule(str(tmp_path / "nowhere"), tokenizer=TINY)
    with pytest.raises(ValueError, match="4 shards for 2 ranks x 4 workers"):
        write_shards(tmp_path / "four", [1, 1, 1, 1])
        CC3MDataModule(str(tmp_path / "four"), tokenizer=TINY, num_workers=4).train_pipeline(0, 2)


def test_resampled_shards_give_every_rank_its_batches_from_its_own_draws(tmp_path):
    shards = write_shards(tmp_path / "shards", [6, 1])  # fewer shards than ranks x workers
    data = CC3MDataModule(
        str(shards), tokenizer=TINY, img_size=32, batch_size=2, num_workers=0, resampled=True
    )
    ranks = [[b["caption_index"].tolist() for b in data.train_pipeline(rank, 2)] for rank in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == data.batches_per_rank(2) == 2  # ceil(7 / (2 x 2))
    assert ranks[0] != ranks[1]


# --- Karpathy JSON, parquet, tokenizer ----------------------------------------------------------


def test_karpathy_splits_count_missing_images_and_keep_five_captions(tmp_path):
    root = karpathy_fixture(tmp_path)
    data = KarpathyDataModule(
        str(root / "dataset_coco.json"), str(root), tokenizer=TINY, img_size=32
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data.setup()
    assert len(data.train_set) == 10  # train + restval, one sample per caption
    assert len(data.test_set) == 2 and data.num_missing == 1
    assert any("COCO_5.jpg" in str(w.message) for w in caught)
    sample = data.test_set[0]
    assert sample["text"].shape == (5, 16) and sample["caption_index"].tolist() == [0, 1, 2, 3, 4]
    (root / "bad.json").write_text(json.dumps({"images": [{"filename": "x.jpg"}]}))
    with pytest.raises(ValueError, match=r"image 0 lacks \['split', 'sentences'\]"):
        KarpathyDataModule(str(root / "bad.json"), str(root), tokenizer=TINY)
    with pytest.raises(FileNotFoundError, match="Karpathy split JSON"):
        KarpathyDataModule(str(root / "none.json"), str(root), tokenizer=TINY)


def test_parquet_copies_are_read_with_hf_datasets(tmp_path):
    import datasets

    rows = {
        "image": [{"bytes": jpeg((30 * i, 0, 0)), "path": None} for i in range(4)],
        "captions": [[f"red {i}", f"dark {i}"] for i in range(4)],
    }
    features = datasets.Features(
        {"image": datasets.Image(), "captions": datasets.Sequence(datasets.Value("string"))}
    )
    datasets.Dataset.from_dict(rows, features=features).to_parquet(str(tmp_path / "train.parquet"))
    data = ParquetImageTextDataModule(
        str(tmp_path / "train.parquet"),
        str(tmp_path / "train.parquet"),
        tokenizer=TINY,
        img_size=32,
        captions_per_image=2,
    )
    data.setup()
    assert len(data.train_set) == 8 and data.test_set[3]["image"].shape == (3, 32, 32)
    with pytest.raises(ValueError, match=r"has no column \['text'\]"):
        bad = ParquetImageTextDataModule(
            str(tmp_path / "train.parquet"),
            str(tmp_path / "train.parquet"),
            tokenizer=TINY,
            caption_column="text",
        )
        bad.setup()


def test_long_captions_are_truncated_and_counted(scenes):
    tokenizer = scenes.tokenizer
    before = scenes.num_truncated
    with pytest.warns(
        UserWarning, match=r"longer than the shapvision-digits-clip context \(16 tokens\)"
    ):
        tokens = tokenizer(["a 7 on the left", " ".join(["seven"] * 40)])
    assert tokens.shape == (2, 16) and scenes.num_truncated == before + 1


def test_plain_clip_cls_embedding_is_open_clips_image_embedding(scenes):
    model = CLIPFineTune(clip_model=TINY, img_size=32).eval()
    images = torch.stack([scenes.test_set[i]["image"] for i in range(2)])
    with torch.no_grad():
        assert torch.allclose(
            model.image_features(images),
            model.towers.clip.encode_image(images, normalize=True),
            atol=1e-5,
        )


@pytest.mark.slow  # 300 training steps of the tiny SVO-CLIP: about 2 minutes
def test_svo_clip_training_moves_the_positive_votes_onto_the_named_digit():
    """SVO-CLIP from scratch on digit scenes with the default objective (Shapley loss in logit units
    over the batch's captions, vote sparsity): the votes' positive mass lands on the digit a caption
    names, well above a random map's share (0.38 on these scenes)."""
    torch.manual_seed(0)
    data = DigitScenesDataModule(train_scenes=2000, val_scenes=8, test_scenes=50)
    data.setup()
    model = SVOCLIP(clip_model=TINY, img_size=32, num_masks=2, paired=True)
    model.log = lambda *args, **kwargs: None  # no trainer attached
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.1)
    loader = torch.utils.data.DataLoader(
        data.train_set, batch_size=64, shuffle=True, drop_last=True
    )
    step = 0
    while step < 300:
        for batch in loader:
            optimizer.zero_grad()
            model.training_loss(batch["image"], batch["text"]).backward()
            optimizer.step()
            model.towers.clamp_logit_scale()
            step += 1
            if step == 300:
                break
    model.eval()
    scenes = data.split_items("test")
    tokenize = data.tokenizer
    shares = []
    with torch.no_grad():
        for scene in scenes:
            tokens = tokenize(list(scene.captions))
            votes = model.explain(scene.image[None].expand(len(tokens), -1, -1, -1), tokens)
            positive = votes.clamp_min(0)
            named = (positive * scene.regions).sum(1) / positive.sum(1).clamp_min(1e-8)
            shares.extend(named.tolist())
    assert sum(shares) / len(shares) > 0.6


def test_centred_captions_subtract_the_running_caption_mean_learnt_in_training_only(scenes):
    torch.manual_seed(0)
    model = SVOCLIP(clip_model=TINY, img_size=32, centre_captions=True)
    batch = torch.utils.data.default_collate([scenes.train_set[i] for i in range(4)])
    with torch.no_grad():
        raw = model.towers.encode_text(batch["text"])
        centred = model.text_features(batch["text"])  # training mode: the first batch sets the mean
        torch.testing.assert_close(centred, raw - raw.mean(0))
        model.eval()
        before = model.caption_mean.clone()
        model.text_features(batch["text"][:2])
    assert torch.equal(model.caption_mean, before) and int(model.caption_mean_batches) == 1
    with pytest.raises(ValueError, match="caption_mean_momentum must be in"):
        SVOCLIP(clip_model=TINY, img_size=32, caption_mean_momentum=1.0)


# --- zero-shot evaluation from open_clip weights alone (SVO Table 4's CLIP row) ------------------


def test_zero_shot_evaluation_is_open_clips_own_model_from_the_weights_file(tmp_path):
    import open_clip
    import torch.nn.functional as F

    from shapvision.modules import ImageTextEvaluation

    torch.manual_seed(3)
    reference = open_clip.create_model(TINY).eval()
    weights = tmp_path / "weights.pt"
    torch.save(reference.state_dict(), weights)
    evaluation = ImageTextEvaluation(
        clip_model=TINY, img_size=32, pretrained=str(weights), methods=[], metrics=["retrieval"]
    )
    images = torch.randn(3, 3, 32, 32)
    tokens = open_clip.get_tokenizer(TINY)(["a one", "a two"])
    with torch.no_grad():
        ours_images = evaluation.explained.image_features(images)
        ours_text = evaluation.explained.text_features(tokens)
        theirs_images = F.normalize(reference.encode_image(images), dim=-1)
        theirs_text = F.normalize(reference.encode_text(tokens), dim=-1)
    assert torch.allclose(ours_images, theirs_images, atol=1e-5)
    assert torch.allclose(ours_text, theirs_text, atol=1e-5)
    assert "zero-shot" in evaluation.model.name
    for options in ({}, {"pretrained": str(weights), "checkpoint": str(weights)}):
        with pytest.raises(ValueError, match="set exactly one of model.init_args.checkpoint"):
            ImageTextEvaluation(clip_model=TINY, img_size=32, methods=[], **options)
    with pytest.raises(FileNotFoundError, match="pretrained weights file not found"):
        ImageTextEvaluation(clip_model=TINY, img_size=32, pretrained=str(tmp_path / "none.pt"))

"""Data modules: the digits split, and ImageFolder layout errors and corrupt-image handling."""

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from shapvision.data import DigitsDataModule, ImageFolderDataModule
from shapvision.data.batch import IndexedSplit, collate_samples

from .helpers import make_mura, write_gtsegs_mat, write_imagenet_s


def test_digits_split_is_fixed_stratified_and_standardised():
    a, b = DigitsDataModule(seed=3), DigitsDataModule(seed=3)
    a.setup(), b.setup()
    sizes = [len(a.train_set), len(a.val_set), len(a.test_set)]
    assert sum(sizes) == 1797 and sizes[2] == 270
    assert torch.equal(a.test_set.tensors[1], b.test_set.tensors[1])
    counts = torch.bincount(a.test_set.tensors[1], minlength=10)
    assert counts.min() >= 26 and counts.max() <= 28  # stratified: 27 +- 1 per class
    images = a.train_set.tensors[0]
    assert images.shape[1:] == (3, 32, 32)
    assert abs(images.mean().item()) < 1e-4 and abs(images.std().item() - 1) < 1e-3
    c = DigitsDataModule(seed=4)
    c.setup()
    assert not torch.equal(a.test_set.tensors[1], c.test_set.tensors[1])


def make_folder(root, splits=("train", "val"), classes=("cat", "dog"), per_class=3, corrupt=None):
    for split in splits:
        for name in classes:
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                Image.new("RGB", (40, 30), color=(i * 40, 100, 200)).save(folder / f"{i}.png")
    if corrupt:
        (root / corrupt).write_bytes(b"not an image at all")
    return root


def test_image_folder_reads_layout_and_counts_corrupt_images(tmp_path):
    root = make_folder(tmp_path, corrupt="train/cat/broken.png")
    data = ImageFolderDataModule(str(root), img_size=16, batch_size=7, num_workers=0)
    assert data.num_classes == 2 and data.class_names == ["cat", "dog"]
    data.setup("fit")
    seen = 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for batch in data.train_dataloader():
            images, labels = batch["image"], batch["label"]
            assert images.shape[1:] == (3, 16, 16)
            seen += labels.numel()
    assert (
        data.num_skipped == 1 and seen == 6
    )  # 7 files in one batch, the unreadable one dropped and counted
    assert any("broken.png" in str(w.message) for w in caught)


def test_image_folder_layout_errors_show_the_expected_layout(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"does not exist; expected the layout ROOT/train/<class>"
    ):
        ImageFolderDataModule(str(tmp_path / "nowhere"))
    make_folder(tmp_path / "a", splits=("train",))
    with pytest.raises(FileNotFoundError, match=r"has no val/ folder .*expected the layout"):
        ImageFolderDataModule(str(tmp_path / "a"))
    make_folder(tmp_path / "b", splits=("train",))
    make_folder(tmp_path / "b", splits=("val",), classes=("cat", "bird"))
    with pytest.raises(
        ValueError,
        match=r"different class folders from train/: missing \['dog'\], extra \['bird'\]",
    ):
        ImageFolderDataModule(str(tmp_path / "b"))


def test_image_folder_test_split_from_val_is_a_fixed_half(tmp_path):
    root = make_folder(tmp_path, per_class=5)
    data = ImageFolderDataModule(
        str(root), img_size=16, test_from_val=True, num_workers=0, eval_batch_size=3
    )
    data.setup()
    assert len(data.val_set) == 5 and len(data.test_set) == 5
    assert not set(data.val_set.indices) & set(data.test_set.indices)
    batches = list(
        data.test_dataloader()
    )  # a Subset split still yields dict batches indexed by position
    assert torch.cat([b["index"] for b in batches]).tolist() == [0, 1, 2, 3, 4]


def test_a_batch_that_loses_images_keeps_every_other_index(tmp_path):
    root = make_folder(tmp_path, per_class=3)
    (root / "val" / "cat" / "1.png").write_bytes(b"corrupt")
    data = ImageFolderDataModule(str(root), img_size=16, batch_size=4, num_workers=0)
    data.setup()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batches = list(data.val_dataloader())
    # val/: cat/0,1,2 then dog/0,1,2; cat/1.png (position 1) is unreadable
    assert torch.cat([b["index"] for b in batches]).tolist() == [0, 2, 3, 4, 5]
    labels = torch.cat([b["label"] for b in batches]).tolist()
    assert labels == [0, 0, 1, 1, 1] and data.num_skipped == 1
    expected = data.val_set[4][0]
    position = torch.cat([b["index"] for b in batches]).tolist().index(4)
    torch.testing.assert_close(torch.cat([b["image"] for b in batches])[position], expected)


def test_an_all_dropped_batch_is_none_and_every_step_accepts_it():
    from shapvision.modules import Classifier, SVOClassifier

    class Unreadable(torch.utils.data.Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, index):
            return None

    split = IndexedSplit(Unreadable())
    assert collate_samples([split[i] for i in range(3)]) is None
    tiny = {"patch_size": 8, "embed_dim": 16, "depth": 1, "num_heads": 2}
    for cls in (Classifier, SVOClassifier):
        module = cls(
            backbone="vit_tiny_patch16_224", backbone_kwargs=tiny, num_classes=10, img_size=32
        )
        assert module.training_step(None, 0) is None
        assert module.validation_step(None, 0) is None
        assert module.predict_step(None, 0) is None


def test_imagenet_segmentation_reads_the_mat_structure(tmp_path):
    import numpy as np

    from shapvision.data import ImageNetSegmentationDataModule

    image = np.zeros((20, 30, 3), dtype=np.uint8)
    image[:, :15] = 255  # left half white
    mask = np.zeros((20, 30), dtype=np.uint8)
    mask[:10] = 1  # top half is the object
    write_gtsegs_mat(tmp_path / "gtsegs_ijcv.mat", [image, image[::-1]], [mask, mask[::-1]])
    data = ImageNetSegmentationDataModule(
        str(tmp_path / "gtsegs_ijcv.mat"), img_size=16, batch_size=2, num_workers=0
    )
    data.setup("test")
    batch = next(iter(data.test_dataloader()))
    assert batch["image"].shape == (2, 3, 16, 16) and batch["mask"].shape == (2, 16, 16)
    assert batch["index"].tolist() == [0, 1] and "label" not in batch
    assert batch["mask"][0, :8].all() and not batch["mask"][0, 8:].any()
    left, right = batch["image"][0, :, :, :7], batch["image"][0, :, :, 9:]
    assert left.min() > 0.999 and right.max() < -0.999  # (x - 0.5) / 0.5
    with pytest.raises(ValueError, match="is an evaluation set"):
        data.setup("fit")


def test_imagenet_segmentation_bad_files_are_clear_errors(tmp_path):
    import h5py

    from shapvision.data import ImageNetSegmentationDataModule

    with pytest.raises(FileNotFoundError, match=r"data.init_args.path .*missing.mat not found"):
        ImageNetSegmentationDataModule(str(tmp_path / "missing.mat"))
    (tmp_path / "text.mat").write_text("MATLAB 5.0 MAT-file")
    with pytest.raises(ValueError, match="is not an HDF5 file"):
        ImageNetSegmentationDataModule(str(tmp_path / "text.mat"))
    with h5py.File(tmp_path / "other.mat", "w") as handle:
        handle.create_dataset("images", data=[1, 2])
    with pytest.raises(ValueError, match=r"has no /value/img and /value/gt; expected an HDF5"):
        ImageNetSegmentationDataModule(str(tmp_path / "other.mat"))


def test_imagenet_s_reads_class_ids_from_the_png_masks(tmp_path):
    from shapvision.data import ImageNetSDataModule
    from shapvision.data.imagenet_s import class_ids

    root = write_imagenet_s(tmp_path / "ImageNetS50")
    data = ImageNetSDataModule(str(root), img_size=8, batch_size=4, num_workers=0)
    data.setup("test")
    batch = next(iter(data.test_dataloader()))
    assert batch["image"].shape == (4, 3, 8, 8) and batch["mask"].shape == (4, 8, 8)
    assert batch["index"].tolist() == [0, 1, 2, 3] and "label" not in batch
    # the top half (class ids 1, 2) is the object; background (0) and ignore (1000) are not
    assert batch["mask"][:, :4].all() and not batch["mask"][:, 4:].any()
    assert batch["image"][1, 0, 0, 0] == pytest.approx((80 / 255 - 0.5) / 0.5, abs=0.02)
    with_ignore = ImageNetSDataModule(str(root), img_size=8, num_workers=0, ignore_as="object")
    with_ignore.setup("test")
    mask = with_ignore.test_set[0]["mask"]
    assert mask[4:, 4:].all() and not mask[4:, :4].any()
    png = root / "validation-segmentation" / "n01491361" / "ILSVRC2012_val_00000002.png"
    ids = class_ids(np.asarray(Image.open(png).convert("RGB")))
    assert set(np.unique(ids).tolist()) == {0, 2, 1000}
    with pytest.raises(ValueError, match="is an evaluation set"):
        data.setup("fit")


def test_imagenet_s_bad_layouts_are_clear_errors(tmp_path):
    from shapvision.data import ImageNetSDataModule

    with pytest.raises(
        FileNotFoundError, match=r"has no validation/ folder; expected <root>/<split>"
    ):
        ImageNetSDataModule(str(tmp_path))
    root = write_imagenet_s(tmp_path / "ImageNetS50")
    (root / "validation-segmentation" / "n01443537" / "ILSVRC2012_val_00000001.png").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"1 images of validation/ have no mask, e.g. .*00000001.png"
    ):
        ImageNetSDataModule(str(root))
    with pytest.raises(ValueError, match="ignore_as must be one of"):
        ImageNetSDataModule(str(write_imagenet_s(tmp_path / "other")), ignore_as="skip")


def test_mura_splits_by_patient_with_binary_study_labels(tmp_path):
    from shapvision.data import MURADataModule

    data = MURADataModule(
        str(make_mura(tmp_path / "MURA-v1.1")), img_size=16, num_workers=0, val_fraction=0.2
    )
    assert data.num_classes == 2 and data.class_names == ["negative", "positive"]
    data.setup()
    patients = lambda dataset: {p for _, _, p in dataset.samples}  # noqa: E731
    assert len(patients(data.val_set)) == 2 and len(patients(data.train_set)) == 8
    assert not patients(data.val_set) & patients(data.train_set)
    assert len(data.test_set) == 2 * 2 * 2
    labels = [label for _, label, _ in data.train_set.samples + data.val_set.samples]
    assert sum(labels) == 5 * 2  # odd patients have a positive second study of two images
    sample = data.test_set[0]
    assert sample[0].shape == (3, 16, 16)
    again = MURADataModule(
        str(tmp_path / "MURA-v1.1"), img_size=16, num_workers=0, val_fraction=0.2
    )
    again.setup()
    assert patients(again.val_set) == patients(data.val_set)  # fixed by split_seed


def test_mura_layout_errors_name_the_layout(tmp_path):
    from shapvision.data import MURADataModule

    (tmp_path / "m" / "train").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"has no valid/ folder; expected the MURA layout"):
        MURADataModule(str(tmp_path / "m"))
    (tmp_path / "m" / "valid").mkdir()
    with pytest.raises(FileNotFoundError, match=r"holds no study images"):
        MURADataModule(str(tmp_path / "m"))


def test_image_folder_transforms_come_from_timm_and_match_the_classic_pipeline(tmp_path):
    from torchvision import transforms

    root = make_folder(tmp_path)
    data = ImageFolderDataModule(str(root), img_size=16, num_workers=0)
    image = Image.new("RGB", (40, 30), color=(10, 120, 230))
    image.putpixel((5, 5), (255, 0, 0))
    classic = transforms.Compose(
        [
            transforms.Resize(18),
            transforms.CenterCrop(16),
            transforms.ToTensor(),
            transforms.Normalize(data.mean, data.std),
        ]
    )
    torch.testing.assert_close(data._transform(False)(image), classic(image))
    vit = ImageFolderDataModule(
        str(root), img_size=16, num_workers=0, timm_model="vit_base_patch16_224"
    )
    assert vit.mean == (0.5, 0.5, 0.5) and vit.crop_pct == 0.9 and vit.interpolation == "bicubic"
    with pytest.raises(ValueError, match="timm_model 'no_such_model' is not a timm model"):
        ImageFolderDataModule(str(root), num_workers=0, timm_model="no_such_model")


def write_object(root, split, name, stem, box):
    """An image with a bright rectangle ``box`` (left, top, right, bottom) and its mask beside it."""
    image = Image.new("RGB", (48, 32), color=(0, 0, 0))
    image.paste((255, 255, 255), box)
    mask = Image.new("L", (48, 32), color=0)
    mask.paste(255, box)
    (root / split / name).mkdir(parents=True, exist_ok=True)
    (root / "masks" / split / name).mkdir(parents=True, exist_ok=True)
    image.save(root / split / name / f"{stem}.jpg")
    mask.save(root / "masks" / split / name / f"{stem}.png")


def test_image_folder_masks_follow_the_image_geometry(tmp_path):
    for split in ("train", "val", "test"):
        write_object(tmp_path, split, "cat", "a", (20, 4, 44, 20))
        write_object(tmp_path, split, "dog", "b", (2, 10, 16, 30))
    data = ImageFolderDataModule(
        str(tmp_path),
        img_size=16,
        num_workers=0,
        mask_root=str(tmp_path / "masks"),
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
    )
    assert data.has_masks
    data.setup("test")
    batch = next(iter(data.test_dataloader()))
    bright = batch["image"][:, :1] > 0
    mask = batch["mask"]
    assert mask.shape == (2, 1, 16, 16) and set(mask.unique().tolist()) == {0.0, 1.0}
    # resize (shorter side 32 -> 16 / 0.875) + centre crop moved both the same way: the rectangle is
    # off-centre and clipped by the crop, so a mask that skipped the geometry would disagree widely
    assert (bright == mask.bool()).float().mean() > 0.93
    assert (mask[0, 0, :, :3] == 0).all() and mask[0].sum() > 20


def test_image_folder_names_images_without_masks(tmp_path):
    for split in ("train", "val"):
        write_object(tmp_path, split, "cat", "a", (0, 0, 8, 8))
        write_object(tmp_path, split, "dog", "b", (0, 0, 8, 8))
    (tmp_path / "masks" / "val" / "dog" / "b.png").unlink()
    data = ImageFolderDataModule(
        str(tmp_path), img_size=16, num_workers=0, mask_root=str(tmp_path / "masks")
    )
    with pytest.raises(FileNotFoundError, match=r"data.mask_root: 1 of 2 images .*dog/b.png"):
        data.setup("test")
    with pytest.raises(FileNotFoundError, match=r"data.mask_root .*nowhere has no val/ folder"):
        ImageFolderDataModule(str(tmp_path), mask_root=str(tmp_path / "nowhere"))

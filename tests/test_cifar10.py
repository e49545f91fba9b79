"""CIFAR-10 from its python batches: the channel-major layout, the stratified split, the training
split's normalisation, resizing, class names from batches.meta, and clear errors on bad input."""

import pytest
import torch

from shapvision.data import CIFAR10DataModule

from .helpers import write_cifar10


def test_images_labels_and_splits_follow_the_python_batches(tmp_path):
    data = CIFAR10DataModule(str(write_cifar10(tmp_path / "cifar")), val_size=20, batch_size=8)
    data.setup("fit")
    assert data.num_classes == 10 and data.class_names[3] == "cat"
    assert (len(data.train_set), len(data.val_set), len(data.test_set)) == (80, 20, 10)
    mean, std = torch.tensor(data.mean).view(3, 1, 1), torch.tensor(data.std).view(3, 1, 1)
    # test image k: red k, green 2k, blue 255 - k in every pixel (channel-major), label k mod 10
    for k in (0, 7):
        image, label = data.test_set[k]
        raw = image * std + mean
        expected = torch.tensor([k, 2 * k, 255 - k], dtype=torch.float32).view(3, 1, 1) / 255
        torch.testing.assert_close(raw, expected.expand(3, 32, 32), atol=1e-5, rtol=0)
        assert int(label) == k % 10
    # normalised with the training split's per-channel statistics
    train = torch.stack([data.train_set[i][0] for i in range(len(data.train_set))])
    torch.testing.assert_close(train.mean((0, 2, 3)), torch.zeros(3), atol=1e-4, rtol=0)
    labels = torch.stack([data.val_set[i][1] for i in range(20)])
    assert torch.equal(labels.bincount(minlength=10), torch.full((10,), 2))  # stratified
    batch = next(iter(data.train_dataloader()))
    assert batch["image"].shape == (8, 3, 32, 32) and batch["index"].shape == (8,)
    assert data.preprocessing().img_size == 32


def test_resizing_and_augmentation_keep_the_shape(tmp_path):
    data = CIFAR10DataModule(
        str(write_cifar10(tmp_path / "cifar")), img_size=64, val_size=10, augment=True
    )
    data.setup("fit")
    image, _ = data.train_set[0]
    assert image.shape == (3, 64, 64) and data.test_set[0][0].shape == (3, 64, 64)


def test_missing_or_malformed_files_are_clear_errors(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"data.root .*nowhere does not exist; expected the layout"
    ):
        CIFAR10DataModule(str(tmp_path / "nowhere"))
    root = write_cifar10(tmp_path / "cifar")
    (root / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match=r"has no data_batch_3; expected the layout"):
        CIFAR10DataModule(str(root))
    root = write_cifar10(tmp_path / "broken")
    (root / "test_batch").write_bytes(b"not a pickle")
    data = CIFAR10DataModule(str(root), val_size=10)
    with pytest.raises(ValueError, match=r"test_batch is not a CIFAR-10 python batch"):
        data.setup("fit")
    with pytest.raises(ValueError, match=r"data.val_size must be in 1..49999"):
        CIFAR10DataModule(str(root), val_size=0)

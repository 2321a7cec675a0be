"""Your own images as a dataset: a folder of class folders made here with Pillow (drawn
shapes at random sizes and places, colour and grey, with broken files among them),
trained from the command line and from Python; class names kept in model files and
shown by predict, evaluate, show and the ONNX export; every kind of bad data answered."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnn_numpy import Net
from cnn_numpy.cli import main
from cnn_numpy.data import DataError, load_images, load_npz, save_npz
from cnn_numpy.data.folder import MAX_PIXELS, read_input, read_picture
from cnn_numpy.data.images import read_digit_image
from cnn_numpy.data.shapes import SHAPES, draw_shape
from cnn_numpy.models import build_model

Image = pytest.importorskip("PIL.Image", reason="Pillow is not installed")


def make_shapes(root: Path, per_class: int, seed: int = 0, broken: bool = True) -> Path:
    """Class folders of shapes, 30 to 60 pixels, a third of them grey, saved as PNG, JPEG,
    BMP or GIF; with broken: a file that only looks like an image, a truncated one, notes,
    a hidden file and a link that loops back to its folder."""
    rng = np.random.default_rng(seed)
    suffixes = (".png", ".png", ".jpg", ".bmp", ".gif")
    for kind in SHAPES:
        folder = root / kind
        folder.mkdir(parents=True)
        for i in range(per_class):
            image = draw_shape(kind, rng, int(rng.integers(30, 61)), colour=i % 3 != 0)
            suffix = suffixes[i % len(suffixes)]
            image.save(folder / f"{i:03d}{suffix}", quality=95) if suffix == ".jpg" \
                else image.save(folder / f"{i:03d}{suffix}")
    if broken:
        (root / "circle" / "not-really.png").write_text("hello")
        good = (root / "square" / "000.png").read_bytes()
        (root / "square" / "cut.png").write_bytes(good[: len(good) // 2])
        (root / "triangle" / "notes.txt").write_text("drawn by hand")
        (root / "triangle" / ".DS_Store").write_bytes(b"\0\0")
        os.symlink(root / "triangle", root / "triangle" / "loop")
    return root


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    return make_shapes(tmp_path_factory.mktemp("data") / "shapes", per_class=60)


def test_a_folder_loads_with_its_class_names_and_says_what_it_skipped(shapes):
    said = []
    data = load_images(shapes, size=(28, 28), log=said.append)
    assert data.class_names == SHAPES and data.num_classes == 3
    assert data.x_train.shape[1:] == (28, 28, 3) and data.x_train.dtype == np.float32
    assert 0 <= data.x_train.min() and data.x_train.max() <= 1
    assert len(data.x_train) + len(data.x_test) == 180  # the two broken files are left out
    assert np.bincount(data.y_test).tolist() == [12, 12, 12]  # a fifth of each class
    report = "\n".join(said)
    assert "Skipped 1 hidden file, 1 file that is not an image (e.g. notes.txt), 1 linked " \
           "folder(s), not followed." in report
    assert re.search(r"Could not read 2 image file\(s\), left out: not-really\.png: not an "
                     r"image Pillow can read; cut\.png: damaged or truncated", report)
    assert re.search(r"Images: 28 x 28, colour \(180 resized from other sizes; converted from "
                     r"[A-Z, ]*L[A-Z, ]*\)", report)
    grey = load_images(shapes, size=(16, 20), channels=1, log=lambda _: None)
    assert grey.x_train.shape[1:] == (16, 20)
    # the same seed, the same split; another seed, another
    again = load_images(shapes, log=lambda _: None)
    np.testing.assert_array_equal(again.x_test, data.x_test)
    other = load_images(shapes, seed=1, log=lambda _: None)
    assert not np.array_equal(other.y_test, data.y_test) or \
        not np.array_equal(other.x_test, data.x_test)


def test_a_class_folder_that_is_a_link_is_not_followed(tmp_path):
    root = make_shapes(tmp_path / "own", per_class=12, broken=False)
    other = make_shapes(tmp_path / "other", per_class=12, broken=False)
    os.symlink(other / "circle", root / "linked")  # would be a fourth class if followed
    said = []
    data = load_images(root, log=said.append)
    assert data.class_names == SHAPES and len(data.x_train) + len(data.x_test) == 36
    assert "Skipped 1 linked folder(s), not followed." in "\n".join(said)
    split = tmp_path / "split"  # train/ and test/, a test class folder that is a link
    (split / "test").mkdir(parents=True)
    os.rename(root, split / "train")
    os.symlink(other / "circle", split / "test" / "circle")
    said = []
    data = load_images(split, log=said.append)
    assert (len(data.x_train), len(data.x_test)) == (36, 0)  # its 12 images are not read
    assert "Skipped 2 linked folder(s), not followed." in "\n".join(said)
    only = tmp_path / "only-links"
    only.mkdir()
    os.symlink(other / "circle", only / "circle")
    with pytest.raises(DataError, match="no class folders; .*; 1 folder\\(s\\) there are links"):
        load_images(only, log=lambda _: None)


def test_the_command_line_trains_on_a_folder_and_names_the_classes(shapes, tmp_path, capsys):
    model = tmp_path / "shapes.npz"
    code = main(["train", "cnn", "--images", str(shapes), "--epochs", "25", "--no-progress",
                 "--save", str(model)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Training cnn on shapes (130 train / 14 validation / 36 test images" in out
    assert "shifts up to 2 px" in out
    error = float(re.search(r"Test set: CCE: [\d.]+  CE: ([\d.]+)", out).group(1))
    assert error < 0.4  # chance is 0.67: it learned
    net = Net.load(model)
    assert net.class_names == SHAPES and net.images_as == "resized"
    assert net.output_layer.num_neurons == 3  # the cnn's 10 outputs became 3
    picture = tmp_path / "t.png"
    draw_shape("triangle", np.random.default_rng(5), 50).save(picture)
    assert main(["predict", str(model), str(picture)]) == 0
    assert re.match(r".*t\.png: (circle|square|triangle) \(probability 0\.\d{3}; next: "
                    r"(circle|square|triangle) \(0\.\d{3}\), (circle|square|triangle)",
                    capsys.readouterr().out)
    assert main(["evaluate", str(model)]) == 0
    assert f"Evaluating on the shapes test set: 36 images, from {shapes}" in \
        capsys.readouterr().out


def test_from_python_fit_learns_and_keeps_the_class_names(shapes, tmp_path):
    data = load_images(shapes, log=lambda _: None)
    net = build_model("cnn", seed=0, optimizer="adam", classes=data.num_classes)
    history = net.fit(data.x_train, data.y_train, epochs=25, augment=2,
                      validation_data=(data.x_test, data.y_test), progress=False,
                      class_names=data.class_names)
    assert history.class_names == SHAPES
    assert history["val_ce"][-1] < 0.4
    net.save(tmp_path / "m.npz")
    assert Net.load(tmp_path / "m.npz").class_names == SHAPES
    picture = tmp_path / "t.png"
    draw_shape("square", np.random.default_rng(5), 50).save(picture)
    assert main(["predict", str(tmp_path / "m.npz"), str(picture)]) == 0  # a colour input
    grey = build_model("flat", seed=0, optimizer="adam", classes=data.num_classes)
    grey.fit(data.x_train.mean(axis=3), data.y_train, progress=False, images_as="resized")
    grey.save(tmp_path / "grey.npz")
    assert Net.load(tmp_path / "grey.npz").images_as == "resized"


def test_a_picture_is_read_the_way_its_model_was_trained(tmp_path):
    picture = tmp_path / "t.png"
    draw_shape("triangle", np.random.default_rng(3), 50).save(picture)
    digit, resized = read_digit_image(picture), read_picture(picture, (28, 28), 1)
    assert not np.array_equal(digit, resized)  # the ink centred, against the whole picture
    np.testing.assert_array_equal(read_input(picture, (28, 28, 1), "digits"), digit)
    np.testing.assert_array_equal(read_input(picture, (28, 28), "resized"), resized)
    # MNIST's way gives 28 x 28 grey only: any other input is read resized
    np.testing.assert_array_equal(read_input(picture, (20, 24, 3), "digits"),
                                  read_picture(picture, (20, 24), 3))
    with pytest.raises(DataError, match=r"is a folder, not an image file; name the pictures"):
        read_input(tmp_path, (28, 28), "digits")


def test_train_and_test_folders_are_the_split(tmp_path):
    make_shapes(tmp_path / "set" / "train", per_class=5, broken=False)
    make_shapes(tmp_path / "set" / "test", per_class=3, seed=1, broken=False)
    said = []
    data = load_images(tmp_path / "set", log=said.append)
    assert (len(data.x_train), len(data.x_test)) == (15, 9)
    assert "Warning: few images in classes circle (8 images), square (8 images), triangle " \
        "(8 images)" in "\n".join(said)
    (tmp_path / "set" / "test" / "hexagon").mkdir()
    with pytest.raises(DataError, match="class folder 'hexagon' is not in .*train"):
        load_images(tmp_path / "set", log=lambda _: None)


def bomb(path: Path) -> None:
    """A small PNG file that decodes to more pixels than MAX_PIXELS."""
    side = int(np.sqrt(MAX_PIXELS)) + 100
    Image.new("1", (side, side)).save(path)


def an_empty_class(root: Path) -> Path:
    (root / "cls").mkdir()
    return root


def no_class_folders(root: Path) -> Path:
    draw_shape("circle", np.random.default_rng(0), 30).save(root / "a.png")
    return root


def one_class(root: Path) -> Path:
    make_shapes(root, 3, broken=False)
    for kind in SHAPES[1:]:
        for file in (root / kind).iterdir():
            file.unlink()
        (root / kind).rmdir()
    return root


def a_class_unreadable(root: Path) -> Path:
    (root / "a").mkdir()
    (root / "b").mkdir()
    (root / "a" / "x.png").write_text("no")
    draw_shape("circle", np.random.default_rng(0), 30).save(root / "b" / "y.png")
    return root


def only_bombs(root: Path) -> Path:
    for name in ("a", "b"):
        (root / name).mkdir()
        bomb(root / name / "big.png")
    return root


BAD = {
    "missing": (lambda root: root / "nowhere", "no such folder"),
    "empty": (an_empty_class, "no image files"),
    "no classes": (no_class_folders, "no class folders"),
    "one class": (one_class, "only one class"),
    "a class unreadable": (a_class_unreadable, "class 'a' has no readable training images"),
    "only bombs": (only_bombs, "possible decompression bomb"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_folders_are_one_line_and_exit_2(case, tmp_path, capsys):
    make, message = BAD[case]
    root = tmp_path / "data"
    root.mkdir()
    folder = make(root)
    with pytest.raises(DataError, match=message):
        load_images(folder, log=lambda _: None)
    assert main(["train", "cnn", "--images", str(folder), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("cnn-numpy: error: ") and message in err
    assert not list(Path.cwd().glob("*.npz.*.tmp"))  # nothing half written


def test_a_bomb_among_good_images_is_left_out_and_named(tmp_path):
    make_shapes(tmp_path / "s", per_class=5, broken=False)
    bomb(tmp_path / "s" / "circle" / "huge.png")
    said = []
    data = load_images(tmp_path / "s", log=said.append)
    assert len(data.x_train) + len(data.x_test) == 15
    assert "huge.png: " in "\n".join(said) and "decompression bomb" in "\n".join(said)


def test_npz_datasets_round_trip_and_bad_ones_are_refused(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x, y = rng.random((40, 12, 12)).astype(np.float32), np.arange(40) % 4
    save_npz(tmp_path / "d.npz", x, y, class_names=["a", "b", "c", "d"])
    data = load_npz(tmp_path / "d.npz", test_share=0.25)
    assert data.class_names == ("a", "b", "c", "d") and len(data.x_test) == 8
    np.testing.assert_allclose(np.sort(np.concatenate([data.x_train, data.x_test]).ravel()),
                               np.sort(np.round(x * 255).ravel() / 255), atol=1e-6)
    for arrays, message in (({"x": x}, "no 'y' array"),
                            ({"x": x, "y": y.astype(float)}, "y must be integer labels"),
                            ({"x": x * 3, "y": y}, "x must be uint8 0..255 or floats in"),
                            ({"x": x, "y": y[:5]}, "x has 40 images but y has 5 labels"),
                            ({"x": x, "y": y, "class_names": np.array(["a"])},
                             "class_names must be 4 or more strings")):
        np.savez(tmp_path / "bad.npz", **arrays)
        with pytest.raises(DataError, match=message):
            load_npz(tmp_path / "bad.npz")
    np.savez(tmp_path / "objects.npz", x=np.array([object()], dtype=object), y=y)
    with pytest.raises(DataError, match="not a readable .npz file"):
        load_npz(tmp_path / "objects.npz")  # pickled objects are never loaded
    assert main(["train", "flat", "--images", str(tmp_path / "d.npz"), "--epochs", "1",
                 "--no-progress"]) == 0
    assert "Training flat on d (" in capsys.readouterr().out


def test_options_that_name_other_data_are_refused_with_images(shapes, capsys):
    for args, message in ((["--dataset", "mnist"], "leave out --dataset"),
                          (["--split", "0.5"], "leave out --split")):
        assert main(["train", "cnn", "--images", str(shapes), *args]) == 2
        assert message in capsys.readouterr().err
    assert main(["train", "cnn", "--channels", "1"]) == 2
    assert "go with --images DIR" in capsys.readouterr().err
    assert main(["train", "--layers", "FlatLayer(), FCLayer_Softmax(10)", "--images",
                 str(shapes), "--no-progress"]) == 2
    assert "3 class names for a last layer of 10 outputs; end the network with " \
           "FCLayer_Softmax(3)" in capsys.readouterr().err


def test_class_names_reach_the_onnx_file_and_the_confusion_matrix(shapes, tmp_path):
    onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed")
    data = load_images(shapes, log=lambda _: None)
    net = build_model("flat", seed=0, classes=3)
    net.fit(data.x_train, data.y_train, epochs=1, progress=False, class_names=data.class_names)
    from cnn_numpy.interop import to_onnx

    to_onnx(net, tmp_path / "m.onnx")
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert json.loads(props["class_names"]) == list(SHAPES)


def test_fashion_mnist_has_its_ten_names():
    from cnn_numpy.data import load_dataset
    from cnn_numpy.data.datasets import CLASS_NAMES

    assert CLASS_NAMES["fashion-mnist"][7] == "Sneaker"
    try:
        data = load_dataset("fashion-mnist", download=False, progress=False)
    except DataError:
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    assert data.class_names == CLASS_NAMES["fashion-mnist"]


def test_loading_skips_nothing_silently_in_a_subprocess(shapes):
    """The command line's report goes to stdout, one line each, before training."""
    done = subprocess.run([sys.executable, "-m", "cnn_numpy", "train", "flat", "--images",
                           str(shapes), "--epochs", "1", "--no-progress"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("Skipped ") and lines[1].startswith("Could not read 2")

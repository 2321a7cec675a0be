"""What a newcomer ran into in their first hour (issue 13), each checked: pictures in any
colours and with transparency, options that are used or refused, honest resume messages,
warnings for exploding losses and raw pixels, one-line network errors, useful --help."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnn_numpy import FCLayer_Softmax, FlatLayer, Net
from cnn_numpy.cli import main, make_parser
from cnn_numpy.data import DataError, load_dataset
from cnn_numpy.data.download import download_file
from cnn_numpy.training import MAX_EPOCHS, Progress, Settings, load_checkpoint, save_checkpoint

Image = pytest.importorskip("PIL.Image", reason="Pillow is not installed")
ImageDraw = pytest.importorskip("PIL.ImageDraw", reason="Pillow is not installed")
SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
QUICK = ["--dataset", "mnist-sample", "--no-progress", "--limit", "640", "--test-limit", "200",
         "--validation", "0"]


def one(drawing, mode: str, size=(120, 120), background=(255, 255, 255, 0)):
    """A picture of a "1" (a vertical bar) in `mode`, drawn by `drawing`."""
    image = Image.new("RGBA", size, background)
    ImageDraw.Draw(image).line([(60, 15), (60, 105)], fill=drawing, width=10)
    return image if mode == "RGBA" else image.convert(mode)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparent_pictures_read_the_ink(model, tmp_path, capsys, mode):
    path = tmp_path / f"one-{mode}.png"
    one((0, 0, 0, 255), mode).save(path)
    assert main(["predict", str(model), str(path)]) == 0
    assert re.search(r": 1 \(probability 0\.[5-9]|: 1 \(probability 1\.000",
                     capsys.readouterr().out)


def test_any_colours_blank_pictures_top_three_and_show(model, tmp_path, capsys):
    red_on_blue = Image.new("RGB", (120, 120), (0, 0, 255))
    ImageDraw.Draw(red_on_blue).line([(30, 25), (90, 25), (55, 100)], fill=(255, 0, 0),
                                     width=10)
    red_on_blue.save(tmp_path / "seven.png")
    Image.new("RGB", (40, 40), (200, 200, 200)).save(tmp_path / "blank.png")
    show = tmp_path / "seen.png"
    assert main(["predict", str(model), str(tmp_path / "seven.png"), str(tmp_path / "blank.png"),
                 "--show", str(show)]) == 0
    seven, blank, saved = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r".*seven\.png: 7 \(probability (0\.9\d\d|1\.000); next: \d \(0\.\d{3}\), "
                        r"\d \(0\.\d{3}\)\)", seven)
    assert blank.endswith("blank.png: no ink found (the picture is one flat colour); "
                          "not classified")
    assert saved == f"Saved the 2 image(s) the network saw to {show}"
    with Image.open(show) as picture:
        assert picture.size == ((28 * 2 + 2) * 8, 28 * 8)
        pixels = np.asarray(picture)
    assert pixels[:, : 28 * 8].max() == 255 and pixels[:, 30 * 8 :].max() == 0  # ink, blank


def test_data_dir_is_used_or_refused(model, capsys):
    assert main(["train", "cnn", "--dataset", "mnist-sample", "--data-dir", "/nonexistent"]) == 2
    assert "--data-dir /nonexistent does not apply to mnist-sample" in capsys.readouterr().err
    assert main(["evaluate", str(model), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Evaluating on the mnist-sample test set: 1,000 images, from bundled "
                          "sample\n")
    if not (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"full MNIST is not in {SHARED_MNIST}")
    assert main(["evaluate", str(model), "--data-dir", str(SHARED_MNIST), "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"Evaluating on the mnist test set: 10,000 images, from "
                                   f"{SHARED_MNIST}\n")
    # the sample is MNIST's test set: a sample-trained model is scored on its training images
    assert captured.err == (f"cnn-numpy: warning: {model} was trained on the bundled sample, "
                            "which is MNIST's test set: these figures are on its own training "
                            "images\n")


def test_every_number_has_a_range_and_the_largest_history_loads(tmp_path, capsys):
    for option, value in (("--epochs", str(MAX_EPOCHS + 1)), ("--batch-size", "100000"),
                          ("--learning-rate", "1000"), ("--limit", "0"), ("--seed", "-1"),
                          ("--weight-decay", "2")):
        assert main(["train", "cnn", option, value]) == 2
        assert f"argument {option}: {value} is out of range" in capsys.readouterr().err
    net = Net([FlatLayer(), FCLayer_Softmax(10)], seed=0)
    net.build((28, 28))
    entry = {"epoch": 1, "train_cce": 1 / 3, "train_ce": 1 / 7, "test_cce": 2 / 3,
             "test_ce": 1 / 9, "images_per_s": 12345.678901234, "learning_rate": 1 / 11}
    history = [dict(entry, epoch=e) for e in range(1, MAX_EPOCHS + 1)]
    settings = Settings(model="flat", epochs=MAX_EPOCHS, batch_size=32, learning_rate=0.1,
                        optimizer="sgd", seed=0)
    save_checkpoint(tmp_path / "big.npz", net, settings,
                    Progress(epoch=MAX_EPOCHS, history=history), "x")
    _, _, progress, _ = load_checkpoint(tmp_path / "big.npz")
    assert len(progress.history) == MAX_EPOCHS


def test_resume_of_a_run_stopped_within_an_epoch_must_finish_that_epoch(tmp_path, capsys):
    """Its weights are past the last finished epoch: that epoch's figures would not
    describe them, so "nothing to do" is not an answer."""
    ck = tmp_path / "ck.npz"
    assert main(["train", "cnn", *QUICK, "--epochs", "2", "--save", str(ck)]) == 0
    net, settings, progress, fingerprint = load_checkpoint(ck)
    progress.batch = 3  # as a Ctrl-C in epoch 3 leaves it
    save_checkpoint(ck, net, settings, progress, fingerprint)
    capsys.readouterr()
    assert main(["train", "--resume", str(ck), "--epochs", "2"]) == 2
    assert capsys.readouterr().err == (f"cnn-numpy: error: {ck} stopped partway through epoch "
                                       "3; resume with --epochs 3 or more\n")


def test_resume_says_what_it_does(tmp_path, capsys):
    ck = tmp_path / "ck.npz"
    assert main(["train", "cnn", *QUICK, "--epochs", "2", "--save", str(ck)]) == 0
    last = capsys.readouterr().out.splitlines()[-2]
    assert main(["train", "--resume", str(ck)]) == 0  # a finished run: nothing to do
    assert capsys.readouterr().out.splitlines() == [
        f"{ck} has already trained 2 epochs; nothing to do (ask for more with --epochs N)",
        last]
    assert main(["train", "--resume", str(ck), "--epochs", "1"]) == 2
    assert "--epochs 1 is below the 2 epochs" in capsys.readouterr().err
    # engines compute the same numbers, and a lower rate fine-tunes: both allowed
    assert main(["train", "--resume", str(ck), "--epochs", "3", "--engine", "stride_groups",
                 "--learning-rate", "0.0001", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "engine stride_groups, adam lr 0.0001" in out
    _, settings, progress, _ = load_checkpoint(ck)
    assert settings.learning_rate == 0.0001 and progress.history[-1]["learning_rate"] < 0.0001
    assert main(["train", "--resume", str(ck), "--epochs", "4", "--learning-rate", "0.1"]) == 2
    assert "higher than the checkpoint's 0.0001" in capsys.readouterr().err
    assert main(["train", "--resume", str(ck), "--batch-size", "8"]) == 2


def test_naive_engine_estimates_its_time_first(capsys):
    assert main(["train", "cnn", "--engine", "naive", "--dataset", "mnist-sample", "--limit",
                 "4", "--test-limit", "2", "--epochs", "1", "--no-progress"]) == 0
    first = next(line for line in capsys.readouterr().out.splitlines()
                 if line.startswith("The naive engine"))
    said = re.fullmatch(r"The naive engine takes about (\d+\.\d\d) s per training image here: "
                        r"an epoch of these 4 images would take about (\d+) seconds?\. Use "
                        r"--limit N \(and --test-limit N\) to train on fewer, or leave out "
                        r"--engine naive\.", first)
    assert said and int(said[2]) == max(1, round(4 * float(said[1]))), first


def test_raw_pixels_warn_once():
    net = Net([FlatLayer(), FCLayer_Softmax(10)], seed=0)
    X = np.random.default_rng(0).integers(0, 256, (4, 28, 28)).astype(np.float32)
    with pytest.warns(UserWarning, match=r"values up to 25\d, like raw 0..255 pixels"):
        net.predict(X)
    net.predict(X)  # once is enough (pytest turns a second warning into an error)
    net.predict(X / 255)


def test_no_network_is_one_short_line(tmp_path):
    """A host that cannot be resolved (the .invalid domain never resolves) stands for no
    network at all."""
    with pytest.raises(DataError) as info:
        download_file("train-images-idx3-ubyte.gz", tmp_path, ["http://mirror.invalid/mnist/"],
                      "0" * 32, progress=False)
    message = str(info.value)
    assert message.startswith("could not download train-images-idx3-ubyte.gz: no network "
                              "(cannot resolve mirror.invalid)")
    assert "\n" not in message and len(message) < 300
    code = ("import sys\nfrom cnn_numpy.cli import main\n"
            "sys.exit(main(['train', 'cnn', '--dataset', 'mnist', '--data-dir', sys.argv[1]]))")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "empty")],
                            capture_output=True, text=True,
                            env={"CNN_NUMPY_MIRRORS": "http://mirror.invalid/",
                                 "XDG_CACHE_HOME": str(tmp_path / "cache"),
                                 "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "no network (cannot resolve mirror.invalid)" in result.stderr
    # short, apart from the two folders it names (their length is the test's temp folder's)
    assert "--dataset mnist-sample" in result.stderr
    assert len(result.stderr.replace(str(tmp_path), "T")) < 500


def test_every_option_is_described_with_its_default():
    parser = make_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name in ("train", "evaluate", "predict", "export", "serve"):
        for action in commands[name]._actions:
            if action.dest == "help":
                continue
            assert action.help, f"{name} {action.option_strings or action.dest}"
    train_help = commands["train"].format_help()
    for option in ("--engine", "--epochs", "--batch-size", "--learning-rate", "--optimizer",
                   "--schedule", "--augment"):
        text = train_help.split(option, 2)[-1].split("\n  -")[0]
        assert "default" in text, option
    assert "seed of the --split shuffle" in commands["evaluate"].format_help()


def test_sample_dataset_is_the_official_test_set():
    sample = load_dataset("mnist-sample", progress=False)
    assert len(sample.x_train) + len(sample.x_test) == 10_000


def test_explain_a_filter_wider_than_the_input_mentions_padding(capsys):
    assert main(["explain", "stride-groups", "--filter", "5", "--input", "4"]) == 2
    err = capsys.readouterr().err
    assert "fits only with zero padding" in err and "--input 6" in err


def test_show_filters_of_a_chosen_layer_and_channel(model, tmp_path, capsys):
    assert main(["show", str(model), "--filters", str(tmp_path / "f.png"), "--layer", "1"]) == 2
    assert "--layer 1 is not a convolution layer" in capsys.readouterr().err
    assert main(["show", str(model), "--filters", str(tmp_path / "f.png"), "--channel", "1"]) == 2
    assert "--channel 1: layer 0 has 1 input channel(s), 0..0" in capsys.readouterr().err
    assert main(["show", str(model), "--filters", str(tmp_path / "f.png"), "--layer", "0",
                 "--channel", "0"]) == 0
    assert (tmp_path / "f.png").stat().st_size > 5_000
    assert main(["show", str(model), "--confusion", str(tmp_path / "c.png"), "--layer", "0"]) == 2
    assert "--layer and --channel choose what --filters draws" in capsys.readouterr().err
    assert not (tmp_path / "c.png").exists()


# -- issue 28's "new user's list" ------------------------------------------------------------

def test_saving_where_no_folder_is_names_the_path_given(tmp_path):
    net = Net([FlatLayer(), FCLayer_Softmax(10)], seed=0)
    net.build((4, 4))
    (tmp_path / "plain").write_text("a file, not a folder")
    (tmp_path / "folder").mkdir()
    for path, error, reason in (
            (tmp_path / "nodir" / "m.npz", FileNotFoundError,
             f"the folder {tmp_path / 'nodir'} does not exist; create it first"),
            (tmp_path / "plain" / "m.npz", NotADirectoryError,
             f"{tmp_path / 'plain'} is not a folder"),
            (tmp_path / "folder", IsADirectoryError, "is a folder; give a file name")):
        with pytest.raises(error) as info:
            net.save(path)
        assert info.value.filename == str(path) and info.value.strerror == reason
        assert ".tmp" not in str(info.value)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["folder", "plain"]  # no temp file


@pytest.mark.parametrize("suffix, pillow_format", [(".png", "PNG"), (".jpg", "JPEG"),
                                                   (".JPEG", "JPEG"), (".pdf", None),
                                                   (".svg", None)])
def test_a_picture_is_written_in_the_format_its_suffix_names(tmp_path, suffix, pillow_format):
    from cnn_numpy.visual.plots import plot_confusion

    path = tmp_path / f"confusion{suffix}"
    plot_confusion(np.array([0, 1, 2, 2]), np.array([0, 1, 1, 2]), path)
    if pillow_format is not None:
        with Image.open(path) as picture:
            assert picture.format == pillow_format and min(picture.size) > 300
    elif suffix == ".pdf":
        assert path.read_bytes().startswith(b"%PDF-")
    else:
        text = path.read_text()
        assert text.startswith("<?xml") and "<svg" in text and "accuracy 75.00%" in text


def test_an_unknown_picture_suffix_is_refused_before_any_work(tmp_path):
    from cnn_numpy.data.images import save_digit_strip
    from cnn_numpy.files import PIXEL_FORMATS, check_picture
    from cnn_numpy.visual.plots import plot_confusion, plot_history

    supported = "use .png, .jpg, .jpeg, .pdf, .svg"
    for name, said in (("c.gif", "the suffix .gif"), ("c", "no suffix"), ("c.png.txt",
                                                                          "the suffix .txt")):
        with pytest.raises(ValueError, match=rf"picture {re.escape(str(tmp_path / name))}: a "
                                             rf"picture's format follows its suffix, and {said} is "
                                             rf"not one written here; {supported}$"):
            plot_confusion(np.array([0, 1]), np.array([0, 1]), tmp_path / name)
    with pytest.raises(ValueError, match="the suffix .gif"):  # before "history is empty"
        plot_history([], tmp_path / "h.gif")
    with pytest.raises(ValueError, match=r"the suffix \.svg is not one written here; use \.png, "
                                         r"\.jpg, \.jpeg$"):
        save_digit_strip(np.zeros((1, 28, 28), np.float32), tmp_path / "seen.svg")
    assert not any(tmp_path.iterdir())
    with pytest.raises(ValueError, match=r"^--confusion c\.gif: a picture's format follows"):
        check_picture("c.gif", "--confusion")
    with pytest.raises(ValueError, match=r"^--show x\.pdf: .*; use \.png, \.jpg, \.jpeg$"):
        check_picture("x.pdf", "--show", PIXEL_FORMATS)
    with pytest.raises(ValueError, match=r"the folder .*nodir does not exist"):
        check_picture(tmp_path / "nodir" / "c.png", "--confusion")
    assert check_picture(tmp_path / "c.JPG", "--confusion") == tmp_path / "c.JPG"
    save_digit_strip(np.zeros((2, 28, 28), np.float32), tmp_path / "seen.jpg")
    with Image.open(tmp_path / "seen.jpg") as picture:
        assert picture.format == "JPEG" and picture.size == (58 * 8, 28 * 8)


def test_show_and_predict_write_the_suffixs_format(model, tmp_path, capsys):
    confusion = tmp_path / "c.jpg"
    assert main(["show", str(model), "--confusion", str(confusion)]) == 0
    with Image.open(confusion) as picture:
        assert picture.format == "JPEG"
    one((0, 0, 0, 255), "RGB").save(tmp_path / "one.png")
    assert main(["predict", str(model), str(tmp_path / "one.png"), "--show",
                 str(tmp_path / "seen.jpeg")]) == 0
    with Image.open(tmp_path / "seen.jpeg") as picture:
        assert picture.format == "JPEG" and picture.size == (28 * 8, 28 * 8)
    capsys.readouterr()
    assert main(["show", str(model), "--confusion", str(tmp_path / "c.gif")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the suffix .gif is not one written here; use .png" in err
    assert not (tmp_path / "c.gif").exists()


@pytest.mark.parametrize("engine", [["--engine", "im2col"], ["--engine=naive"],
                                    ["--eng", "im2col"]])
def test_mnist_py_with_an_engine_says_nothing_of_stride_groups(engine, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "mnist_script", Path(__file__).resolve().parents[1] / "mnist.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(["cnn", *engine, "--dataset", "mnist-sample", "--limit", "8",
                        "--test-limit", "4", "--epochs", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    name = engine[-1].split("=")[-1]
    assert "stride-group" not in out and "stride_groups" not in out
    assert f"engine {name}" in out


def small_cnn() -> Net:
    from cnn_numpy import ConvLayer_ReLU, PoolLayer_Max

    return Net([ConvLayer_ReLU(4, 3), PoolLayer_Max(2), FlatLayer(), FCLayer_Softmax(10)], seed=0)


@pytest.mark.parametrize("y, says, convert, labels", [
    (np.array([0.0, 9.0, 3.0]), r"got dtype float64 \(whole values 0\.0\.\.9\.0\); convert them "
                                r"with y\.astype\(int\)", lambda y: y.astype(int), [0, 9, 3]),
    (np.array([True, False, True]), r"got dtype bool; for two classes convert them with "
                                    r"y\.astype\(int\)", lambda y: y.astype(int), [1, 0, 1]),
    (np.array(["cat", "dog", "cat"]), r"got dtype <U3 \(e\.g\. \['cat', 'dog', 'cat'\]\); map "
                                      r"class names to integers with `names, y = np\.unique\(y, "
                                      r"return_inverse=True\)`",
     lambda y: np.unique(y, return_inverse=True)[1], [0, 1, 0]),
    (np.array([b"3", b"1", b"3"]), r"got dtype \|S1 .*np\.unique",
     lambda y: np.unique(y, return_inverse=True)[1], [1, 0, 1]),
    (np.array([7, 1, 7], dtype=object), r"got dtype object \(e\.g\. \[7, 1, 7\]\); convert whole "
                                        r"numbers with y\.astype\(int\), or map class names",
     lambda y: y.astype(int), [7, 1, 7]),
    (np.array([0.5, 1.0, 2.0]), r"got dtype float64 with fractional values \(e\.g\. 0\.5\)",
     None, None),
])
def test_labels_that_are_not_integers_say_what_to_do(y, says, convert, labels):
    net = Net([FlatLayer(), FCLayer_Softmax(10)], seed=0)
    X = np.random.default_rng(0).random((3, 4, 4), dtype=np.float32)
    for step in (lambda: net.train(X, y, 0.1), lambda: net.evaluate(X, y)):
        with pytest.raises(ValueError, match=r"^Net: Y must be integer labels 0\.\.9 \(n,\) or "
                                             r"one-hot rows \(n, 10\), " + says):
            step()
    assert not net.layers[-1].built  # refused before any weight existed
    if convert is not None:  # the advice works: the same labels as integers
        assert convert(y).tolist() == labels
        A, cce, _ = net.evaluate(X, convert(y))
        assert cce == pytest.approx(-np.log(A[np.arange(3), labels]).mean(), rel=1e-5)


def test_one_hot_rows_of_strings_are_refused_by_name():
    net = Net([FlatLayer(), FCLayer_Softmax(2)], seed=0)
    with pytest.raises(ValueError, match=r"one-hot Y must hold numbers .*got dtype <U1"):
        net.evaluate(np.zeros((2, 3, 3), np.float32), np.array([["1", "0"], ["0", "1"]]))


def test_channels_first_and_a_missing_batch_axis_say_the_fix():
    X = np.random.default_rng(1).random((5, 28, 28, 1), dtype=np.float32)
    fresh = small_cnn()
    with pytest.raises(ValueError, match=r"^Net: X has shape \(5, 1, 28, 28\), which looks "
                                         r"channels-first .* \(n, height, width, channels\): "
                                         r"reorder the axes with x\.transpose\(0, 2, 3, 1\)"):
        fresh.predict(X.transpose(0, 3, 1, 2))
    with pytest.raises(ValueError, match=r"; if X is one image of shape \(28, 28, 1\), give a "
                                         r"batch of one with x\[None\]"):
        fresh.predict(X[0])
    with pytest.raises(ValueError, match=r"if X is one image of shape \(28, 28\), give a batch"):
        fresh.predict(X[0, :, :, 0])
    with pytest.raises(ValueError) as flattened:  # a batch of flattened images is not one image
        fresh.predict(X.reshape(5, 784))
    assert "x[None]" not in str(flattened.value)
    assert not fresh.layers[0].built
    A = fresh.predict(X)  # builds the net for (28, 28, 1)
    takes = r"the net takes X as \(n, height, width, channels\) = \(n, 28, 28, 1\)"
    for wrong, fix in ((X.transpose(0, 3, 1, 2), r"reorder the axes with x\.transpose\(0, 2, 3, "
                                                 r"1\)"),
                       (X[0], r"give a batch of one with x\[None\]"),
                       (X[0, :, :, 0], r"give a batch of one with x\[None\]")):
        with pytest.raises(ValueError, match=rf"^Net: X has shape {re.escape(str(wrong.shape))}"
                                             rf".*{takes}: {fix}$"):
            fresh.predict(wrong)
    # each fix gives what the right layout gives (A came from the first pass, which runs the
    # reference and builds the weights; later passes run the fast path, equal to rounding)
    np.testing.assert_array_equal(fresh.predict(X.transpose(0, 3, 1, 2).transpose(0, 2, 3, 1)),
                                  fresh.predict(X))
    np.testing.assert_allclose(fresh.predict(X), A, rtol=1e-5)
    np.testing.assert_allclose(fresh.predict(X[0][None]), A[:1], rtol=1e-5)  # a batch of 1
    np.testing.assert_allclose(fresh.predict(X[0, :, :, 0][None]), A[:1], rtol=1e-5)
    with pytest.raises(ValueError, match=r"built for 28 x 28 x 1 images .*got 28 x 14 x 1"):
        fresh.predict(X[:, :, :14])  # other shapes keep their message
    rgb = small_cnn()
    rgb.build((8, 8, 3))
    image = np.random.default_rng(2).random((3, 8, 8), dtype=np.float32)  # channels-first
    with pytest.raises(ValueError, match=r"one image, channels-first, without the batch axis; "
                                         r".* = \(n, 8, 8, 3\): use "
                                         r"x\.transpose\(1, 2, 0\)\[None\]"):
        rgb.predict(image)
    assert rgb.predict(image.transpose(1, 2, 0)[None]).shape == (1, 10)


def test_a_net_built_for_height_by_width_takes_its_images():
    """build((28, 28)) then images (n, 28, 28): they were refused as 28 x 28 x 1 before."""
    net = Net([FlatLayer(), FCLayer_Softmax(10)], seed=0)
    net.build((28, 28))
    X = np.random.default_rng(3).random((2, 28, 28), dtype=np.float32)
    W = net.layers[1].W.astype(np.float64)  # (10, 784 + 1): the last column is the bias
    Z = X.reshape(2, -1) @ W[:, :-1].T + W[:, -1]
    P = np.exp(Z - Z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(net.predict(X), P / P.sum(axis=1, keepdims=True), rtol=1e-5)


def test_results_print_short(tmp_path):
    net = Net([FlatLayer(), FCLayer_Softmax(10)], seed=0)
    X = np.random.default_rng(4).random((1000, 4, 4), dtype=np.float32)
    y = np.arange(1000) % 10
    trained = net.train(X[:32], y[:32], 0.1)
    assert repr(trained) == (f"TrainResult(layers=<2 layers>, cce={trained.cce:.4f}, "
                             f"ce={trained.ce:.4f})")
    result = net.evaluate(X, y)
    A, cce, ce = result  # still unpackable
    assert A.shape == (1000, 10) and cce == result.cce and ce == result.ce
    assert repr(result) == str(result) == (f"EvalResult(A=<(1000, 10) float32>, cce={cce:.4f}, "
                                           f"ce={ce:.4f})")
    assert 0.8 < ce <= 1 and abs(cce - np.log(10)) < 0.5

"""The command line end to end on the bundled MNIST sample: train, evaluate, predict,
explain, show, errors, resume, Ctrl-C and SIGKILL."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cnn_numpy import Net
from cnn_numpy.cli import main
from cnn_numpy.data import load_dataset
from cnn_numpy.training import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
SUMMARY = re.compile(r"^Test set: CCE: \d+\.\d{4}  CE: \d\.\d{4}$", re.M)
QUICK = ["--dataset", "mnist-sample", "--no-progress", "--limit", "640", "--test-limit", "200",
         "--validation", "0"]


def run(*args: str, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """`cnn-numpy ARGS` in a fresh interpreter (stdin closed, like CI)."""
    return subprocess.run([sys.executable, "-m", "cnn_numpy", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=kwargs.pop("cwd", ROOT),
                          stdin=subprocess.DEVNULL, **kwargs)


def summary(text: str) -> str:
    lines = SUMMARY.findall(text)
    assert len(lines) == 1, text
    return lines[0]


def test_train_prints_epochs_and_the_spec_summary_line(capsys, tmp_path):
    code = main(["train", "cnn", *QUICK, "--epochs", "2", "--plot", str(tmp_path / "h.png")])
    out = capsys.readouterr().out
    assert code == 0
    assert len(re.findall(r"^Epoch \d/2  train CCE: ", out, re.M)) == 2
    line = summary(out)
    ce = float(line.split("CE: ")[-1])
    assert ce < 0.3  # 640 images, 2 epochs: far better than chance (0.9)
    assert (tmp_path / "h.png").stat().st_size > 10_000


def test_flat_model_and_options(capsys):
    code = main(["train", "flat", *QUICK, "--epochs", "3", "--optimizer", "sgd",
                 "--learning-rate", "0.1", "--batch-size", "16", "--seed", "3"])
    out = capsys.readouterr().out
    assert code == 0 and "Training flat on mnist-sample (640 train / 200 test" in out
    assert float(summary(out).split("CE: ")[-1]) < 0.35


def test_deep_model_with_the_new_options(capsys, tmp_path):
    """deep trains with its own defaults; schedule, weight decay and augmentation are
    options; evaluate on the saved file repeats the last epoch's test figures exactly
    (BatchNorm's running statistics are in the file)."""
    path = tmp_path / "deep.npz"
    assert main(["train", "deep", *QUICK, "--epochs", "2", "--save", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Training deep on mnist-sample (640 train / 200 test images" in out
    assert "adam lr 0.002 (cosine), batch 64, shifts up to 1 px, epochs 1..2" in out
    trained = summary(out)
    assert main(["evaluate", str(path), "--no-progress"]) == 0
    assert summary(capsys.readouterr().out) == trained  # same weights, statistics, images
    net = Net.load(path)
    data = load_dataset("mnist-sample", progress=False)
    _, cce, ce = net.evaluate(data.x_test[:200], data.y_test[:200])
    assert trained == f"Test set: CCE: {cce:.4f}  CE: {ce:.4f}"
    assert main(["train", "flat", *QUICK, "--epochs", "1", "--schedule", "step",
                 "--weight-decay", "0.001", "--augment", "1", "--save", str(path)]) == 0
    out = capsys.readouterr().out
    assert "(step), batch 32, weight decay 0.001, shifts up to 1 px" in out
    _, settings, _, _ = load_checkpoint(path)
    assert (settings.schedule, settings.weight_decay, settings.augment) == ("step", 0.001, 1)
    assert Net.load(path).weight_decay == 0.001
    assert main(["train", "--resume", str(path), "--schedule", "cosine"]) == 2
    assert "--schedule cosine differs from the checkpoint's step" in capsys.readouterr().err


def test_evaluate_repeats_the_training_result(model, capsys):
    assert main(["evaluate", str(model), "--no-progress"]) == 0
    line = summary(capsys.readouterr().out)
    net = Net.load(model)
    data = load_dataset("mnist-sample", progress=False)
    _, cce, ce = net.evaluate(data.x_test, data.y_test)
    assert line == f"Test set: CCE: {cce:.4f}  CE: {ce:.4f}"
    assert ce < 0.06


def test_predict_reads_user_pictures(model, tmp_path, capsys):
    """Dark digits on a light, larger canvas (as people draw them) become MNIST-style."""
    from PIL import Image

    data = load_dataset("mnist-sample", progress=False)
    paths, labels = [], []
    for i in range(6):
        img = Image.fromarray(((1 - data.x_test[i]) * 255).astype(np.uint8))
        path = tmp_path / (f"digit{i}.png" if i % 2 else f"digit{i}.jpg")
        img.resize((140, 140)).convert("RGB").save(path)
        paths.append(str(path))
        labels.append(int(data.y_test[i]))
    assert main(["predict", str(model), *paths]) == 0
    out = capsys.readouterr().out.splitlines()
    predicted = [int(re.search(r": (\d) \(probability (0\.\d+|1\.000); next: \d \(0\.\d{3}\), "
                               r"\d \(0\.\d{3}\)\)$", line).group(1)) for line in out]
    assert sum(p == t for p, t in zip(predicted, labels, strict=True)) >= 5


def test_predict_reports_every_bad_file_and_predicts_the_good_ones(model, tmp_path, capsys):
    from PIL import Image

    data = load_dataset("mnist-sample", progress=False)
    good = tmp_path / "good.png"
    Image.fromarray(((1 - data.x_test[0]) * 255).astype(np.uint8)).save(good)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    files = [str(tmp_path / "bad.png"), str(good), str(tmp_path / "missing.png")]
    assert main(["predict", str(model), *files]) == 2
    captured = capsys.readouterr()
    errors = captured.err.splitlines()
    assert len(errors) == 2 and "bad.png" in errors[0] and "missing.png: no such image file" \
        in errors[1] and all(line.startswith("cnn-numpy: error: ") for line in errors)
    lines = captured.out.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{good}: {int(data.y_test[0])} (probability")
    assert main(["predict", str(model), files[0]]) == 2  # none readable: nothing predicted
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1


def test_explain_stride_groups_prints_the_groups(capsys, tmp_path):
    assert main(["explain", "stride-groups", "--filter", "2", "--stride", "1", "--input", "4",
                 "--png", str(tmp_path / "sg.png")]) == 0
    out = capsys.readouterr().out
    assert "C * (5, 7, 13, 15)" in out and "D * (11)" in out
    assert (tmp_path / "sg.png").stat().st_size > 10_000


def test_show_draws_filters_confusion_and_mistakes(model, tmp_path, capsys):
    files = {k: tmp_path / f"{k}.png" for k in ("filters", "confusion", "mistakes")}
    assert main(["show", str(model), "--no-progress",
                 *[x for k, p in files.items() for x in (f"--{k}", str(p))]]) == 0
    for path in files.values():
        assert path.stat().st_size > 10_000


@pytest.mark.parametrize("args, message", [
    (["train", "resnet"], "invalid choice: 'resnet'"),
    (["train"], "name a model"),
    (["train", "cnn", "--dataset", "cifar"], "invalid choice: 'cifar'"),
    (["train", "cnn", "--epochs", "two"], "'two' is not a valid int"),
    (["train", "cnn", "--epochs", "0"], "out of range"),
    (["train", "cnn", "--epochs", "9" * 30], f"--epochs: {'9' * 30} is out of range"),
    (["train", "cnn", "--learning-rate", "-1"], "out of range"),
    (["train", "cnn", "--split", "1.5"], "out of range"),
    (["train", "cnn", "--engine", "turbo"], "invalid choice: 'turbo'"),
    (["train", "cnn", "--seed", "-1"],
     "argument --seed: -1 is out of range: it must be a whole number in 0..4,294,967,295"),
    (["train", "deep", "--augment", "9"], "9 is out of range: it must be a whole number in 0..8"),
    (["train", "deep", "--weight-decay", "-0.1"],
     "-0.1 is out of range: it must be a number in [0, 1)"),
    (["train", "deep", "--schedule", "linear"], "invalid choice: 'linear'"),
    (["evaluate", "missing.npz"], "no such model file"),
    (["predict", "missing.npz", "x.png"], "no such model file"),
    (["explain", "stride-groups", "--filter", "5", "--input", "3"], "wider than"),
    (["show", "missing.npz"], "no such model file"),
    (["train"], "name a model to train"),
    (["train", "--layers", "FlatLayer(), FCLayer(10)"],
     "must be FCLayer_Softmax or FCLayer_Sigmoid"),
])
def test_user_mistakes_are_one_line_and_exit_2(args, message):
    result = run(*args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert message in result.stderr and result.stderr.startswith("cnn-numpy: error: ")


def test_damaged_files_and_no_network_are_one_line_errors(tmp_path, model):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(model.read_bytes()[:5000])
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {**os.environ, "CNN_NUMPY_MIRRORS": "http://127.0.0.1:9/", "XDG_CACHE_HOME":
           str(tmp_path), "CNN_NUMPY_DATA": str(empty)}
    for args in (["evaluate", str(bad)], ["predict", str(model), str(model)],
                 ["train", "cnn", "--dataset", "mnist", "--data-dir", str(empty),
                  "--no-progress"]):
        result = run(*args, env=env)
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, args
    assert not any(empty.iterdir())  # the failed download left nothing


@pytest.mark.parametrize("argv", [[], ["resnet"], ["flat", "naive"], ["cnn", "fast"]])
def test_mnist_py_usage(argv):
    result = subprocess.run([sys.executable, "mnist.py", *argv], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and result.stderr.startswith("usage: python mnist.py")


def test_mnist_py_flat_and_naive_run(tmp_path):
    flat = subprocess.run([sys.executable, str(ROOT / "mnist.py"), "flat", "--dataset",
                           "mnist-sample", "--epochs", "1", "--no-progress"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert flat.returncode == 0, flat.stderr
    assert float(summary(flat.stdout).split("CE: ")[-1]) < 0.2
    naive = subprocess.run([sys.executable, str(ROOT / "mnist.py"), "cnn", "naive", "--dataset",
                            "mnist-sample", "--limit", "8", "--test-limit", "4", "--epochs",
                            "1", "--no-progress"], cwd=tmp_path, capture_output=True, text=True,
                           timeout=300)
    assert naive.returncode == 0, naive.stderr
    assert "an epoch of these 8 images would take about" in naive.stdout
    assert "trains one epoch on the first 200 images" in naive.stdout
    assert "engine naive" in naive.stdout
    summary(naive.stdout)


def test_mnist_py_cnn_uses_stride_groups_and_the_mnist_files_it_finds(tmp_path):
    """The spec's application as the spec describes it: `mnist.py cnn` trains on stride
    groups, and the four official files in the current folder are used, checked."""
    cnn = subprocess.run([sys.executable, str(ROOT / "mnist.py"), "cnn", "--dataset",
                          "mnist-sample", "--limit", "64", "--test-limit", "32", "--epochs", "1",
                          "--no-progress"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    assert cnn.returncode == 0, cnn.stderr
    assert "stride-group engine" in cnn.stdout and "engine stride_groups" in cnn.stdout
    shared = ROOT.parent / "shared" / "data" / "mnist"
    if not shared.is_dir():
        pytest.skip(f"the official MNIST files are not in {shared}")
    for file in shared.glob("*.gz"):
        (tmp_path / file.name).write_bytes(file.read_bytes())
    flat = subprocess.run([sys.executable, str(ROOT / "mnist.py"), "flat", "--limit", "256",
                           "--test-limit", "64", "--epochs", "1", "--no-progress"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert flat.returncode == 0, flat.stderr
    assert f"Using the MNIST files in {tmp_path}." in flat.stdout
    assert "Training flat on mnist (" in flat.stdout
    damaged = tmp_path / "t10k-labels-idx1-ubyte.gz"
    damaged.write_bytes(damaged.read_bytes()[:-8])
    broken = subprocess.run([sys.executable, str(ROOT / "mnist.py"), "flat", "--no-progress"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert broken.returncode == 2 and broken.stderr.count("\n") == 1, broken.stderr
    assert "t10k-labels-idx1-ubyte" in broken.stderr


def test_resume_gives_exactly_the_uninterrupted_result(tmp_path, capsys):
    # A constant rate: a cosine or step schedule depends on --epochs, so the 1-epoch run
    # would follow a different schedule than the first epoch of the 3-epoch run.
    common = ["cnn", *QUICK, "--batch-size", "64", "--schedule", "constant"]
    assert main(["train", *common, "--epochs", "3", "--save", str(tmp_path / "straight.npz")]) == 0
    straight = summary(capsys.readouterr().out)
    assert main(["train", *common, "--epochs", "1", "--save", str(tmp_path / "part.npz")]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / "part.npz"), "--epochs", "3",
                 "--no-progress"]) == 0
    assert summary(capsys.readouterr().out) == straight
    a, b = Net.load(tmp_path / "straight.npz"), Net.load(tmp_path / "part.npz")
    for (_, pa, _), (_, pb, _) in zip(a.param_triples(), b.param_triples(), strict=True):
        np.testing.assert_array_equal(pa, pb)
    # asking for a different setting while resuming is refused
    assert main(["train", "--resume", str(tmp_path / "part.npz"), "--batch-size", "8"]) == 2


def test_ctrl_c_saves_and_resume_matches_a_straight_run(tmp_path):
    args = ["train", "cnn", "--dataset", "mnist-sample", "--no-progress", "--limit", "4000",
            "--test-limit", "200", "--epochs", "2", "--batch-size", "16"]
    proc = subprocess.Popen([sys.executable, "-m", "cnn_numpy", *args, "--save", "ck.npz"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().startswith("Training cnn")
    assert proc.stdout.readline().startswith("Epoch 1/2")
    time.sleep(0.2)  # into the second epoch (250 batches)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "ck.npz" in err and "--resume" in err and "Traceback" not in err
    _, _, progress, _ = load_checkpoint(tmp_path / "ck.npz")
    assert progress.epoch == 1 and 0 < progress.batch < 250  # stopped mid-epoch
    resumed = run("train", "--resume", "ck.npz", "--no-progress", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    straight = run(*args, cwd=tmp_path)
    assert summary(resumed.stdout) == summary(straight.stdout)


def test_sigkill_while_checkpointing_leaves_a_loadable_checkpoint(tmp_path):
    """Tiny epochs make the run spend most of its time writing checkpoints; kill it at
    several moments and the checkpoint on disk always loads."""
    ck = tmp_path / "ck.npz"
    args = ["train", "cnn", "--dataset", "mnist-sample", "--no-progress", "--limit", "32",
            "--test-limit", "8", "--epochs", "1000", "--save", str(ck)]
    rng = np.random.default_rng(0)
    epochs_seen = []
    for _ in range(4):
        resume = ["--resume", str(ck), "--epochs", "1000"] if ck.exists() else []
        proc = subprocess.Popen([sys.executable, "-m", "cnn_numpy",
                                 *(["train", *resume, "--no-progress"] if resume else args)],
                                cwd=tmp_path, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        # wait for this run's first checkpoint (start-up time varies with the machine's
        # load), then kill it at a random moment, often in the middle of writing one
        before = ck.stat().st_mtime_ns if ck.exists() else None
        deadline = time.time() + 60
        while time.time() < deadline and (not ck.exists() or ck.stat().st_mtime_ns == before):
            time.sleep(0.01)
        time.sleep(0.3 * rng.random())
        proc.kill()
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        net, settings, progress, _ = load_checkpoint(ck)
        assert settings.limit == 32 and progress.epoch >= 1
        epochs_seen.append(progress.epoch)
        assert net.predict(np.zeros((1, 28, 28), np.float32)).shape == (1, 10)
    assert epochs_seen == sorted(epochs_seen) and epochs_seen[-1] > epochs_seen[0]


def test_divergence_stops_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    from cnn_numpy.net import DivergenceError
    from cnn_numpy.training import Checkpoint, prepare_run, train

    ck = tmp_path / "ck.npz"
    assert main(["train", "cnn", *QUICK, "--epochs", "1", "--save", str(ck)]) == 0
    capsys.readouterr()
    good = ck.read_bytes()
    net, settings, progress, _ = load_checkpoint(ck)
    settings.learning_rate, settings.epochs = 1e30, 2
    data = load_dataset("mnist-sample", progress=False)
    with pytest.raises(DivergenceError, match=r"in epoch 2, batch \d+; lower the learning rate"):
        run_ = prepare_run(net, settings, data.x_train, data.y_train, data.x_test,
                           data.y_test)
        train(run_, [Checkpoint(ck)], progress=progress)
    assert ck.read_bytes() == good  # the last good checkpoint is kept as it was
    # On the command line the learning rate is at most 100, where the loss explodes without
    # overflowing: one warning, once.
    result = run("train", "flat", "--dataset", "mnist-sample", "--no-progress", "--optimizer",
                 "sgd", "--learning-rate", "99", "--limit", "640", "--test-limit", "50",
                 "--epochs", "3")
    assert result.returncode == 0 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("cnn-numpy: warning: the training loss exploded in epoch 1")
    assert "lower the learning rate (now 99" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["train", "cnn", "--save", "/nonexistent-folder/ck.npz"], "does not exist; create it first"),
    (["train", "cnn", "--save", "."], "is a folder; give a file name"),
    (["train", "cnn", "--plot", "/nonexistent-folder/h.png"], "does not exist"),
    (["train", "cnn", "--dataset", "mnist", "--data-dir", "README.md"], "is a file"),
    (["explain", "stride-groups", "--input", "500"], "--input: 500 is out of range"),
])
def test_output_paths_are_checked_before_any_work(args, message):
    start = time.perf_counter()
    result = run(*args)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert message in result.stderr and "Traceback" not in result.stderr
    assert time.perf_counter() - start < 30  # refused up front, not after an epoch
    assert not Path("/nonexistent-folder").exists()


def test_output_cut_short_by_its_reader_ends_quietly():
    """`cnn-numpy ... | head -1`: the pipe closes after one line of about half a megabyte."""
    process = subprocess.Popen([sys.executable, "-m", "cnn_numpy", "explain", "stride-groups",
                                "--filter", "3", "--stride", "1", "--input", "64"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    assert process.stdout.readline().startswith(b"Filter 3 x 3, stride 1, input 64 x 64")
    process.stdout.close()
    assert (process.wait(timeout=60), process.stderr.read()) == (1, b"")
    process.stderr.close()


def test_a_time_in_words_names_its_unit_in_the_right_number():
    from cnn_numpy.cli import _duration

    times = (0.3, 1.6, 59.6, 60, 89, 95, 5399, 5400, 40000)
    assert [_duration(t) for t in times] == [
        "1 second", "2 seconds", "60 seconds", "1 minute", "1 minute", "2 minutes",
        "90 minutes", "1.5 hours", "11.1 hours"]


def run_without(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`cnn-numpy ARGS` in a fresh interpreter that cannot import `module`, as where the
    extra that installs it is not installed."""
    code = (f"import sys; sys.modules[{module!r}] = None\n"
            f"from cnn_numpy.cli import main; sys.exit(main({list(args)!r}))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, cwd=cwd, stdin=subprocess.DEVNULL)


def test_a_picture_whose_library_is_missing_is_refused_before_any_work(tmp_path, model):
    hint = 'which is not installed; pip install "cnn-numpy[plots]"\n'
    cases = [("matplotlib", ["train", "flat", *QUICK, "--plot", "p.png"], "--plot p.png"),
             ("matplotlib", ["compare", str(model), "--plot", "c.png"], "--plot c.png"),
             ("matplotlib", ["explain", "stride-groups", "--png", "g.png"], "--png g.png"),
             ("matplotlib", ["show", str(model), "--confusion", "c.png"], "--confusion c.png"),
             ("PIL", ["predict", str(model), "x.png", "--show", "s.png"], "--show s.png")]
    for module, args, what in cases:
        result = run_without(module, *args, cwd=tmp_path)
        name = "Pillow" if module == "PIL" else module
        assert (result.returncode, result.stdout) == (2, ""), args
        assert result.stderr == f"cnn-numpy: error: {what}: drawing a picture needs {name}, {hint}"
    assert list(tmp_path.iterdir()) == []
    for name in ("a", "b"):  # a folder of images, read without Pillow
        (tmp_path / "set" / name).mkdir(parents=True)
        (tmp_path / "set" / name / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    result = run_without("PIL", "train", "flat", "--images", "set", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (2, "cnn-numpy: error: reading images needs "
                                                     "Pillow, " + hint)
    code = ("import sys; sys.modules['matplotlib'] = None\n"
            "from cnn_numpy.runs import plot_runs\n"
            "try: plot_runs([], 'r.png')\n"
            "except ImportError as exc: print(exc)")
    said = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, check=True).stdout
    assert said == 'plotting needs matplotlib: pip install "cnn-numpy[plots]"\n'


def test_an_import_error_of_cnn_numpy_itself_is_a_bug_not_a_user_mistake(tmp_path, model):
    """Only a missing extra is one line and exit 2; a module of the package that cannot be
    imported keeps its traceback."""
    result = run_without("cnn_numpy.interop", "export", str(model), "--format", "onnx",
                         "--output", "m.onnx", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" in result.stderr
    assert result.stderr.rstrip().splitlines()[-1].startswith("ModuleNotFoundError: import of "
                                                               "cnn_numpy.interop halted")


def test_huge_images_are_refused_in_one_line(tmp_path, model):
    from PIL import Image

    big = tmp_path / "big.png"
    Image.new("L", (12_000, 12_000)).save(big)  # 144 megapixels: over Pillow's safe size
    result = run("predict", str(model), str(big))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "too large" in result.stderr


def test_resuming_a_scheduled_run_with_more_epochs_says_what_the_rate_does(tmp_path, capsys):
    path = tmp_path / "run.npz"
    assert main(["train", "cnn", *QUICK, "--epochs", "1", "--save", str(path)]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(path), "--epochs", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert ("The cosine schedule was planned over 1 epoch; with --epochs 2 it is planned over "
            "2 now, so the learning rate at epoch 2 is 0.0005, not 0 (the same rates a "
            "2-epoch run has from the start)") in out
    assert main(["train", "--resume", str(path), "--epochs", "3", "--no-progress"]) == 0
    assert "planned over 2 epochs; with --epochs 3" in capsys.readouterr().out
    constant = tmp_path / "constant.npz"
    assert main(["train", "cnn", *QUICK, "--epochs", "1", "--schedule", "constant",
                 "--save", str(constant)]) == 0
    assert main(["train", "--resume", str(constant), "--epochs", "2", "--no-progress"]) == 0
    assert "schedule was planned" not in capsys.readouterr().out


def test_a_tenth_of_the_training_set_is_held_out_for_validation_by_default(tmp_path, capsys):
    """The per-epoch line reports the held-out tenth; the test set is evaluated once, at
    the end, in the spec's summary line; --validation 0 reports the test set instead."""
    base = ["--dataset", "mnist-sample", "--no-progress", "--limit", "300", "--test-limit", "100"]
    path = tmp_path / "v.npz"
    assert main(["train", "flat", *base, "--epochs", "2", "--save", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "(270 train / 30 validation / 100 test images" in out[0]
    assert "|  validation CCE: " in out[1] and "|  validation CCE: " in out[2]
    net = Net.load(path)
    data = load_dataset("mnist-sample", progress=False)
    _, cce, ce = net.evaluate(data.x_test[:100], data.y_test[:100])
    assert out[3] == f"Test set: CCE: {cce:.4f}  CE: {ce:.4f}"
    _, settings, _, _ = load_checkpoint(path)
    assert settings.validation == 0.1
    assert main(["train", "--resume", str(path), "--validation", "0.2"]) == 2
    assert "--validation 0.2 differs from the checkpoint's 0.1" in capsys.readouterr().err
    assert main(["train", "flat", *base, "--epochs", "1", "--validation", "0"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "(300 train / 100 test images" in out[0] and "|  test CCE: " in out[1]
    assert main(["train", "flat", *base[:3], "--limit", "10", "--epochs", "1"]) == 0
    assert "10 training images are too few to hold out" in capsys.readouterr().out
    assert main(["train", "flat", *base, "--validation", "1"]) == 2
    assert "--validation: 1 is out of range" in capsys.readouterr().err


def test_compare_reads_checkpoints_and_history_files_side_by_side(tmp_path, capsys):
    runs = []
    for lr, name in (("0.001", "a.json"), ("0.003", "b.csv")):
        history, save = tmp_path / name, tmp_path / f"{name}.npz"
        assert main(["train", "flat", *QUICK, "--epochs", "2", "--learning-rate", lr,
                     "--history", str(history), "--save", str(save)]) == 0
        runs += [history, save]
    out = capsys.readouterr().out
    written = json.loads((tmp_path / "a.json").read_text())
    assert written["settings"]["learning_rate"] == 0.001 and len(written["history"]) == 2
    header, first, _ = (tmp_path / "b.csv").read_text().splitlines()
    assert header.startswith("epoch,train_cce,train_ce,val_cce,val_ce,test_cce,test_ce,")
    row = dict(zip(header.split(","), first.split(","), strict=True))  # the settings too
    assert (row["model"], row["base_learning_rate"], row["engine"]) == ("flat", "0.003", "")
    plot = tmp_path / "runs.png"
    assert main(["compare", *map(str, runs), "--plot", str(plot)]) == 0
    table = capsys.readouterr().out
    rate = next(line for line in table.splitlines() if line.startswith("learning_rate"))
    assert rate.split() == ["learning_rate", "0.001", "0.001", "0.003", "0.003"]
    last = summary(out.split("Saved to")[0])  # run 1's Test set line: the test set, each epoch
    cce = next(line for line in table.splitlines() if line.startswith("test CCE"))
    assert cce.split()[2] == f"{float(last.split()[3]):.4g}"
    assert plot.stat().st_size > 10_000
    (tmp_path / "bad.json").write_text("{not json")
    assert main(["compare", str(tmp_path / "bad.json")]) == 2
    assert "bad.json: not JSON" in capsys.readouterr().err
    (tmp_path / "bad.csv").write_text("epoch,train_cce\n1,lots\n")
    assert main(["compare", str(tmp_path / "bad.csv"), str(tmp_path / "none.json")]) == 2
    assert "row 1: train_cce = 'lots' is not a number" in capsys.readouterr().err

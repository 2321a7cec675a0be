"""The training features of the new-layers issue: train/inference modes, weight decay,
learning-rate schedules, random shifts, and exact resume of a run that uses all of them."""

from __future__ import annotations

import copy
import dataclasses
import math
import signal

import numpy as np
import pytest

from cnn_numpy import (
    BatchNorm,
    ConvLayer,
    ConvLayer_ReLU,
    Dropout,
    FCLayer,
    FCLayer_ReLU,
    FCLayer_Softmax,
    FlatLayer,
    Net,
    PoolLayer_Max,
    ReLULayer,
)
from cnn_numpy.data.augment import random_shift
from cnn_numpy.models import build_model
from cnn_numpy.schedules import learning_rate
from cnn_numpy.training import (
    Checkpoint,
    Progress,
    Settings,
    load_checkpoint,
    prepare_run,
    train,
)


def run(net, data, settings, progress=None, checkpoint=None):
    """A run as the command line makes one: prepare_run (nothing held out for validation
    unless the settings say so), then the loop, with a Checkpoint when a path is given."""
    if settings.validation is None:
        settings = dataclasses.replace(settings, validation=0.0)
    prepared = prepare_run(net, settings, data.x_train, data.y_train, data.x_test, data.y_test)
    return train(prepared, [] if checkpoint is None else [Checkpoint(checkpoint)], progress)


def small_deep(seed=0, **kwargs) -> Net:
    return Net([ConvLayer(4, 3), BatchNorm(), ReLULayer(), PoolLayer_Max(2), FlatLayer(),
                Dropout(0.3), FCLayer(16), BatchNorm(), ReLULayer(), Dropout(0.5),
                FCLayer_Softmax(10)], seed=seed, optimizer="adam", **kwargs)


# -- modes ------------------------------------------------------------------------

def test_dropout_is_active_in_train_only(sample):
    net = small_deep()
    X, y = sample.x_train[:64], sample.y_train[:64]
    net.train(X, y, 0.0)  # builds; lr 0 changes no weight (BatchNorm's statistics do move)
    dropout = net.layers[5]
    assert dropout.mask is not None and 0.2 < (dropout.mask == 0).mean() < 0.4
    first = net.predict(X)
    np.testing.assert_array_equal(net.predict(X), first)  # inference is deterministic
    assert dropout.mask is None
    # the same weights without the Dropout layers predict exactly the same
    plain = Net([layer for layer in net.layers if not isinstance(layer, Dropout)])
    np.testing.assert_array_equal(plain.predict(X), first)


def test_dropout_keeps_each_units_expected_value():
    layer = Dropout(0.25)
    layer.rng = np.random.default_rng(0)
    layer.training = True
    X = np.ones((400, 500))
    out = layer.forward_propagate(X)
    assert set(np.unique(out)) == {0.0, 1 / 0.75}
    assert abs((out == 0).mean() - 0.25) < 0.01 and abs(out.mean() - 1) < 0.01


def test_batchnorm_uses_batch_statistics_in_train_and_running_ones_in_inference():
    layer = BatchNorm(momentum=1.0)  # running statistics = the last batch's
    X = np.random.default_rng(1).normal(3.0, 2.0, (50, 4, 4, 3))
    layer.training = True
    out = layer.forward_propagate(X)
    np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), 0, atol=1e-12)
    np.testing.assert_allclose(out.var(axis=(0, 1, 2)), 1, rtol=1e-4)
    m = 50 * 4 * 4
    np.testing.assert_allclose(layer.running_var, X.var(axis=(0, 1, 2)) * m / (m - 1))
    layer.training = False
    shifted = layer.forward_propagate(X + 1)  # inference: the stored statistics, not X's
    np.testing.assert_allclose(shifted.mean(axis=(0, 1, 2)), 1 / np.sqrt(layer.running_var
                                                                         + layer.eps))


# -- weight decay -------------------------------------------------------------------

def test_weight_decay_adds_lambda_w_to_weights_only(sample):
    X, y = sample.x_train[:32], sample.y_train[:32]
    lr, wd = 0.1, 0.01
    nets = [Net([ConvLayer_ReLU(3, 3), BatchNorm(), PoolLayer_Max(2), FlatLayer(),
                 FCLayer_ReLU(8), FCLayer_Softmax(10)], seed=0, dtype=np.float64,
                weight_decay=decay) for decay in (0.0, wd)]
    for net in nets:
        net.build((28, 28, 1))
    before = [p.copy() for _, p, _ in nets[0].param_triples()]
    for net in nets:
        net.train(X, y, lr)
    for (key, plain, _), (_, decayed, _), old in zip(nets[0].param_triples(),
                                                     nets[1].param_triples(), before,
                                                     strict=True):
        if key.endswith("/W") and key != "2/W":
            weights = (slice(None), slice(0, -1)) if old.ndim == 2 else ...
            np.testing.assert_allclose(decayed[weights], plain[weights] - lr * wd * old[weights],
                                       rtol=1e-12, atol=1e-15)
            if old.ndim == 2:  # the FC bias column is not decayed
                np.testing.assert_array_equal(decayed[:, -1], plain[:, -1])
        else:  # conv bias, BatchNorm gamma and beta
            np.testing.assert_array_equal(decayed, plain, err_msg=key)


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), True, "0.1"])
def test_weight_decay_is_validated(bad):
    with pytest.raises(ValueError, match="weight_decay must be a finite number >= 0"):
        Net([FlatLayer(), FCLayer_Softmax(10)], weight_decay=bad)


# -- schedules and augmentation --------------------------------------------------------

def test_schedules():
    assert learning_rate("constant", 0.1, 999, 1000) == 0.1
    assert [learning_rate("step", 1.0, s, 100) for s in (0, 49, 50, 74, 75, 99)] == \
        pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    cosine = [learning_rate("cosine", 2.0, s, 100) for s in range(100)]
    assert cosine[0] == 2.0 and cosine[50] == pytest.approx(1.0)
    assert cosine[99] == pytest.approx(2.0 * (1 + math.cos(math.pi * 0.99)) / 2)
    assert all(a > b for a, b in zip(cosine[:-1], cosine[1:], strict=True))
    with pytest.raises(ValueError, match="unknown learning-rate schedule 'linear'"):
        learning_rate("linear", 0.1, 0, 10)


def test_random_shift_moves_each_image_within_bounds(sample):
    X = sample.x_train[:400]
    border = np.ones((28, 28), bool)
    border[2:-2, 2:-2] = False
    X = X[~X[:, border].any(axis=1)][:300]  # digits that a 2-pixel shift does not cut
    shifted = random_shift(X, 2, np.random.default_rng(0))
    assert shifted.shape == X.shape and shifted.dtype == X.dtype
    np.testing.assert_allclose(shifted.sum(axis=(1, 2)), X.sum(axis=(1, 2)), rtol=1e-5)
    found = set()
    for original, moved in zip(X, shifted, strict=True):
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                   if np.array_equal(np.roll(original, (dy, dx), axis=(0, 1)), moved)]
        assert matches, "an image was changed by more than a shift"
        found.update(matches)
    assert len(found) == 25  # every shift in [-2, 2]^2 occurs
    np.testing.assert_array_equal(random_shift(X, 2, np.random.default_rng(0)), shifted)
    assert random_shift(X, 0, np.random.default_rng(0)) is X
    with_channels = random_shift(X[:5, :, :, None], 1, np.random.default_rng(1))
    assert with_channels.shape == (5, 28, 28, 1)


# -- whole runs --------------------------------------------------------------------------

def deep_settings(**changes) -> Settings:
    settings = Settings(model="deep", epochs=2, batch_size=50, learning_rate=0.003,
                        optimizer="adam", seed=3, schedule="cosine", weight_decay=1e-4,
                        augment=2)
    return dataclasses.replace(settings, **changes)


def small_data(sample):
    return dataclasses.replace(sample, x_train=sample.x_train[:600],
                               y_train=sample.y_train[:600], x_test=sample.x_test[:100],
                               y_test=sample.y_test[:100])


def stored_arrays(net: Net) -> list[np.ndarray]:
    return [a for layer in net.layers for a in (*layer.params().values(),
                                                *layer.buffers().values())]


def test_seeded_deep_runs_are_reproducible(sample):
    data = small_data(sample)
    runs = [build_model("deep", seed=seed, optimizer="adam") for seed in (3, 3, 4)]
    histories = [run(net, data, deep_settings(epochs=1, seed=seed))
                 .history for net, seed in zip(runs, (3, 3, 4), strict=True)]
    for a, b in zip(stored_arrays(runs[0]), stored_arrays(runs[1]), strict=True):
        np.testing.assert_array_equal(a, b)
    assert histories[0][0]["train_cce"] == histories[1][0]["train_cce"]
    assert histories[0][0]["train_cce"] != histories[2][0]["train_cce"]


def test_interrupted_deep_run_resumes_exactly(sample, tmp_path):
    """Dropout masks (the Net's RNG), BatchNorm statistics, cosine rates, random shifts and
    weight decay: a run stopped mid-epoch and resumed ends bit for bit where a straight
    run ends."""
    data, settings = small_data(sample), deep_settings()
    straight = build_model("deep", seed=3, optimizer="adam", weight_decay=1e-4)
    run(straight, data, settings)

    net = build_model("deep", seed=3, optimizer="adam", weight_decay=1e-4)
    original_train, steps = net.train, []

    def train_then_press_ctrl_c(*args):
        result = original_train(*args)
        steps.append(1)
        if len(steps) == 17:  # epoch 2 of 12-batch epochs, batch 5
            signal.raise_signal(signal.SIGINT)
        return result

    net.train = train_then_press_ctrl_c
    checkpoint = tmp_path / "ck.npz"
    with pytest.raises(KeyboardInterrupt):
        run(net, data, settings, checkpoint=checkpoint)
    resumed, saved_settings, progress, _ = load_checkpoint(checkpoint)
    assert (progress.epoch, progress.batch) == (1, 5)
    assert saved_settings == dataclasses.replace(settings, validation=0.0, engine="im2col")
    final = run(resumed, data, saved_settings, progress=progress)
    for a, b in zip(stored_arrays(straight), stored_arrays(resumed), strict=True):
        np.testing.assert_array_equal(a, b)
    assert final.history[-1]["learning_rate"] < settings.learning_rate / 10


def test_a_last_batch_of_one_image_is_refused_with_batchnorm(sample):
    data = dataclasses.replace(sample, x_train=sample.x_train[:101],
                               y_train=sample.y_train[:101])
    with pytest.raises(ValueError, match="101 training images in batches of 50 leave a last "
                                         "batch of one image"):
        run(small_deep(), data, deep_settings(model="deep"))
    plain = Net([FlatLayer(), FCLayer_Softmax(10)], seed=0)  # no BatchNorm: fine
    run(plain, data, deep_settings(model="flat", epochs=1))


def test_old_checkpoints_without_the_new_settings_still_load(sample, tmp_path):
    """Settings added by this issue have defaults, so a checkpoint written before them
    (no schedule, weight_decay, augment, net_rng_state) resumes as a constant-rate run."""
    net = Net([FlatLayer(), FCLayer_Softmax(10)], seed=0)
    settings = Settings(model="flat", epochs=1, batch_size=100, learning_rate=0.1,
                        optimizer="sgd", seed=0)
    data = small_data(sample)
    progress = run(net, data, settings)
    from cnn_numpy import saving
    old = dataclasses.asdict(settings)
    for key in ("schedule", "weight_decay", "augment"):
        del old[key]
    history = copy.deepcopy(progress.history)
    for entry in history:
        del entry["learning_rate"]
    meta = {"kind": "checkpoint", "settings": old,
            "progress": dataclasses.asdict(dataclasses.replace(progress, history=history)),
            "data_fingerprint": "x"}
    saving.save(net, tmp_path / "old.npz", meta=meta, with_optimizer=True)
    _, loaded, loaded_progress, _ = load_checkpoint(tmp_path / "old.npz")
    assert loaded == settings and loaded_progress.epoch == 1
    assert isinstance(loaded_progress, Progress)


def test_ctrl_c_during_the_test_evaluation_stops_within_a_chunk(sample, tmp_path):
    """The per-epoch test set is evaluated in chunks of 1,000 images with a look at the
    Ctrl-C flag after each: the run stops there, and resumes straight into the evaluation."""
    data = dataclasses.replace(small_data(sample), x_test=sample.x_test[:1000].repeat(3, 0),
                               y_test=sample.y_test[:1000].repeat(3, 0))
    settings = deep_settings(epochs=1)
    straight = build_model("deep", seed=3, optimizer="adam", weight_decay=1e-4)
    expected = run(straight, data, settings).history[-1]

    net = build_model("deep", seed=3, optimizer="adam", weight_decay=1e-4)
    original, calls = net.evaluate, []

    def evaluate_then_press_ctrl_c(*args, **kwargs):
        calls.append(len(args[0]))
        if len(calls) == 1:
            signal.raise_signal(signal.SIGINT)
        return original(*args, **kwargs)

    net.evaluate = evaluate_then_press_ctrl_c
    with pytest.raises(KeyboardInterrupt):
        run(net, data, settings, checkpoint=tmp_path / "ck.npz")
    assert calls == [1000]  # stopped after the first of three chunks
    resumed, saved_settings, progress, _ = load_checkpoint(tmp_path / "ck.npz")
    assert (progress.epoch, progress.batch) == (0, 12)  # training done, test not
    final = run(resumed, data, saved_settings, progress=progress)
    assert final.history[-1]["test_cce"] == expected["test_cce"]
    assert final.history[-1]["test_ce"] == expected["test_ce"]
    for a, b in zip(stored_arrays(straight), stored_arrays(resumed), strict=True):
        np.testing.assert_array_equal(a, b)

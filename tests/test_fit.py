"""Net.fit: the command line's loop from Python, with validation, callbacks and a History."""

from __future__ import annotations

import numpy as np
import pytest

from cnn_numpy import Net
from cnn_numpy.architecture import parse_layers
from cnn_numpy.cli import main
from cnn_numpy.training import Callback, EarlyStopping

load = Net.load

TEXT = "ConvLayer_ReLU(4, 3), PoolLayer_Max(2), FlatLayer(), FCLayer_Softmax(10)"


def net(**kwargs) -> Net:
    return Net(parse_layers(TEXT), seed=0, optimizer="adam", **kwargs)


def test_fit_gives_the_command_lines_weights_bit_for_bit(sample, tmp_path, capsys):
    """The command line's default --validation 0.1 and fit's validation_split=0.1 hold out
    the same images; the rest of the run is the same loop."""
    path = tmp_path / "cli.npz"
    assert main(["train", "--layers", TEXT, "--dataset", "mnist-sample", "--limit", "320",
                 "--test-limit", "64", "--epochs", "2", "--augment", "1", "--weight-decay",
                 "0.001", "--schedule", "step", "--no-progress", "--save", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    fitted = net(weight_decay=0.001)
    history = fitted.fit(sample.x_train[:320], sample.y_train[:320], epochs=2,
                         learning_rate=0.001, schedule="step", augment=1,
                         validation_split=0.1, progress=False)
    for a, b in zip(fitted.param_triples(), load(path).param_triples(), strict=True):
        np.testing.assert_array_equal(a[1], b[1])
    assert len(history) == 2 and history["epoch"] == [1, 2]
    assert f"validation CCE: {history['val_cce'][-1]:.4f}  CE: {history['val_ce'][-1]:.4f}" \
        in out[-3]
    _, cce, ce = fitted.evaluate(sample.x_test[:64], sample.y_test[:64])
    assert out[-2] == f"Test set: CCE: {cce:.4f}  CE: {ce:.4f}"  # once, at the end


def test_validation_split_holds_out_a_seeded_part(sample):
    seen = []

    class Count(Callback):
        def on_batch_end(self, net, batch, cce, ce):
            seen.append(batch)

    history = net().fit(sample.x_train[:200], sample.y_train[:200], epochs=2, batch_size=50,
                        validation_split=0.2, callbacks=[Count()], progress=False)
    assert seen == [0, 1, 2, 3] * 2  # 160 training images in batches of 50, twice
    assert all(0 <= v <= 1 for v in history["val_ce"]) and not np.isnan(history["val_cce"]).any()
    again = net().fit(sample.x_train[:200], sample.y_train[:200], epochs=2, batch_size=50,
                      validation_split=0.2, progress=False)
    assert again["val_cce"] == history["val_cce"]  # the same images held out
    alone = net().fit(sample.x_train[:200], sample.y_train[:200], progress=False)
    assert np.isnan(alone["val_cce"]).all()  # no validation set: NaN, not a made-up figure


def test_early_stopping_stops_and_restores_the_best_weights(sample):
    x, y = sample.x_train[:300], sample.y_train[:300]
    stopper = EarlyStopping(patience=1)
    model = net()
    states = []

    class Keep(Callback):
        def on_epoch_end(self, net, entry):
            states.append([p.copy() for _, p, _ in net.param_triples()])

    # A learning rate high enough that validation gets worse after the first epochs.
    history = model.fit(x, y, epochs=30, learning_rate=0.05, validation_split=0.5,
                        callbacks=[Keep(), stopper], progress=False)
    assert len(history) < 30 and len(history) == stopper.best_epoch + 1
    assert min(history["val_cce"]) == stopper.best == history["val_cce"][stopper.best_epoch - 1]
    for a, (_, b, _) in zip(states[stopper.best_epoch - 1], model.param_triples(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_callback_can_stop_within_an_epoch(sample):
    class StopAt(Callback):
        def on_batch_end(self, net, batch, cce, ce):
            return batch == 2

    history = net().fit(sample.x_train[:320], sample.y_train[:320], epochs=3,
                        callbacks=[StopAt()], progress=False)
    assert len(history) == 0  # stopped in epoch 1, which has no row


def test_history_plots_and_fit_refuses_bad_settings(sample, tmp_path):
    history = net().fit(sample.x_train[:64], sample.y_train[:64], epochs=2,
                        validation_split=0.25, progress=False)
    history.plot(tmp_path / "h.png")
    assert (tmp_path / "h.png").stat().st_size > 5_000
    with pytest.raises(KeyError, match="a History has epoch, train_cce"):
        history["val_los"]
    # Keras's spelling: history.history, a dict of lists, with its names too
    assert history.history["val_loss"] == history["val_cce"] == [r["val_cce"] for r in history]
    assert history.history["accuracy"] == [1 - ce for ce in history["train_ce"]]
    assert history.epoch == [1, 2] and [row["epoch"] for row in history] == [1, 2]
    assert repr(history).startswith("History(2 epochs, last: train_cce ")
    x, y = sample.x_train[:64], sample.y_train[:64]
    for kwargs, message in [({"validation_split": 1.5}, "validation_split must be a fraction"),
                            ({"epochs": 0}, "epochs must be an integer >= 1"),
                            ({"schedule": "linear"}, "schedule must be one of"),
                            ({"validation_split": 0.1, "validation_data": (x, y)}, "not both"),
                            ({"validation_data": x}, "must be a pair")]:
        with pytest.raises(ValueError, match=message):
            net().fit(x, y, progress=False, **kwargs)
    with pytest.raises(ValueError, match="EarlyStopping: val_cce is NaN"):
        net().fit(x, y, epochs=2, callbacks=[EarlyStopping()], progress=False)
    with pytest.raises(ValueError, match="patience must be"):
        EarlyStopping(patience=0)

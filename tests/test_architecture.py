"""Architectures as text: parsed safely, built by the layers' own constructors, written
back by Net.describe, and trained from the command line like the named models."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnn_numpy import Net
from cnn_numpy.architecture import LAYER_TYPES, describe_layers, parse_layers
from cnn_numpy.cli import main
from cnn_numpy.models import MODEL_LAYERS, build_model

load = Net.load

QUICK = ["--dataset", "mnist-sample", "--limit", "96", "--test-limit", "32", "--no-progress"]


@pytest.mark.parametrize("name", list(MODEL_LAYERS))
def test_the_named_models_are_their_texts(name):
    net = build_model(name, seed=0)
    assert net.describe() == MODEL_LAYERS[name]
    again = Net(parse_layers(net.describe()), seed=0)
    assert [layer.config() for layer in again.layers] == [layer.config() for layer in net.layers]
    assert [type(layer) for layer in again.layers] == [type(layer) for layer in net.layers]


def test_every_argument_survives_the_round_trip():
    text = ("ConvLayer(4, 3, stride=2, padding='same', engine='naive'), "
            "PoolLayer_Avg(3, stride=1), LeakyReLULayer(alpha=0.2), BatchNorm(momentum=0.3, "
            "eps=0.001), FlatLayer(), Dropout(rate=0.25), FCLayer_Sigmoid(3)")
    assert describe_layers(parse_layers(text)) == text
    assert describe_layers(parse_layers("[FlatLayer(), FCLayer_Softmax(num_neurons=10)]")) \
        == "FlatLayer(), FCLayer_Softmax(10)"


@pytest.mark.parametrize("text, message", [
    ("", "the text is empty"),
    ("Conv2d(32, 3)", "at column 1, unknown layer 'Conv2d'"),
    ('FlatLayer(), __import__("os").system("ls")', "at column 14, unknown layer "
                                                    "'__import__\\(\"os\"\\).system'"),
    ("ConvLayer(32)", "missing a required argument: 'filter_width'; write ConvLayer\\("
                      "num_filters, filter_width, stride=1"),
    ("ConvLayer(32, 3, size=2)", "unexpected keyword argument 'size'"),
    ("ConvLayer(2 ** 40, 3)", "at column 11, ConvLayer: '2 \\*\\* 40' is not a plain number"),
    ("ConvLayer(10000000, 3)", "10000000 is too large \\(at most 100,000\\)"),
    ("FCLayer(-4)", "at column 1, FCLayer: num_neurons must be a positive integer, got -4"),
    ("FlatLayer", "'FlatLayer' is not a layer"),
    ("FlatLayer(), (", "not valid Python at column"),
    ("[[FlatLayer()]]", "at column 2, '\\[FlatLayer\\(\\)\\]' is not a layer"),
    ("Dropout(rate=x)", "at column 14, Dropout: 'x' is not a plain number"),
    ("FlatLayer(**{})", "'\\*\\*' is not accepted"),
])
def test_a_text_it_cannot_accept_is_refused_naming_the_part(text, message):
    with pytest.raises(ValueError, match=f"^architecture: .*{message}"):
        parse_layers(text)


def texts():
    """Texts near the grammar and far from it: names right and wrong, arguments of every
    kind and count, nesting, attributes, huge numbers, random characters."""
    name = st.sampled_from([*LAYER_TYPES, "Conv2d", "eval", "__import__", "Net", "np.zeros"])
    arg = st.one_of(st.integers(-10, 10**12).map(str), st.floats(allow_nan=True).map(repr),
                    st.sampled_from(["'same'", "None", "True", "x", "[1]", "(1, 2)", "1 + 2",
                                     "FlatLayer()", "a.b", "lambda: 0", "*a", "**k", "..."]),
                    st.text(max_size=5))
    call = st.builds(lambda n, a, k: f"{n}({', '.join(a + k)})", name,
                     st.lists(arg, max_size=3),
                     st.lists(st.builds(lambda key, v: f"{key}={v}",
                                        st.sampled_from(["rate", "stride", "padding", "foo"]),
                                        arg), max_size=2))
    return st.one_of(st.lists(call, max_size=4).map(", ".join),
                     st.lists(call, max_size=3).map(lambda c: "[" + ", ".join(c) + "]"),
                     st.text(max_size=30), st.just("(" * 300 + ")" * 300))


@settings(max_examples=300, deadline=None)
@given(text=texts())
def test_parse_layers_only_ever_raises_value_error(text):
    try:
        layers = parse_layers(text)
    except ValueError as exc:
        assert str(exc).startswith("architecture: ") and "\n" not in str(exc)
        return
    assert layers and describe_layers(parse_layers(describe_layers(layers))) \
        == describe_layers(layers)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts())
def test_train_layers_never_crashes(text):
    """Exit 0 (it trained) or 2 with one line naming the problem: never a traceback."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["train", "--layers", text or "x", *QUICK, "--epochs", "1"])
    if code == 2:
        lines = err.getvalue().splitlines()
        assert len(lines) == 1 and lines[0].startswith("cnn-numpy: error: "), err.getvalue()
    else:
        assert code == 0 and "Test set: CCE:" in out.getvalue(), err.getvalue()


def test_a_network_of_ones_own_trains_saves_shows_and_resumes_exactly(tmp_path, capsys):
    """With augmentation, weight decay and a checkpoint; a constant rate (a scheduled
    one is planned over --epochs, so a 2-epoch run is not the start of a 3-epoch one)."""
    text = "ConvLayer_ReLU(4, 5, stride=2), BatchNorm(), FlatLayer(), FCLayer_Softmax(10)"
    (tmp_path / "net.txt").write_text(text + "\n")
    common = ["--layers", str(tmp_path / "net.txt"), *QUICK, "--schedule", "constant",
              "--augment", "1", "--weight-decay", "0.001", "--threads", "1"]
    straight, part = tmp_path / "straight.npz", tmp_path / "part.npz"
    assert main(["train", *common, "--epochs", "2", "--save", str(straight)]) == 0
    out = capsys.readouterr().out
    assert f"Layers: {text}" in out and "Training custom on mnist-sample" in out
    assert main(["train", *common, "--epochs", "2", "--save", str(part)]) == 0
    assert main(["train", "--resume", str(part), "--epochs", "3", "--no-progress"]) == 0
    assert main(["train", *common, "--epochs", "3", "--save", str(straight)]) == 0
    for a, b in zip(load(straight).param_triples(), load(part).param_triples(), strict=True):
        np.testing.assert_array_equal(a[1], b[1])
    capsys.readouterr()
    assert main(["show", str(part)]) == 0
    assert capsys.readouterr().out.startswith(f"{part}: {text}\n")
    # the first run's command again, plus --resume: the same network, so it goes on ...
    assert main(["train", *common, "--resume", str(part), "--epochs", "4"]) == 0
    assert "Epoch 4/4" in capsys.readouterr().out
    # ... and the same layers written otherwise are the same network too; others are not
    spaced = text.replace(", ", " ,  ").replace("stride=2", "stride = 2")
    assert main(["train", "--resume", str(part), "--layers", spaced, "--epochs", "5",
                 "--no-progress"]) == 0
    capsys.readouterr()
    other = text.replace("ConvLayer_ReLU(4", "ConvLayer_ReLU(8")
    assert main(["train", "--resume", str(part), "--layers", other, "--epochs", "6"]) == 2
    assert "is another network than the checkpoint's (custom); leave it out when resuming" \
        in capsys.readouterr().err
    assert main(["train", "cnn", "--resume", str(part), "--epochs", "6"]) == 2
    assert "model 'cnn' is another network" in capsys.readouterr().err
    assert main(["train", "cnn", "--layers", text]) == 2
    assert "not both" in capsys.readouterr().err

"""The named models: an architecture text and the training settings each does well with.

    cnn   the spec's CNN: conv 32 3x3 + ReLU -> max pool 2 -> dense 100 + ReLU -> softmax 10
    flat  dense only: dense 100 + ReLU -> softmax 10
    deep  two conv blocks (conv 3x3 -> BatchNorm -> ReLU -> max pool 2; 32 then 64
          filters) -> dropout -> dense 128 -> BatchNorm -> ReLU -> dropout -> softmax 10

This is the one home of these names: the command line (`cnn-numpy train cnn`), the
page's Train panel and `mnist.py` all read them here.  A network given as text instead
(`--layers`, the page's architecture box) trains with the cnn's settings.  How the
settings were chosen is in the documentation's accuracy page.
"""

from __future__ import annotations

import math

from .architecture import describe_layers, parse_layers
from .net import Net

#: The name of a run whose layers came as text rather than as a model name.
CUSTOM = "custom"

#: Each named model's layers, as the Python a user would write for Net([...]).
MODEL_LAYERS = {
    "cnn": "ConvLayer_ReLU(32, 3), PoolLayer_Max(2), FlatLayer(), FCLayer_ReLU(100), "
           "FCLayer_Softmax(10)",
    "flat": "FlatLayer(), FCLayer_ReLU(100), FCLayer_Softmax(10)",
    "deep": "ConvLayer(32, 3), BatchNorm(), ReLULayer(), PoolLayer_Max(2), ConvLayer(64, 3), "
            "BatchNorm(), ReLULayer(), PoolLayer_Max(2), FlatLayer(), Dropout(rate=0.1), "
            "FCLayer(128), BatchNorm(), ReLULayer(), Dropout(rate=0.3), FCLayer_Softmax(10)",
}

#: Each named model's training settings out of the box.
MODEL_DEFAULTS = {
    "cnn": {"epochs": 6, "batch_size": 32, "learning_rate": 0.001, "optimizer": "adam",
            "schedule": "cosine", "weight_decay": 0.0, "augment": 0},
    "flat": {"epochs": 10, "batch_size": 32, "learning_rate": 0.001, "optimizer": "adam",
             "schedule": "cosine", "weight_decay": 0.0, "augment": 0},
    "deep": {"epochs": 12, "batch_size": 64, "learning_rate": 0.002, "optimizer": "adam",
             "schedule": "cosine", "weight_decay": 0.0, "augment": 1},
}

MODELS = tuple(MODEL_LAYERS)

#: Training on one's own images, usually a few hundred: the model's settings, except
#: random shifts of up to 2 pixels (unless it shifts more), and epochs enough for at
#: least 2,000 steps (unless epochs are given).  A few hundred images make a few dozen
#: steps an epoch, too few for the MNIST settings to learn from; the shifts teach a
#: model that a shape is the same wherever it is drawn.
OWN_IMAGES = {"augment": 2, "min_steps": 2000}

#: A network built from text may have at most this many weights (about 80 MB in float32).
MAX_PARAMS = 20_000_000


def defaults(model: str) -> dict:
    """The training settings of a named model; a CUSTOM one (layers as text) gets the cnn's."""
    return dict(MODEL_DEFAULTS.get(model, MODEL_DEFAULTS["cnn"]))


def model_name(layers: str) -> str:
    """The named model whose layers `layers` describes (spacing and argument spelling
    aside), else CUSTOM.  ValueError if the text cannot be read."""
    text = describe_layers(parse_layers(layers))
    for name, known in MODEL_LAYERS.items():
        if describe_layers(parse_layers(known)) == text:
            return name
    return CUSTOM


def build_model(name: str, engine: str | None = None, seed: int | None = None,
                optimizer: str | None = None, weight_decay: float = 0.0,
                layers: str | None = None, classes: int | None = None) -> Net:
    """A new Net: the named model `name`, or the architecture text `layers` if given.

    classes: the number of classes to tell apart; a named model's last layer gets that
    many outputs (their 10 are MNIST's); a network given as text keeps its own.
    """
    if layers is None and name not in MODEL_LAYERS:
        raise ValueError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}, or give "
                         "the layers as text")
    built = parse_layers(MODEL_LAYERS[name] if layers is None else layers)
    if layers is None and classes is not None and classes != built[-1].num_neurons:
        built[-1] = type(built[-1])(**{**built[-1].config(), "num_neurons": classes})
    return Net(built, engine=engine, seed=seed, optimizer=optimizer, weight_decay=weight_decay)


def count_params(net: Net, image_shape: tuple[int, ...]) -> int:
    """How many weights `net` will have for images of image_shape, without allocating them
    (ValueError naming the first layer that cannot take its input)."""
    shape, total = tuple(image_shape), 0
    for layer, after in zip(net.layers, net.shapes(shape), strict=True):
        total += sum(math.prod(s) for s in layer.param_shapes(shape).values())
        shape = after
    return total


def check_architecture(net: Net, image_shape: tuple[int, ...]) -> None:
    """ValueError unless `net` can train on images of image_shape: the layers fit, the last
    one computes a loss, and there are at most MAX_PARAMS weights."""
    net.output_layer  # noqa: B018  (raises the error that names the last layer)
    total = count_params(net, image_shape)
    if total > MAX_PARAMS:
        raise ValueError(f"the network would have {total:,} weights for {image_shape} images; "
                         f"at most {MAX_PARAMS:,} for a network given as text")

"""Architectures as text: the Python a user writes for a Net's layer list, read safely.

    parse_layers("ConvLayer_ReLU(32, 3), PoolLayer_Max(2), FlatLayer(), FCLayer_ReLU(100), "
                 "FCLayer_Softmax(10)")        -> [ConvLayer_ReLU(...), PoolLayer_Max(...), ...]
    describe_layers(net.layers)                -> the same text back

The text is parsed with `ast` and never evaluated: only calls of cnn-numpy's
own layer names, with literal arguments (numbers, strings, None, True,
False), separated by commas (or in one pair of brackets).  Anything else is
a ValueError that names the part it cannot accept and where it starts.
"""

from __future__ import annotations

import ast
import inspect

from .layers import (
    BatchNorm,
    ConvLayer,
    ConvLayer_ReLU,
    Dropout,
    FCLayer,
    FCLayer_ReLU,
    FCLayer_Sigmoid,
    FCLayer_Softmax,
    FlatLayer,
    Layer,
    LeakyReLULayer,
    PoolLayer_Avg,
    PoolLayer_Max,
    ReLULayer,
    SigmoidLayer,
    TanhLayer,
)

#: The layer names a text may use.
LAYER_TYPES: dict[str, type[Layer]] = {cls.__name__: cls for cls in (
    ConvLayer, ConvLayer_ReLU, PoolLayer_Max, PoolLayer_Avg, FlatLayer, FCLayer, FCLayer_ReLU,
    FCLayer_Sigmoid, FCLayer_Softmax, BatchNorm, Dropout, ReLULayer, LeakyReLULayer, TanhLayer,
    SigmoidLayer)}
#: Integer arguments above this are refused: a layer that large would not fit in memory.
MAX_INT = 100_000
#: The longest text accepted.
MAX_LENGTH = 10_000


def parse_layers(text: str) -> list[Layer]:
    """The layers a text describes, in order, each built by its own constructor (which
    checks its arguments).  ValueError, naming the part and its column, otherwise."""
    if not isinstance(text, str):
        raise ValueError(f"architecture: expected text, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ValueError(f"architecture: the text is {len(text):,} characters long; at most "
                         f"{MAX_LENGTH:,}")
    source = text.strip()
    if not source:
        raise ValueError("architecture: the text is empty; write layers such as "
                         "\"FlatLayer(), FCLayer_Softmax(10)\"")
    try:
        tree = ast.parse(source, mode="eval").body
    except SyntaxError as exc:
        column = f" at column {exc.offset}" if exc.offset else ""
        raise ValueError(f"architecture: not valid Python{column}: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError):  # NUL bytes, absurd nesting
        raise ValueError("architecture: the text cannot be read as a list of layers") from None
    calls = tree.elts if isinstance(tree, (ast.Tuple, ast.List)) else [tree]
    if not calls:
        raise ValueError("architecture: no layers in the text")
    return [_layer(call, source) for call in calls]


def _layer(node: ast.expr, source: str) -> Layer:
    where = f"at column {node.col_offset + 1}"
    part = ast.get_source_segment(source, node) or ""
    part = part if len(part) <= 40 else part[:37] + "..."
    if not isinstance(node, ast.Call):
        raise ValueError(f"architecture: {where}, {part!r} is not a layer; write a call "
                         "such as ConvLayer_ReLU(32, 3)")
    if not isinstance(node.func, ast.Name) or node.func.id not in LAYER_TYPES:
        name = node.func.id if isinstance(node.func, ast.Name) \
            else ast.get_source_segment(source, node.func)
        raise ValueError(f"architecture: {where}, unknown layer {name!r}; choose one of "
                         f"{', '.join(LAYER_TYPES)}")
    cls = LAYER_TYPES[node.func.id]
    args = [_literal(arg, source, cls) for arg in node.args]
    kwargs = {}
    for keyword in node.keywords:
        if keyword.arg is None:
            raise ValueError(f"architecture: {where}, {cls.__name__}: '**' is not accepted; "
                             "name each argument")
        kwargs[keyword.arg] = _literal(keyword.value, source, cls)
    try:
        inspect.signature(cls).bind(*args, **kwargs)
    except TypeError as exc:
        raise ValueError(f"architecture: {where}, {cls.__name__}: {exc}; write "
                         f"{signature(cls)}") from None
    try:
        return cls(*args, **kwargs)
    except ValueError as exc:
        raise ValueError(f"architecture: {where}, {exc}") from None


def signature(cls: type) -> str:
    """cls's constructor as a user writes it, e.g. 'PoolLayer_Max(filter_width, stride=None,
    engine=None)'."""
    parameters = inspect.signature(cls).parameters.values()
    return f"{cls.__name__}(" + ", ".join(
        p.name if p.default is inspect.Parameter.empty else f"{p.name}={p.default!r}"
        for p in parameters) + ")"


def _literal(node: ast.expr, source: str, cls: type) -> object:
    where = f"at column {node.col_offset + 1}"
    value = None
    try:
        if isinstance(node, (ast.Constant, ast.UnaryOp)):
            value = ast.literal_eval(node)
    except ValueError:
        pass
    if isinstance(value, (bool, int, float, str)) or (isinstance(node, ast.Constant)
                                                      and value is None):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
            raise ValueError(f"architecture: {where}, {cls.__name__}: {value} is too large "
                             f"(at most {MAX_INT:,})")
        return value
    part = ast.get_source_segment(source, node) or ""
    part = part if len(part) <= 40 else part[:37] + "..."
    raise ValueError(f"architecture: {where}, {cls.__name__}: {part!r} is not a plain number, "
                     "text, True, False or None")


def describe_layers(layers: list[Layer]) -> str:
    """The text that parse_layers reads back into the same layers: each layer's
    constructor call, required arguments by position, the others by name where they
    differ from the default.  ValueError for a layer of a type it cannot name."""
    parts = []
    for layer in layers:
        cls = type(layer)
        if LAYER_TYPES.get(cls.__name__) is not cls:
            raise ValueError(f"architecture: {cls.__name__} is not one of cnn-numpy's layers, "
                             "so it has no text")
        config, parameters = layer.config(), inspect.signature(cls).parameters
        required = [config[name] for name, parameter in parameters.items()
                    if parameter.default is inspect.Parameter.empty]
        plain = cls(*required).config()  # what the defaults give (a pool's stride: its width)
        args = [repr(value) for value in required]
        args += [f"{name}={config[name]!r}" for name, parameter in parameters.items()
                 if parameter.default is not inspect.Parameter.empty
                 and config[name] != plain[name]]
        parts.append(f"{cls.__name__}({', '.join(args)})")
    return ", ".join(parts)

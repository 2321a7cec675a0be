"""The trace of one training step: the same step as net.train, bit for bit; every
explanation's terms add up to its number; every array equals PyTorch's for the same step."""

from __future__ import annotations

import copy
import json
import linecache
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnn_numpy import (
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
    Net,
    PoolLayer_Avg,
    PoolLayer_Max,
    ReLULayer,
    SigmoidLayer,
    TanhLayer,
)
from cnn_numpy.engines import ENGINES
from cnn_numpy.interop import to_torch
from cnn_numpy.interop.common import from_chw_order, hwc_order
from cnn_numpy.trace import trace_step
from cnn_numpy.trace.explanation import ROOT

#: cnn-numpy's own engines (a learner's may be registered in ENGINES at run time)
SHIPPED_ENGINES = [name for name, module in ENGINES.items()
                   if module.__name__.startswith("cnn_numpy.engines.")]
DTYPES = [np.float32, np.float64]
OPTIMIZERS = ["sgd", "momentum", "adam"]
LR = 0.05
#: |sum of the terms - the number| / (sum of the terms' absolute values), per dtype: the
#: issue's target in float64; float32 numbers are the layer's, the terms float64 sums
SUM_TOL = {np.float32: 1e-5, np.float64: 1e-6}
TORCH_TOL = {np.float32: 1e-5, np.float64: 1e-10}


def every_layer(engine: str) -> list:
    """Every shipped layer type: overlapping max pooling, a strided padded conv, BatchNorm
    on images and on vectors, and every dense kind (softmax and sigmoid hidden too).
    BatchNorm comes after activations: a bias right before it has a zero gradient, which
    Adam turns into steps of +-lr from rounding noise, different in every library."""
    return [ConvLayer_ReLU(3, 3, padding=1, engine=engine), PoolLayer_Max(3, 2, engine=engine),
            ConvLayer(4, 3, stride=2, padding=1, engine=engine), ReLULayer(), BatchNorm(),
            PoolLayer_Avg(2, 1, engine=engine), FlatLayer(), FCLayer(6), TanhLayer(),
            BatchNorm(momentum=0.2), Dropout(0.3), LeakyReLULayer(0.1), FCLayer_Sigmoid(5),
            SigmoidLayer(), FCLayer_Softmax(4), FCLayer_ReLU(7), FCLayer_Softmax(3)]


def sigmoid_output(engine: str) -> list:
    """The binary cross-entropy of an FCLayer_Sigmoid output, after "same" padding and
    max pooling whose last row no window reaches."""
    return [ConvLayer(2, 2, padding="same", engine=engine), PoolLayer_Max(2, engine=engine),
            FlatLayer(), FCLayer_Sigmoid(3)]


ARCHS = {"every_layer": (every_layer, (12, 12, 2), 3),
         "sigmoid_output": (sigmoid_output, (5, 5, 1), 3)}


def batch(arch: str, dtype, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    _, shape, k = ARCHS[arch]
    rng = np.random.default_rng(seed)
    return rng.random((4, *shape)).astype(dtype), rng.integers(0, k, 4)


def make_net(arch: str, engine: str, dtype, optimizer: str, fast: bool = False) -> Net:
    return Net(ARCHS[arch][0](engine), seed=1, dtype=dtype, optimizer=optimizer,
               weight_decay=0.01, fast=fast)


@cache
def traced(arch: str, engine: str, dtype, optimizer: str):
    """(the net before the traced step, its trace): one step taken first, so that the
    weights have moved and the optimizer has state."""
    net = make_net(arch, engine, dtype, optimizer)
    X, y = batch(arch, dtype)
    net.train(X, y, LR)
    before = copy.deepcopy(net)
    return before, trace_step(net, X, y, LR)


def relative_sum_error(e) -> float:
    return abs(e.total - e.value) / max(e.magnitude, 1e-300)


def check_explanation(e, trace, layer: int, name: str, index: tuple) -> None:
    """The terms add up to the number, the number is the trace's, the code line is real,
    and the explanation goes to JSON."""
    assert e.value == float(trace[e.layer, e.name][e.index])
    assert e.value == float(trace[layer, name][index])
    assert relative_sum_error(e) <= SUM_TOL[trace.dtype.type], (layer, name, index, e)
    for s in e.sources:
        assert s.exact and linecache.getline(str(ROOT / s.file), s.line).strip() == s.code, s
    json.dumps(e.to_dict())


# -- the same step as net.train ----------------------------------------------------------

def same_bits(a: Net, b: Net) -> None:
    for la, lb in zip(a.layers, b.layers, strict=True):
        for key in la.params():
            assert np.array_equal(la.params()[key], lb.params()[key]), (la, key)
        for key in la.buffers():
            assert np.array_equal(la.buffers()[key], lb.buffers()[key]), (la, key)
    assert a.optimizer.steps == b.optimizer.steps
    assert a.optimizer.state.keys() == b.optimizer.state.keys()
    for key, value in a.optimizer.state.items():
        assert np.array_equal(value, b.optimizer.state[key]), key
    assert a.rng.bit_generator.state == b.rng.bit_generator.state  # Dropout drew alike


@pytest.mark.parametrize("fast", [False, True], ids=["plain", "fast"])
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_trace_step_takes_the_step_net_train_takes(optimizer, fast):
    """Bit for bit the plain loop's step: what net.train always runs with fast=False, and
    runs on its first step with fast=True; the fast path agrees to rounding."""
    net = make_net("every_layer", "im2col", np.float32, optimizer, fast=fast)
    X, y = batch("every_layer", np.float32)
    net.train(X, y, LR)  # a fast net now runs its fast path
    plain, on_fast_path = copy.deepcopy(net), copy.deepcopy(net)
    plain.fast = False
    trace = trace_step(net, X, y, LR)
    _, cce, ce = plain.train(X, y, LR)
    same_bits(net, plain)
    assert (trace.cce, trace.ce) == (cce, ce) and net.fast is fast
    on_fast_path.train(X, y, LR)
    for la, lb in zip(net.layers, on_fast_path.layers, strict=True):
        for key in la.params():
            np.testing.assert_allclose(la.params()[key], lb.params()[key], rtol=1e-4,
                                       atol=1e-6)
    for layer in net.layers:  # the observers are gone
        assert not {"forward_propagate", "backpropagate", "backpropagate_dZ", "loss",
                    "build"} & set(vars(layer))


def test_trace_step_builds_a_new_net_as_net_train_does():
    net = make_net("every_layer", "stride_groups", np.float64, "adam")
    twin = copy.deepcopy(net)
    X, y = batch("every_layer", np.float64)
    trace = trace_step(net, X, y, LR)
    twin.train(X, y, LR)
    same_bits(net, twin)
    assert np.array_equal(trace[4, "running_var"], np.ones(4))  # as build made it
    assert np.array_equal(trace[0, "W_m_before"], np.zeros_like(trace[0, "W"]))


def test_a_refused_batch_leaves_the_net_as_net_train_does():
    net = make_net("every_layer", "im2col", np.float32, "sgd", fast=True)
    with pytest.raises(ValueError, match="one label per sample"):
        trace_step(net, *batch("every_layer", np.float32)[:1], np.arange(3), LR)
    for layer in net.layers:
        assert "forward_propagate" not in vars(layer)
    assert net.fast is True and not net.layers[0].built


def test_the_update_arrays_are_the_optimizers_own():
    for optimizer in OPTIMIZERS:
        _, trace = traced("every_layer", "im2col", np.float32, optimizer)
        for lt in trace.layers:
            for param in lt.layer.param_names:
                step = lt[f"{param}_step"]
                assert np.array_equal(lt[param] - step, lt[f"{param}_after"]), (lt, param)
                decay = trace.weight_decay * lt[param] * lt.decayed.get(param, False)
                assert np.array_equal(lt["d" + param] + decay, lt[f"{param}_grad"])


class Double(Layer):
    """A layer of one's own: A = 2 * A_prev."""

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def forward_propagate(self, A_prev):
        self._ensure_built(A_prev)
        return 2 * A_prev

    def backpropagate(self, dA):
        return 2 * dA


def test_a_layer_of_your_own_is_traced_but_not_explained():
    net = Net([FlatLayer(), Double(), Dropout(0.0), FCLayer_Softmax(3)], seed=0, fast=False)
    twin = copy.deepcopy(net)
    rng = np.random.default_rng(0)
    X, y = rng.random((4, 3, 3), dtype=np.float32), rng.integers(0, 3, 4)
    trace = trace_step(net, X, y, LR)
    twin.train(X, y, LR)
    same_bits(net, twin)
    assert np.array_equal(trace[1, "A"], 2 * trace[1, "A_prev"])
    assert np.array_equal(trace[1, "dA_prev"], 2 * trace[1, "dA"])
    with pytest.raises(ValueError, match="only the shipped layer types"):
        trace.explain(1, "A", (0, 0))
    check_explanation(trace.explain(1, "A_prev", (0, 4)), trace, 1, "A_prev", (0, 4))
    for name in ("A", "dA_prev"):  # Dropout(0.0) draws no mask
        check_explanation(trace.explain(2, name, (3, 8)), trace, 2, name, (3, 8))
    assert "mask" not in trace.names(2)


# -- explanations ------------------------------------------------------------------------

COMBOS = [(arch, engine, dtype, optimizer) for arch in ARCHS for engine in SHIPPED_ENGINES
          for dtype in DTYPES for optimizer in OPTIMIZERS]


@pytest.mark.parametrize("combo", COMBOS, ids=lambda c: f"{c[0]}-{c[1]}-{c[2].__name__}-{c[3]}")
def test_every_array_of_every_layer_is_explained(combo):
    """Each name of each layer, at its first and last index and at its largest number."""
    _, trace = traced(*combo)
    for lt in trace.layers:
        for name in lt.names():
            array = lt[name]
            largest = np.unravel_index(np.abs(array).argmax(), array.shape)
            for index in {(0,) * array.ndim, tuple(d - 1 for d in array.shape),
                          tuple(map(int, largest))}:
                check_explanation(trace.explain(lt.number, name, index), trace, lt.number,
                                  name, index)


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_drawn_numbers_are_the_sum_of_their_terms(data):
    combo = data.draw(st.sampled_from(COMBOS), label="combo")
    _, trace = traced(*combo)
    layer = data.draw(st.integers(0, len(trace.layers) - 1), label="layer")
    name = data.draw(st.sampled_from(trace.names(layer)), label="name")
    index = tuple(data.draw(st.integers(0, d - 1)) for d in trace[layer, name].shape)
    check_explanation(trace.explain(layer, name, index), trace, layer, name, index)


def test_a_conv_input_gradient_lists_each_weight_and_dz_that_reaches_it():
    """Brute force: every (a, b, f) and window (h, w) with h*s + a - pad = r and
    w*s + b - pad = q, each once."""
    _, trace = traced("every_layer", "naive", np.float64, "sgd")
    lt = trace.layers[2]  # ConvLayer(4, 3, stride=2, padding=1)
    n, oh, ow, nf = lt["dZ"].shape
    for r, q in [(0, 0), (2, 3), (4, 4)]:
        e = trace.explain(2, "dA_prev", (1, r, q, 2))
        got = sorted((t.inputs[0].index, t.inputs[1].index) for t in e.terms())
        want = sorted(((a, b, 2, f), (1, h, w, f)) for h in range(oh) for w in range(ow)
                      for a in range(3) for b in range(3) for f in range(nf)
                      if h * 2 + a - 1 == r and w * 2 + b - 1 == q)
        assert got == want


def test_a_max_pool_tells_its_window_and_where_the_gradient_goes():
    _, trace = traced("every_layer", "im2col", np.float64, "sgd")
    lt = trace.layers[1]  # PoolLayer_Max(3, 2): overlapping windows
    e = trace.explain(1, "A", (0, 1, 2, 1))
    window = lt["A_prev"][0, 2:5, 4:7, 1]
    assert e.details["window"] == window.tolist() and e.value == window.max()
    at = tuple(e.details["gradient_goes_to"])
    assert lt["A_prev"][at] == window.max() and e.terms()[0].inputs[0].index == at
    dx = trace.explain(1, "dA_prev", at)  # the windows it is the first maximum of
    winners = [w["A"] for w in dx.details["windows"] if w["receives"]]
    assert [tuple(w) for w in winners] == [t.inputs[0].index for t in dx.terms()]
    assert (0, 1, 2, 1) in [tuple(w) for w in winners]
    assert trace.explain(1, "dA_prev", (0, 11, 11, 0)).count == 0  # no window reaches it


def test_delegation_and_errors():
    _, trace = traced("every_layer", "im2col", np.float32, "adam")
    e = trace.explain(3, "A_prev", (0, 1, 1, 2))  # after a linear conv: its Z
    assert (e.layer, e.name, e.asked_as) == (2, "Z", "layer 3's A_prev")
    assert trace.explain(1, "dA", (0, 0, 0, 0)).name == "dA_prev"
    assert trace.explain(0, "A_prev", (0, 0, 0, 0)).value == trace.X[0, 0, 0, 0]
    assert trace.explain(-1, "cce").value == trace.cce
    with pytest.raises(ValueError, match="has no array 'dW'"):
        trace.explain(1, "dW", (0,))
    with pytest.raises(ValueError, match="give 4 integer indices"):
        trace.explain(0, "Z", (0, 0))
    with pytest.raises(ValueError, match="outside"):
        trace.explain(0, "Z", (4, 0, 0, 0))
    with pytest.raises(ValueError, match="layer must be"):
        trace.explain(17, "A", (0, 0))


def test_largest_rest_equation_and_json():
    _, trace = traced("every_layer", "im2col", np.float64, "momentum")
    e = trace.explain(0, "dW", (1, 2, 0, 1))  # 4 * 12 * 12 terms
    assert e.count == 4 * 12 * 12
    top = e.largest(5)
    assert [abs(t.value) for t in top] == sorted((abs(t.value) for t in top), reverse=True)
    assert abs(top[-1].value) >= max(abs(t.value) for t in e.terms()
                                     if t not in top) - 1e-300
    left, rest = e.rest(5)
    assert left == e.count - 5
    assert sum(t.value for t in top) + rest == pytest.approx(e.total, rel=1e-12, abs=1e-15)
    assert e.equation(3).startswith("dW[1, 2, 0, 1] = ") and f"({left + 2} more" in \
        e.equation(3)
    data = json.loads(json.dumps(e.to_dict(largest=5)))
    assert len(data["terms"]) == 5 and data["rest"]["count"] == left
    assert data["source"]["file"].startswith("cnn_numpy/") and data["value"] == e.value
    assert len(e.to_dict(largest=None)["terms"]) == e.count
    assert "A_prev[" in top[0].label and "dZ[" in top[0].label


# -- PyTorch -----------------------------------------------------------------------------

try:
    import torch
except ImportError:  # the checks below need it; the ones above do not
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed; "
                                 "`pip install torch==2.13.0` runs these checks")


def close(ours: np.ndarray, theirs, dtype, what: str, explain=None) -> None:
    """ours == theirs (both in our layout) to TORCH_TOL, relative to the array's largest
    number; where a number is a sum that cancels (a bias gradient, say) float32 cannot do
    that, and explain(index) gives its explanation: the error must then be within TORCH_TOL
    of the size of its terms (the sum of their absolute values), the scale of any sum's
    rounding."""
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)
    assert ours.shape == theirs.shape, what
    scale = max(float(np.abs(theirs).max(initial=0)), 1e-30)
    errors = np.abs(ours.astype(np.float64) - theirs)
    for index in zip(*np.nonzero(errors > TORCH_TOL[dtype] * scale), strict=True):
        size = explain(tuple(map(int, index))).magnitude if explain else scale
        assert errors[index] <= TORCH_TOL[dtype] * max(size, 1e-30), \
            f"{what}{list(index)}: ours {ours[index]}, torch's {theirs[index]}"


def from_torch_layout(t, order) -> np.ndarray:
    """A torch activation in our layout: NCHW -> NHWC; a vector flattened in (c, h, w)
    order -> (h, w, c) order."""
    a = t.detach().numpy() if hasattr(t, "detach") else t
    if a.ndim == 4:
        return a.transpose(0, 2, 3, 1)
    return from_chw_order(a, order) if order is not None else a


class TorchLayout:
    """Layer by layer, where net's layers are in model (to_torch(net)) and how their
    arrays look there: images NCHW, and vectors in Flatten's (c, h, w) order until a dense
    layer takes them."""

    def __init__(self, net: Net, model):
        self.groups, self.orders, start, order = [], [], 0, None
        shapes = [net.input_shape, *net.shapes(net.input_shape)]
        for i, layer in enumerate(net.layers):
            size = 1
            if isinstance(layer, ConvLayer):
                (top, bottom), (left, right) = layer.pads(*shapes[i][:2])
                size += ((top, left) != (bottom, right)) + (type(layer) is ConvLayer_ReLU)
            elif isinstance(layer, FCLayer):
                size += type(layer) is FCLayer_ReLU or (type(layer) is not FCLayer
                                                        and i < len(net.layers) - 1)
            self.groups.append(list(range(start, start + size)))
            start += size
            self.orders.append(order)  # the order of the layer's input
            order = hwc_order(shapes[i]) if isinstance(layer, FlatLayer) else \
                None if isinstance(layer, FCLayer) else order
        self.orders.append(order)
        assert start == len(model)

    def params(self, net: Net, model) -> list[Param]:
        out = []
        for i, layer in enumerate(net.layers):
            modules, order = [model[k] for k in self.groups[i]], self.orders[i]
            chw = np.arange(layer.input_shape[-1]) if order is None else order
            if isinstance(layer, ConvLayer):
                conv = modules[-1] if type(layer) is ConvLayer else modules[-2]
                out += [Param(i, "W", [conv.weight], lambda a: [a.transpose(3, 2, 0, 1)],
                              lambda t: t[0].transpose(2, 3, 1, 0)),
                        Param(i, "b", [conv.bias], lambda a: [a], lambda t: t[0])]
            elif isinstance(layer, FCLayer):
                out.append(Param(i, "W", [modules[0].weight, modules[0].bias],
                                 lambda a, o=chw: [a[:, :-1][:, o], a[:, -1]],
                                 lambda t, o=chw: np.column_stack([from_chw_order(t[0], o),
                                                                   t[1]])))
            elif isinstance(layer, BatchNorm):
                out += [Param(i, name, [p], lambda a, o=chw: [a[o]],
                              lambda t, o=chw: from_chw_order(t[0], o))
                        for name, p in (("gamma", modules[0].weight), ("beta", modules[0].bias))]
        return out


@dataclass
class Param:
    """One of our trained arrays and the torch tensors that hold it, with the layout
    changes both ways."""

    layer: int
    name: str
    tensors: list
    to_torch: Callable
    to_ours: Callable

    def ours(self, tensors) -> np.ndarray:
        return self.to_ours([t.detach().numpy() for t in tensors])


def torch_optimizer(optimizer: str, params: list[Param], trace):
    """torch's optimizer with net's settings and the state the trace started from; weight
    decay on the conv and dense weights, not on biases or BatchNorm's, as Net does."""
    decayed = [p.tensors[0] for p in params if p.name == "W"]
    others = [t for p in params for t in p.tensors if all(t is not q for q in decayed)]
    groups = [{"params": decayed, "weight_decay": trace.weight_decay},
              {"params": others, "weight_decay": 0.0}]
    config = trace.optimizer_config
    if optimizer == "sgd":
        return torch.optim.SGD(groups, lr=LR)
    if optimizer == "momentum":
        opt = torch.optim.SGD(groups, lr=LR, momentum=config["momentum"])
    else:
        opt = torch.optim.Adam(groups, lr=LR, betas=(config["beta1"], config["beta2"]),
                               eps=config["eps"])
    for p in params:
        before = {key: p.to_torch(trace[p.layer, f"{p.name}_{key}"])
                  for key in ("v_before", "m_before") if f"{p.name}_{key}" in
                  trace.names(p.layer)}
        for k, tensor in enumerate(p.tensors):
            state = {key: torch.tensor(np.ascontiguousarray(a[k])) for key, a in before.items()}
            opt.state[tensor] = {"momentum_buffer": state["v_before"]} if optimizer == \
                "momentum" else {"step": torch.tensor(float(trace.steps - 1)),
                                 "exp_avg": state["m_before"], "exp_avg_sq": state["v_before"]}
    return opt


def opt_decay(opt, tensor) -> float:
    return next(g for g in opt.param_groups if any(q is tensor for q in g["params"]))[
        "weight_decay"]


def torch_step(opt, tensor, before: dict, optimizer: str):
    """What torch's optimizer subtracted from a tensor, from its gradient and state
    (W_before - W_after would lose the step's low digits to cancellation in float32)."""
    group = next(g for g in opt.param_groups if any(q is tensor for q in g["params"]))
    state, lr = opt.state[tensor], group["lr"]
    if optimizer == "sgd":
        return lr * (tensor.grad + group["weight_decay"] * before[tensor])
    if optimizer == "momentum":
        return lr * state["momentum_buffer"]
    (beta1, beta2), t = group["betas"], float(state["step"])
    m_hat, v_hat = state["exp_avg"] / (1 - beta1 ** t), state["exp_avg_sq"] / (1 - beta2 ** t)
    return lr * m_hat / (torch.sqrt(v_hat) + group["eps"])


def run_torch(net: Net, trace, layout: TorchLayout, model):
    """One forward and backward pass of model on the trace's batch: each layer's input,
    Z (a conv or dense layer's) and output as torch tensors that keep their gradients,
    and each sample's loss."""
    x = torch.tensor(np.ascontiguousarray(trace.X.transpose(0, 3, 1, 2)), requires_grad=True)
    inputs, zs, outputs, a = [], [], [], x
    for group in layout.groups:
        inputs.append(a)
        z = None
        for k in group:
            a = model[k](a)
            a.retain_grad()
            z = a if isinstance(model[k], (torch.nn.Conv2d, torch.nn.Linear)) else z
        zs.append(z)
        outputs.append(a)
    logits = outputs[-1]
    if isinstance(net.layers[-1], FCLayer_Softmax):
        losses = torch.nn.functional.cross_entropy(
            logits, torch.tensor(trace.Y.argmax(axis=1)), reduction="none")
    else:
        losses = torch.nn.functional.binary_cross_entropy_with_logits(
            logits, torch.tensor(trace.Y), reduction="none").sum(dim=1)
    losses.mean().backward()
    return inputs, zs, outputs, losses


def batchnorm_statistics(lt, x) -> dict:
    """mu, var, std and x_hat of BatchNorm's input x, computed by torch."""
    axes = (0, 2, 3) if x.ndim == 4 else (0,)
    shape = (1, -1, 1, 1) if x.ndim == 4 else (1, -1)
    mu, var = x.mean(dim=axes), x.var(dim=axes, unbiased=False)
    std = torch.sqrt(var + lt.layer.eps)
    return {"mu": mu, "var": var, "std": std,
            "x_hat": (x - mu.reshape(shape)) / std.reshape(shape)}


def compare_layer(trace, lt, layout: TorchLayout, tensors, dtype) -> None:
    """Every activation and gradient of one layer against torch's."""
    inputs, zs, outputs = tensors
    i, last = lt.number, lt.number == len(trace.layers) - 1

    def check(name, tensor, order):
        close(lt[name], from_torch_layout(tensor, order), dtype, f"layer {i} {name}",
              lambda index: trace.explain(i, name, index))

    check("A_prev", inputs[i], layout.orders[i])
    check("dA_prev", inputs[i].grad, layout.orders[i])
    if zs[i] is not None:
        check("Z", zs[i], None)
        check("dZ", zs[i].grad, None)
    if last:
        activation = torch.softmax if isinstance(lt.layer, FCLayer_Softmax) else \
            lambda z, dim: torch.sigmoid(z)
        check("A", activation(zs[i], dim=1), None)
        return
    check("A", outputs[i], layout.orders[i + 1])
    check(lt.arriving, outputs[i].grad, layout.orders[i + 1])
    if isinstance(lt.layer, BatchNorm):
        for name, value in batchnorm_statistics(lt, inputs[i].detach()).items():
            check(name, value, layout.orders[i])


def compare_update(trace, params: list[Param], opt, before: dict, optimizer: str,
                   dtype) -> None:
    """The gradient with weight decay, the step, the optimizer's state and the weights
    after, against torch's."""
    for p in params:
        i, name = p.layer, p.name
        theirs = {f"{name}_grad": p.ours([t.grad + before[t] * opt_decay(opt, t)
                                          for t in p.tensors]),
                  f"{name}_after": p.ours(p.tensors),
                  f"{name}_step": p.ours([torch_step(opt, t, before, optimizer)
                                          for t in p.tensors])}
        if optimizer == "momentum":
            theirs[f"{name}_v"] = p.ours([opt.state[t]["momentum_buffer"] for t in p.tensors])
        if optimizer == "adam":
            theirs[f"{name}_m"] = p.ours([opt.state[t]["exp_avg"] for t in p.tensors])
            theirs[f"{name}_v"] = p.ours([opt.state[t]["exp_avg_sq"] for t in p.tensors])
        for key, value in theirs.items():
            close(trace[i, key], value, dtype, f"layer {i} {key}")


def torch_model(net: Net, trace, layout: TorchLayout | None = None):
    """to_torch(net) in training mode, its Dropout using the trace's masks."""
    model = to_torch(net)
    layout = layout or TorchLayout(net, model)
    for number, (group, layer) in enumerate(zip(layout.groups, net.layers, strict=True)):
        if isinstance(layer, Dropout):
            mask = trace[number, "mask"]
            model[group[0]] = Mask(torch.tensor(mask.transpose(0, 3, 1, 2) if mask.ndim == 4
                                                else mask))
    return model.train(), layout


@needs_torch
@pytest.mark.parametrize("combo", COMBOS, ids=lambda c: f"{c[0]}-{c[1]}-{c[2].__name__}-{c[3]}")
def test_the_trace_equals_pytorchs_step(combo):
    """The same step in PyTorch, from the same weights, optimizer state and Dropout masks:
    every layer's input, Z, output and their gradients, BatchNorm's statistics, the
    loss, each weight's gradient, step, optimizer state and value after."""
    _, _, dtype, optimizer = combo
    net, trace = traced(*combo)
    model, layout = torch_model(net, trace)
    params = layout.params(net, model)
    opt = torch_optimizer(optimizer, params, trace)
    before = {t: t.detach().clone() for p in params for t in p.tensors}
    inputs, zs, outputs, losses = run_torch(net, trace, layout, model)
    for p in params:
        theirs = p.ours([t.grad for t in p.tensors])
        close(trace[p.layer, "d" + p.name], theirs, dtype, f"layer {p.layer} d{p.name}",
              lambda index, p=p: trace.explain(p.layer, "d" + p.name, index))
        # the update from the same gradients: float32 cannot keep the low digits of a
        # gradient that is a cancelling sum (above), and Adam would carry them to the weight
        for tensor, ours in zip(p.tensors, p.to_torch(trace[p.layer, "d" + p.name]),
                                strict=True):
            tensor.grad = torch.tensor(np.ascontiguousarray(ours))
    opt.step()
    close(trace.loss, losses, dtype, "loss", lambda index: trace.explain(-1, "loss", index))
    assert trace.cce == pytest.approx(losses.mean().item(), rel=TORCH_TOL[dtype])
    for lt in trace.layers:
        compare_layer(trace, lt, layout, (inputs, zs, outputs), dtype)
        if isinstance(lt.layer, BatchNorm):
            bn = model[layout.groups[lt.number][0]]
            close(lt["running_mean_after"], bn.running_mean, dtype, "running_mean")
            close(lt["running_var_after"], bn.running_var, dtype, "running_var")
    compare_update(trace, params, opt, before, optimizer, dtype)


if torch is not None:
    class Mask(torch.nn.Module):
        """Dropout with the trace's mask (torch's random stream is not ours)."""

        def __init__(self, mask):
            super().__init__()
            self.mask = mask

        def forward(self, a):
            return a * self.mask

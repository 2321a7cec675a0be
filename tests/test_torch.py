"""Cross-checks against PyTorch: every layer's forward, gradients and one SGD step, and a
whole training step of the reference CNN."""

from __future__ import annotations

import numpy as np
import pytest

from cnn_numpy import (
    SGD,
    BatchNorm,
    ConvLayer,
    ConvLayer_ReLU,
    Dropout,
    FCLayer,
    FCLayer_ReLU,
    FCLayer_Sigmoid,
    FCLayer_Softmax,
    FlatLayer,
    LeakyReLULayer,
    Net,
    PoolLayer_Avg,
    PoolLayer_Max,
    ReLULayer,
    SigmoidLayer,
    TanhLayer,
)
from cnn_numpy.engines import ENGINES
from cnn_numpy.fast import threads
from cnn_numpy.fast.batchnorm import BatchNormOnShards, ConvBatchNormMaxPool

torch = pytest.importorskip(
    "torch", reason="PyTorch is not installed; `pip install torch==2.13.0` runs these checks")
F = torch.nn.functional

#: worst relative error seen per dtype, printed at the end of the run (see conftest.py)
WORST: dict[str, float] = {"float32": 0.0, "float64": 0.0}
TOL = {np.float32: 2e-5, np.float64: 1e-11}
NEW_LAYER_TOL = {np.float32: 1e-5, np.float64: 1e-10}  # the new-layers issue's targets
LR = 0.05


def close(ours: np.ndarray, theirs, dtype, tol: dict | None = None) -> None:
    """Assert ours == theirs within dtype tolerance, relative to the array's scale."""
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)
    assert ours.shape == theirs.shape
    err = float(np.abs(ours - theirs).max() / max(np.abs(theirs).max(), 1.0))
    key = np.dtype(dtype).name
    WORST[key] = max(WORST[key], err)
    assert err < (tol or TOL)[dtype], f"relative error {err:.2e}"


def nchw(a: np.ndarray, grad: bool = True):
    return torch.tensor(a.transpose(0, 3, 1, 2).copy(), requires_grad=grad)


def as_nhwc(t) -> np.ndarray:
    return t.detach().numpy().transpose(0, 2, 3, 1)


def sgd_step(layer) -> None:
    SGD().step([(k, p, layer.grads()[k]) for k, p in layer.params().items()], LR)


DTYPES = [np.float32, np.float64]
CONV_CASES = [  # (n, ih, iw, c, nf, fw, stride, padding)
    (3, 8, 8, 1, 4, 3, 1, 0),
    (2, 9, 7, 3, 2, 3, 2, 1),
    (2, 7, 7, 2, 3, 5, 1, "same"),
    (2, 8, 8, 2, 2, 4, 3, "same"),
    (2, 6, 6, 2, 3, 2, 2, "valid"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("engine", list(ENGINES))
@pytest.mark.parametrize("case", CONV_CASES, ids=str)
@pytest.mark.parametrize("cls", [ConvLayer, ConvLayer_ReLU])
def test_conv_matches_torch(cls, case, engine, dtype):
    n, ih, iw, c, nf, fw, s, p = case
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, ih, iw, c)).astype(dtype)
    layer = cls(nf, fw, stride=s, padding=p, engine=engine)
    layer.build(X.shape, rng, dtype)
    layer.b[:] = rng.standard_normal(nf)
    x, w, b = nchw(X), torch.tensor(layer.W.transpose(3, 2, 0, 1).copy(), requires_grad=True), \
        torch.tensor(layer.b.copy(), requires_grad=True)
    (top, bottom), (left, right) = layer.pads(ih, iw)
    out_t = F.conv2d(F.pad(x, (left, right, top, bottom)), w, b, stride=s)
    if cls is ConvLayer_ReLU:
        out_t = F.relu(out_t)
    out = layer.forward_propagate(X)
    close(out, as_nhwc(out_t), dtype)

    G = rng.standard_normal(out.shape).astype(dtype)
    dX = layer.backpropagate(G)
    (out_t * nchw(G, grad=False)).sum().backward()
    close(dX, as_nhwc(x.grad), dtype)
    close(layer.dW, w.grad.numpy().transpose(2, 3, 1, 0), dtype)
    close(layer.db, b.grad, dtype)

    sgd_step(layer)
    torch.optim.SGD([w, b], lr=LR).step()
    close(layer.W, w.detach().numpy().transpose(2, 3, 1, 0), dtype)
    close(layer.b, b, dtype)


POOL_CASES = [(2, 8, 8, 3, 2, None), (2, 7, 9, 2, 3, 2), (1, 9, 9, 2, 3, 1), (2, 7, 7, 1, 2, 3)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("engine", list(ENGINES))
@pytest.mark.parametrize("case", POOL_CASES, ids=str)
@pytest.mark.parametrize("cls", [PoolLayer_Max, PoolLayer_Avg])
def test_pool_matches_torch(cls, case, engine, dtype):
    n, ih, iw, c, fw, s = case
    rng = np.random.default_rng(1)
    X = rng.standard_normal((n, ih, iw, c)).astype(dtype)
    layer = cls(fw, stride=s, engine=engine)
    pool = F.max_pool2d if cls is PoolLayer_Max else F.avg_pool2d
    x = nchw(X)
    out_t = pool(x, fw, stride=layer.stride)
    out = layer.forward_propagate(X)
    close(out, as_nhwc(out_t), dtype)
    G = rng.standard_normal(out.shape).astype(dtype)
    (out_t * nchw(G, grad=False)).sum().backward()
    close(layer.backpropagate(G), as_nhwc(x.grad), dtype)


@pytest.mark.parametrize("engine", list(ENGINES))
def test_max_pool_ties_route_like_torch(engine):
    """After a ReLU many windows hold several equal maxima: the gradient must go where
    PyTorch sends it."""
    X = np.maximum(np.random.default_rng(2).integers(-2, 2, (2, 8, 8, 3)), 0).astype(np.float64)
    for fw, s in [(2, 2), (3, 1), (3, 2)]:
        layer = PoolLayer_Max(fw, stride=s, engine=engine)
        out = layer.forward_propagate(X)
        G = np.random.default_rng(3).standard_normal(out.shape)
        x = nchw(X)
        (F.max_pool2d(x, fw, stride=s) * nchw(G, grad=False)).sum().backward()
        # equal up to the order in which overlapping windows add; a mis-routed tie is O(1)
        np.testing.assert_allclose(layer.backpropagate(G), as_nhwc(x.grad), rtol=0, atol=1e-12)


ACTIVATIONS = {FCLayer: lambda z: z, FCLayer_ReLU: F.relu, FCLayer_Sigmoid: torch.sigmoid,
               FCLayer_Softmax: lambda z: torch.softmax(z, dim=1)}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls", list(ACTIVATIONS))
def test_fc_matches_torch(cls, dtype):
    rng = np.random.default_rng(4)
    X = rng.standard_normal((6, 11)).astype(dtype)
    layer = cls(7)
    layer.build(X.shape, rng, dtype)
    layer.W[:, -1] = rng.standard_normal(7)
    x = torch.tensor(X, requires_grad=True)
    w = torch.tensor(layer.W[:, :-1].copy(), requires_grad=True)
    b = torch.tensor(layer.W[:, -1].copy(), requires_grad=True)
    out_t = ACTIVATIONS[cls](F.linear(x, w, b))
    out = layer.forward_propagate(X)
    close(out, out_t, dtype)
    G = rng.standard_normal(out.shape).astype(dtype)
    dX = layer.backpropagate(G)
    (out_t * torch.tensor(G)).sum().backward()
    close(dX, x.grad, dtype)
    close(layer.dW[:, :-1], w.grad, dtype)
    close(layer.dW[:, -1], b.grad, dtype)
    sgd_step(layer)
    torch.optim.SGD([w, b], lr=LR).step()
    close(layer.W[:, :-1], w, dtype)
    close(layer.W[:, -1], b, dtype)


def reference_cnn(engine, dtype, seed=0, fast=True) -> Net:
    return Net([ConvLayer_ReLU(32, 3), PoolLayer_Max(2), FlatLayer(), FCLayer_ReLU(100),
                FCLayer_Softmax(10)], engine=engine, seed=seed, dtype=dtype, fast=fast)


class TorchReference(torch.nn.Module):
    """The reference CNN in PyTorch, with weights copied from a built cnn_numpy Net."""

    def __init__(self, net: Net):
        super().__init__()
        conv, _, _, fc1, fc2 = net.layers
        t = lambda a: torch.nn.Parameter(torch.tensor(np.ascontiguousarray(a)))  # noqa: E731
        self.conv_w, self.conv_b = t(conv.W.transpose(3, 2, 0, 1)), t(conv.b)
        self.fc1_w, self.fc1_b = t(fc1.W[:, :-1]), t(fc1.W[:, -1])
        self.fc2_w, self.fc2_b = t(fc2.W[:, :-1]), t(fc2.W[:, -1])

    def forward(self, x):  # x: (n, 1, 28, 28); returns logits
        a = F.max_pool2d(F.relu(F.conv2d(x, self.conv_w, self.conv_b)), 2)
        a = a.permute(0, 2, 3, 1).flatten(1)  # flatten channels-last, as FlatLayer does
        return F.linear(F.relu(F.linear(a, self.fc1_w, self.fc1_b)), self.fc2_w, self.fc2_b)


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "reference"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("engine", [name for name in ENGINES if name != "naive"])
def test_reference_cnn_training_steps_match_torch(engine, dtype, fast):
    rng = np.random.default_rng(5)
    X = rng.random((32, 28, 28)).astype(dtype)
    y = rng.integers(0, 10, 32)
    net = reference_cnn(engine, dtype, fast=fast)
    net.predict(X[:1])  # builds the weights
    model = TorchReference(net)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    x = torch.tensor(X[:, None])
    for step in range(3):
        _, cce, ce = net.train(X, y, LR)
        opt.zero_grad()
        logits = model(x)
        loss = F.cross_entropy(logits, torch.tensor(y))
        loss.backward()
        opt.step()
        assert cce == pytest.approx(loss.item(), rel=TOL[dtype] * 10), step
        assert ce == float((logits.argmax(1).numpy() != y).mean())
    conv, _, _, fc1, fc2 = net.layers
    close(conv.W, model.conv_w.detach().numpy().transpose(2, 3, 1, 0), dtype)
    close(conv.b, model.conv_b, dtype)
    close(fc1.W[:, :-1], model.fc1_w, dtype)
    close(fc1.W[:, -1], model.fc1_b, dtype)
    close(fc2.W[:, :-1], model.fc2_w, dtype)
    close(fc2.W[:, -1], model.fc2_b, dtype)
    close(net.predict(X), torch.softmax(model(x), dim=1), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls", [FCLayer_Softmax, FCLayer_Sigmoid])
def test_output_layer_loss_and_gradient_match_torch(cls, dtype):
    """Softmax: cross_entropy (mean); sigmoid: binary cross-entropy with logits, summed over
    outputs and averaged over the batch."""
    rng = np.random.default_rng(6)
    X = rng.standard_normal((8, 5)).astype(dtype)
    y = rng.integers(0, 4, 8)
    layer = cls(4)
    layer.build(X.shape, rng, dtype)
    layer.forward_propagate(X)
    loss, dZ = layer.loss(np.eye(4, dtype=dtype)[y])
    z = torch.tensor(layer.Z.copy(), requires_grad=True)
    if cls is FCLayer_Softmax:
        loss_t = F.cross_entropy(z, torch.tensor(y))
    else:
        target = torch.tensor(np.eye(4, dtype=dtype)[y])
        loss_t = F.binary_cross_entropy_with_logits(z, target, reduction="sum") / len(y)
    loss_t.backward()
    assert loss == pytest.approx(loss_t.item(), rel=TOL[dtype] * 10)
    close(dZ, z.grad, dtype)


def to_torch_layout(a: np.ndarray):
    """(n, h, w, c) -> NCHW; (n, k) unchanged."""
    return torch.tensor(a.transpose(0, 3, 1, 2).copy() if a.ndim == 4 else a, requires_grad=True)


def from_torch_layout(t) -> np.ndarray:
    a = t.detach().numpy()
    return a.transpose(0, 2, 3, 1) if a.ndim == 4 else a


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize("shape", [(6, 5, 4, 3), (16, 7)], ids=["2d", "1d"])
def test_batchnorm_matches_torch(shape, training, dtype):
    """BatchNorm2d / BatchNorm1d: output, input and weight gradients, running statistics
    (unbiased variance in the running average) after several training batches."""
    rng = np.random.default_rng(7)
    c = shape[-1]
    layer = BatchNorm(momentum=0.2, eps=1e-3)
    module = (torch.nn.BatchNorm2d if len(shape) == 4 else torch.nn.BatchNorm1d)(
        c, momentum=0.2, eps=1e-3, dtype=torch.float64 if dtype == np.float64 else torch.float32)
    for step in range(3):  # running statistics after a few batches of shifted data
        X = (rng.standard_normal(shape) * (step + 1) + step).astype(dtype)
        layer.training = True
        layer.forward_propagate(X)
        module.train()
        module(to_torch_layout(X))
    layer.gamma[:] = rng.standard_normal(c)
    layer.beta[:] = rng.standard_normal(c)
    with torch.no_grad():
        module.weight[:] = torch.tensor(layer.gamma)
        module.bias[:] = torch.tensor(layer.beta)
    tol = NEW_LAYER_TOL
    close(layer.running_mean, module.running_mean, dtype, tol)
    close(layer.running_var, module.running_var, dtype, tol)

    X = (rng.standard_normal(shape) * 2 - 1).astype(dtype)
    layer.training = training
    module.train(training)
    out = layer.forward_propagate(X)
    x = to_torch_layout(X)
    out_t = module(x)
    close(out, from_torch_layout(out_t), dtype, tol)
    G = rng.standard_normal(out.shape).astype(dtype)
    (out_t * to_torch_layout(G).detach()).sum().backward()
    close(layer.backpropagate(G), from_torch_layout(x.grad), dtype, tol)
    close(layer.dgamma, module.weight.grad, dtype, tol)
    close(layer.dbeta, module.bias.grad, dtype, tol)
    close(layer.running_mean, module.running_mean, dtype, tol)
    close(layer.running_var, module.running_var, dtype, tol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(70, 5, 4, 3), (70, 7)], ids=["2d", "1d"])
def test_batchnorm_on_shards_matches_torch_on_the_whole_batch(shape, dtype):
    """The fast path's BatchNorm on uneven shards of one batch, computed on two threads:
    the output, gradients and running statistics of BatchNorm on the whole
    batch.  The data sit far from 0 (mean 20, spread about 1), where the variance as
    mean(x^2) - mean(x)^2 would be off by 4e-4 in float32."""
    rng = np.random.default_rng(8)
    c = shape[-1]
    layer = BatchNorm(momentum=0.3)
    module = (torch.nn.BatchNorm2d if len(shape) == 4 else torch.nn.BatchNorm1d)(
        c, momentum=0.3, dtype=torch.float64 if dtype == np.float64 else torch.float32)
    X = (20 + rng.standard_normal(shape) * rng.uniform(0.5, 2, c)).astype(dtype)
    cuts = [0, 9, 40, 70]
    threads.set_threads(2)
    try:
        layer.build(X.shape, rng, dtype)
        op = BatchNormOnShards(layer)
        parts = op.forward_parts([X[a:b] for a, b in zip(cuts, cuts[1:], strict=False)])
        G = rng.standard_normal(shape).astype(dtype)
        dparts = op.backward_parts([G[a:b] for a, b in zip(cuts, cuts[1:], strict=False)],
                                   owned=False, need_dx=True)
        layer.dgamma, layer.dbeta = op.gradients()[0].values()
    finally:
        threads.set_threads(None)
    x = to_torch_layout(X)
    out_t = module(x)
    (out_t * to_torch_layout(G).detach()).sum().backward()
    tol = NEW_LAYER_TOL
    close(np.concatenate(parts), from_torch_layout(out_t), dtype, tol)
    close(np.concatenate(dparts), from_torch_layout(x.grad), dtype, tol)
    close(layer.dgamma, module.weight.grad, dtype, tol)
    close(layer.dbeta, module.bias.grad, dtype, tol)
    close(layer.running_mean, module.running_mean, dtype, tol)
    close(layer.running_var, module.running_var, dtype, tol)



@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size, engine, relu", [(10, "im2col", True), (9, "im2col", True),
                                                (10, "stride_groups", False)],
                         ids=["window-order", "odd-size", "stride-groups-no-relu"])
def test_conv_batchnorm_max_pool_on_shards_matches_torch(size, engine, relu, dtype):
    """The fast path's fused deep block on uneven shards of one batch, on two threads:
    torch's conv + BatchNorm + ReLU + max pool on the whole batch, for the output,
    every gradient and the running statistics.  size 10: Z is 8 x 8, written in pool
    window order; 9: a 7 x 7 Z whose last row and column no window reads."""
    rng = np.random.default_rng(9)
    X = rng.random((70, size, size, 3)).astype(dtype)
    layers = [ConvLayer(5, 3, engine=engine), BatchNorm(momentum=0.3),
              ReLULayer() if relu else None, PoolLayer_Max(2, engine=engine)]
    shape = X.shape[1:]
    for layer in filter(None, layers):
        layer.build((None, *shape), rng, dtype)
        shape = layer.output_shape(shape)
    conv, bn, _, pool = layers
    conv.b[...] = 3 + rng.standard_normal(conv.b.shape)  # BatchNorm takes this mean out
    bn.gamma[...] = rng.uniform(-1.5, 1.5, bn.gamma.shape)  # a negative scale flips the max
    bn.beta[...] = 0.2 * rng.standard_normal(bn.beta.shape)
    cuts = [0, 9, 40, 70]
    G = rng.standard_normal((70, *shape)).astype(dtype)
    threads.set_threads(2)
    try:
        op = ConvBatchNormMaxPool(*layers)
        parts = op.forward_parts([X[a:b] for a, b in zip(cuts, cuts[1:], strict=False)])
        dparts = op.backward_parts([G[a:b].copy() for a, b in zip(cuts, cuts[1:], strict=False)],
                                   owned=True, need_dx=True)
        (dW, db), (dgamma, dbeta) = (grads.values() for grads in op.gradients()[:2])
    finally:
        threads.set_threads(None)
    module = torch.nn.BatchNorm2d(5, momentum=0.3, dtype=torch.float64 if dtype == np.float64
                                  else torch.float32)
    with torch.no_grad():
        module.weight[...] = torch.from_numpy(bn.gamma)
        module.bias[...] = torch.from_numpy(bn.beta)
    x = to_torch_layout(X)
    W = torch.tensor(conv.W.transpose(3, 2, 0, 1).copy(), requires_grad=True)
    b = torch.tensor(conv.b, requires_grad=True)
    Z = module(F.conv2d(x, W, b))
    out_t = F.max_pool2d(F.relu(Z) if relu else Z, 2)
    (out_t * to_torch_layout(G).detach()).sum().backward()
    tol = NEW_LAYER_TOL
    close(np.concatenate(parts), from_torch_layout(out_t), dtype, tol)
    close(np.concatenate(dparts), from_torch_layout(x.grad), dtype, tol)
    close(dW, W.grad.detach().numpy().transpose(2, 3, 1, 0), dtype, tol)
    # db is 0 but for rounding (BatchNorm takes the mean out), in torch too: against dW's scale
    assert np.abs(db).max() <= 10 * tol[dtype] * np.abs(dW).max()
    close(dgamma, module.weight.grad, dtype, tol)
    close(dbeta, module.bias.grad, dtype, tol)
    close(bn.running_mean, module.running_mean, dtype, tol)
    close(bn.running_var, module.running_var, dtype, tol)

ACTIVATION_LAYERS = {ReLULayer(): F.relu, LeakyReLULayer(): F.leaky_relu,
                     LeakyReLULayer(0.2): lambda z: F.leaky_relu(z, 0.2), TanhLayer(): torch.tanh,
                     SigmoidLayer(): torch.sigmoid}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layer", list(ACTIVATION_LAYERS), ids=repr)
def test_activation_layers_match_torch(layer, dtype):
    X = (np.random.default_rng(8).standard_normal((4, 5, 6, 3)) * 3).astype(dtype)
    x = to_torch_layout(X)
    out_t = ACTIVATION_LAYERS[layer](x)
    for training in (True, False):  # no difference between the modes
        layer.training = training
        out = layer.forward_propagate(X)
        close(out, from_torch_layout(out_t), dtype, NEW_LAYER_TOL)
    G = np.random.default_rng(9).standard_normal(out.shape).astype(dtype)
    (out_t * to_torch_layout(G).detach()).sum().backward()
    close(layer.backpropagate(G), from_torch_layout(x.grad), dtype, NEW_LAYER_TOL)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_dropout_matches_torch(rate, dtype):
    """Training: with the same mask, torch's dropout scales kept units by 1 / (1 - rate), as
    we do (the mask is read from our output: random streams differ); inference: identity."""
    X = (np.random.default_rng(10).random((64, 50)) + 0.5).astype(dtype)  # no zeros in X
    layer = Dropout(rate)
    layer.rng = np.random.default_rng(11)
    layer.training = True
    out = layer.forward_propagate(X)
    kept = out != 0
    assert abs(1 - kept.mean() - rate) < 0.03
    x = torch.tensor(X, requires_grad=True)
    out_t = x * torch.tensor(kept) / (1 - rate)  # F.dropout's formula with our mask
    close(out, out_t, dtype, NEW_LAYER_TOL)
    G = np.random.default_rng(12).standard_normal(X.shape).astype(dtype)
    (out_t * torch.tensor(G)).sum().backward()
    close(layer.backpropagate(G), x.grad, dtype, NEW_LAYER_TOL)
    layer.training = False
    close(layer.forward_propagate(X), F.dropout(torch.tensor(X), rate, training=False), dtype,
          NEW_LAYER_TOL)
    close(layer.backpropagate(G), G, dtype, NEW_LAYER_TOL)


def batchnorm_cnn(dtype, fast=True) -> Net:
    # BatchNorm after the ReLUs: a bias right before a BatchNorm gets a zero gradient, which
    # Adam turns into steps of +-lr driven by rounding noise, different in every library.
    return Net([ConvLayer_ReLU(4, 3), BatchNorm(), PoolLayer_Max(2), FlatLayer(),
                FCLayer_ReLU(12), BatchNorm(), TanhLayer(), FCLayer_Softmax(10)], seed=0,
               dtype=dtype, optimizer="adam", weight_decay=0.01, fast=fast)


class TorchBatchNormCNN(torch.nn.Module):
    """batchnorm_cnn in PyTorch, weights copied from the built Net."""

    def __init__(self, net: Net, dtype):
        super().__init__()
        conv, bn1, _, _, fc1, bn2, _, fc2 = net.layers
        t = lambda a: torch.nn.Parameter(torch.tensor(np.ascontiguousarray(a)))  # noqa: E731
        self.conv_w, self.conv_b = t(conv.W.transpose(3, 2, 0, 1)), t(conv.b)
        self.fc1_w, self.fc1_b = t(fc1.W[:, :-1]), t(fc1.W[:, -1])
        self.fc2_w, self.fc2_b = t(fc2.W[:, :-1]), t(fc2.W[:, -1])
        torch_dtype = torch.float64 if dtype == np.float64 else torch.float32
        self.bn1 = torch.nn.BatchNorm2d(4, dtype=torch_dtype)
        self.bn2 = torch.nn.BatchNorm1d(12, dtype=torch_dtype)

    def forward(self, x):
        a = F.max_pool2d(self.bn1(F.relu(F.conv2d(x, self.conv_w, self.conv_b))), 2)
        a = a.permute(0, 2, 3, 1).flatten(1)
        a = torch.tanh(self.bn2(F.relu(F.linear(a, self.fc1_w, self.fc1_b))))
        return F.linear(a, self.fc2_w, self.fc2_b)


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "reference"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_batchnorm_net_with_adam_and_weight_decay_matches_torch(dtype, fast):
    """Three Adam steps with coupled L2 weight decay on the conv and dense weights only
    (torch: Adam(weight_decay=...) on those, none on biases and BatchNorm), then inference
    with the running statistics."""
    # Adam divides each step by sqrt(v): where a gradient is small its float32 rounding
    # reaches the weights magnified, so after three steps the float32 bound is looser.
    tol = {np.float32: 5e-5, np.float64: NEW_LAYER_TOL[np.float64]}
    rng = np.random.default_rng(13)
    X = rng.random((16, 12, 12)).astype(dtype)
    y = rng.integers(0, 10, 16)
    net = batchnorm_cnn(dtype, fast)
    net.build((12, 12, 1))
    model = TorchBatchNormCNN(net, dtype)
    decayed = [model.conv_w, model.fc1_w, model.fc2_w]
    others = [p for p in model.parameters() if all(p is not q for q in decayed)]
    opt = torch.optim.Adam([{"params": decayed, "weight_decay": 0.01},
                            {"params": others, "weight_decay": 0.0}], lr=0.01)
    x = torch.tensor(X[:, None])
    for step in range(3):
        _, cce, _ = net.train(X, y, 0.01)
        model.train()
        opt.zero_grad()
        loss = F.cross_entropy(model(x), torch.tensor(y))
        loss.backward()
        opt.step()
        assert cce == pytest.approx(loss.item(), rel=tol[dtype] * 10), step
    conv, bn1, _, _, fc1, bn2, _, fc2 = net.layers
    close(conv.W, model.conv_w.detach().numpy().transpose(2, 3, 1, 0), dtype, tol)
    close(fc1.W[:, :-1], model.fc1_w, dtype, tol)
    close(bn1.gamma, model.bn1.weight, dtype, tol)
    close(bn2.beta, model.bn2.bias, dtype, tol)
    close(fc2.W[:, -1], model.fc2_b, dtype, tol)
    close(bn1.running_var, model.bn1.running_var, dtype, tol)
    close(bn2.running_mean, model.bn2.running_mean, dtype, tol)
    model.eval()
    close(net.predict(X), torch.softmax(model(x), dim=1), dtype, tol)

"""Writes notebooks/tutorial.ipynb from the cells below and runs it, saving its outputs.

    python notebooks/build_tutorial.py
    python notebooks/build_tutorial.py --exercises    # the exercise mode: exercises.ipynb

Edit the cells here, not in the notebook, then run this script: the notebook
is committed with its outputs (so a Git host shows them), and
tests/test_notebook.py re-runs it and checks that the outputs are current.

The exercise mode has the functions of cnn_numpy/exercises/templates/ as cells (the
files `cnn-numpy exercises DIR` writes), each followed by its check, and ends by
training with them; tests/test_exercises.py re-runs it, as it is and filled in.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

import nbclient
import nbformat

NOTEBOOK = Path(__file__).resolve().parent / "tutorial.ipynb"
EXERCISES_NOTEBOOK = NOTEBOOK.parent / "exercises.ipynb"

CELLS = [
    ("md", """# A CNN with the cover removed

This tutorial opens up the spec's convolutional network and looks at every part:
how big each layer's output is, how a convolution is computed by the four naive
loops and by **stride groups**, how the **backward pass** of convolution and max
pooling is derived, and how to check it numerically. Then it trains the network
on real MNIST digits and shows what each layer sees. It runs on a laptop CPU in
about half a minute."""),
    ("code", """import inspect

import matplotlib.pyplot as plt
import numpy as np

from cnn_numpy import (
    ConvLayer,
    ConvLayer_ReLU,
    FCLayer_ReLU,
    FCLayer_Softmax,
    FlatLayer,
    Net,
    PoolLayer_Max,
)
from cnn_numpy.data import load_dataset
from cnn_numpy.engines import naive, stride_groups
from cnn_numpy.testing import check_layer, numerical_gradient, relative_error
from cnn_numpy.visual.explain import explain_stride_groups, stride_group_table

np.set_printoptions(precision=3, suppress=True, linewidth=100)
data = load_dataset("mnist-sample", progress=False)   # the official MNIST test set, bundled
print(data)
fig, axes = plt.subplots(1, 8, figsize=(9, 1.5))
for ax, image, label in zip(axes, data.x_train[:8], data.y_train[:8], strict=True):
    ax.imshow(image, cmap="gray")
    ax.set_title(str(label))
    ax.axis("off")
plt.show()"""),
    ("md", """## 1. How big is the output?

A filter of width `fw` slides over an input of width `iw` in steps of `s`
(the stride). With `p` zero rows and columns of padding on each side it fits at

    ow = (iw + 2p - fw) // s + 1

positions per axis. `padding="same"` picks `p` so that `ow = ceil(iw / s)`
(TensorFlow's rule; an odd total puts the extra row at the end). Each layer's
`output_shape` does this arithmetic:"""),
    ("code", """cases = [(3, 1, 0), (3, 2, 0), (5, 1, 2), (3, 2, "same"), (4, 1, "same")]
for fw, s, padding in cases:
    conv = ConvLayer(8, fw, stride=s, padding=padding)
    print(f"fw={fw} s={s} padding={padding!r:7}: 28 x 28 -> {conv.output_shape((28, 28, 1))}, "
          f"pads {conv.pads(28, 28)}")"""),
    ("md", """## 2. Convolution forward, the naive way

For every sample `i`, output row `h`, output column `w` and filter `f`, take the
window of the input under the filter, multiply elementwise by the filter, sum,
add the bias:

    Z[i, h, w, f] = sum over a, b, k of  X[i, h*s + a, w*s + b, k] * W[a, b, k, f]  +  b[f]

The naive engine is exactly these four loops:"""),
    ("code", """print(inspect.getsource(naive.conv_forward))"""),
    ("md", """## 3. Stride groups, step by step

The loops touch one window at a time. Stride groups do many windows at once:
windows `k = ceil(fw / s)` positions apart never overlap, so the output
positions split into at most `k * k` groups, and inside a group one **slice**
and one **reshape** line up every window. The spec's example: a 2 x 2 filter
(cells A, B, C, D), stride 1, on a 4 x 4 input numbered 1 to 16."""),
    ("code", """print(explain_stride_groups(2, 1, 4))"""),
    ("md", """The same plan as a picture (`cnn-numpy explain stride-groups --filter 2
--stride 1 --input 4 --png FILE` draws it): on top the filter at each
of the 9 positions, shaded in its group's colour; below, one panel per group,
its windows side by side and never overlapping."""),
    ("code", """import tempfile

from IPython.display import Image, display

from cnn_numpy.visual.explain import draw_stride_groups

with tempfile.TemporaryDirectory() as folder:
    draw_stride_groups(2, 1, 4, f"{folder}/groups.png")
    display(Image(filename=f"{folder}/groups.png"))"""),
    ("md", """Now the same in NumPy, for group 1 (output rows and columns 0 and 2). The
input is the numbers 1..16, so we can see which cells land where."""),
    ("code", """x = np.arange(1.0, 17.0).reshape(4, 4)       # one image, one channel
fw, s = 2, 1
k = -(-fw // s)                               # windows k apart never overlap
step = k * s                                  # ... and start `step` input cells apart
rows = cols = 2                               # group 1 has 2 x 2 windows
block = x[0 : rows * step, 0 : cols * step]   # the slice
print("slice", block.shape)
print(block)
windows = block.reshape(rows, step, cols, step)[:, :fw, :, :fw]   # the reshape
print("reshape", windows.shape, "-> window (0, 1) of the group:")
print(windows[0, :, 1, :])
matrix = windows.transpose(1, 3, 0, 2).reshape(fw * fw, rows * cols)
print("matrix", matrix.shape, "(one row per filter cell A, B, C, D; one column per window)")
print(matrix)"""),
    ("md", """Row A of that matrix is `A * (1, 3, 9, 11)`, exactly the line for group 1
above. One matrix product with the filter computes all four outputs of the
group; the other groups fill in the rest. Both engines agree:"""),
    ("code", """rng = np.random.default_rng(0)
X = data.x_train[:16, :, :, None].astype(np.float64)
W = rng.standard_normal((3, 3, 1, 32))
b = rng.standard_normal(32)
Z_naive, _ = naive.conv_forward(X, W, b, 1)
Z_groups, _ = stride_groups.conv_forward(X, W, b, 1)
table = stride_group_table(3, 1, 28)
print(f"{len(table.groups)} stride groups for a 3 x 3 filter, stride 1: "
      f"{len(table.groups)} matrix products instead of {16 * 26 * 26 * 32:,} loop steps")
difference = float(np.abs(Z_naive - Z_groups).max())
print(f"largest difference: {difference:.0e} "
      f"(rounding only: below 1e-12 is {difference < 1e-12})")"""),
    ("md", """## 4. The backward pass of convolution

The network learns by gradient descent, so each layer must turn `dZ`, the
gradient of the loss with respect to its output, into the gradients of its
weights and of its input. Since `Z` is a sum of products:

* each weight `W[a, b, k, f]` multiplies `X[i, h*s + a, w*s + b, k]` in every
  window, so `dW[a, b, k, f] = sum over i, h, w of X[i, h*s + a, w*s + b, k] * dZ[i, h, w, f]`;
* `db[f] = sum over i, h, w of dZ[i, h, w, f]`;
* each input element gets back, from every window that contains it, the
  filter weight it met times that window's `dZ`:
  `dX[i, h*s + a, w*s + b, k] += W[a, b, k, f] * dZ[i, h, w, f]`.

In loops:"""),
    ("code", """def conv_backward_loops(dZ, X, W, s):
    n, oh, ow, nf = dZ.shape
    fw = W.shape[0]
    dX, dW, db = np.zeros_like(X), np.zeros_like(W), dZ.sum(axis=(0, 1, 2))
    for i in range(n):
        for h in range(oh):
            for w in range(ow):
                window = X[i, h * s : h * s + fw, w * s : w * s + fw]        # (fw, fw, c)
                for f in range(nf):
                    dW[:, :, :, f] += window * dZ[i, h, w, f]
                    dX[i, h * s : h * s + fw, w * s : w * s + fw] += W[:, :, :, f] * dZ[i, h, w, f]
    return dX, dW, db"""),
    ("md", """Are those derivatives right? The CS231n way to find out: pick a scalar
`L = sum(G * Z)` for a random `G` (then `dZ = G`) and compare each derivative
with a central difference, `(L(x + eps) - L(x - eps)) / 2 eps`, one element at a
time. In float64 a correct gradient agrees to about 1e-8 relative; a wrong one
is off by order 1."""),
    ("code", """rng = np.random.default_rng(1)
X = rng.standard_normal((2, 5, 5, 2))
W = rng.standard_normal((3, 3, 2, 3))
b = rng.standard_normal(3)
G = rng.standard_normal((2, 3, 3, 3))

def loss():
    return float(np.sum(G * naive.conv_forward(X, W, b, 1)[0]))

dX, dW, db = conv_backward_loops(G, X, W, 1)
print("dX relative error", f"{relative_error(dX, numerical_gradient(loss, X)):.1e}")
print("dW relative error", f"{relative_error(dW, numerical_gradient(loss, W)):.1e}")
print("db relative error", f"{relative_error(db, numerical_gradient(loss, b)):.1e}")"""),
    ("md", """The stride-group engine computes the same three sums one group at a time:
the group's window matrix times its rows of `dZ` gives its share of `dW` (and
the bias row of `db`), and `dZ . W^T` is added back into the group's windows
of `dX` (they never overlap, so the add is safe). `check_layer` runs the whole
check (input and every weight, training and inference mode) on a real layer:"""),
    ("code", """print(inspect.getsource(stride_groups.conv_backward))
for engine in ("naive", "stride_groups", "im2col"):
    check_layer(ConvLayer(3, 3, stride=2, padding="same", engine=engine), (2, 7, 7, 2))
    print(engine, "ConvLayer gradients: correct")"""),
    ("md", """## 5. The backward pass of max pooling

Max pooling outputs the largest value of each window. Only that element
influences the output, so the whole gradient `dA[i, h, w, c]` goes back to it
and every other element of the window gets 0 (with ties, to the first maximum
in row-major order, as PyTorch does). With overlapping windows an element can
receive gradient from several windows, so the contributions add up."""),
    ("code", """def max_pool_backward_loops(dA, X, fw, s):
    dX = np.zeros_like(X)
    n, oh, ow, c = dA.shape
    for i in range(n):
        for h in range(oh):
            for w in range(ow):
                for k in range(c):
                    window = X[i, h * s : h * s + fw, w * s : w * s + fw, k]
                    a, q = np.unravel_index(np.argmax(window), window.shape)
                    dX[i, h * s + a, w * s + q, k] += dA[i, h, w, k]
    return dX

X = rng.standard_normal((2, 6, 6, 3))
pool = PoolLayer_Max(3, stride=2, engine="stride_groups")   # overlapping windows
out = pool.forward_propagate(X)
G = rng.standard_normal(out.shape)
print("loops vs engine:", float(np.abs(max_pool_backward_loops(G, X, 3, 2)
                                        - pool.backpropagate(G)).max()))
check_layer(PoolLayer_Max(3, stride=2), (2, 6, 6, 3))
print("PoolLayer_Max gradients: correct")"""),
    ("md", """## 6. Train

The spec's network with Adam and a cosine learning-rate schedule, mini-batches
of 32, on 3,000 training digits for three epochs (`cnn-numpy train cnn` does
the full job on 60,000)."""),
    ("code", """from cnn_numpy.schedules import learning_rate

net = Net([ConvLayer_ReLU(32, 3), PoolLayer_Max(2), FlatLayer(), FCLayer_ReLU(100),
           FCLayer_Softmax(10)], seed=0, optimizer="adam")
net.build((28, 28, 1))
net.summary()

X, y = data.x_train[:3000], data.y_train[:3000]
epochs, batch = 3, 32
steps = epochs * (len(X) // batch)
history, order_rng, step = [], np.random.default_rng(0), 0
for epoch in range(1, epochs + 1):
    order = order_rng.permutation(len(X))
    losses = []
    for start in range(0, len(X) - batch + 1, batch):
        idx = order[start : start + batch]
        losses.append(net.train(X[idx], y[idx], learning_rate("cosine", 0.002, step, steps)).cce)
        step += 1
    _, test_cce, test_ce = net.evaluate(data.x_test, data.y_test)
    history.append((epoch, np.mean(losses), test_cce, test_ce))
    print(f"epoch {epoch}: train CCE {np.mean(losses):.3f}, test CCE {test_cce:.3f}, "
          f"test error {100 * test_ce:.1f}%")"""),
    ("code", """fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
e = [h[0] for h in history]
ax1.plot(e, [h[1] for h in history], "o-", label="train")
ax1.plot(e, [h[2] for h in history], "o-", label="test")
ax1.set(title="cross-entropy", xlabel="epoch", xticks=e)
ax1.legend()
ax2.plot(e, [100 * h[3] for h in history], "o-", color="C1")
ax2.set(title="test error (%)", xlabel="epoch", xticks=e)
plt.tight_layout()
plt.show()"""),
    ("md", """## 7. What each layer sees

One test digit through the trained network: the 32 feature maps of the
convolution (after its ReLU), the pooled maps, and the dense layers."""),
    ("code", """digit = data.x_test[:1]
outputs = net.layer_outputs(digit)          # every layer's output, in inference mode
names = [type(layer).__name__ for layer in net.layers]
for index in (0, 1):                        # the conv maps, then the pooled maps
    maps = outputs[index][0]
    fig, axes = plt.subplots(2, 16, figsize=(12, 1.9))
    for f, ax in enumerate(axes.flat):
        ax.imshow(maps[:, :, f], cmap="magma")
        ax.axis("off")
    fig.suptitle(f"layer {index} ({names[index]}): {maps.shape[2]} maps of "
                 f"{maps.shape[0]} x {maps.shape[1]}", fontsize=10)
    plt.show()
fig, axes = plt.subplots(1, 3, figsize=(11, 2.4), gridspec_kw={"width_ratios": [1, 4, 2]})
axes[0].imshow(digit[0], cmap="gray")
axes[0].set_title(f"input, label {data.y_test[0]}", fontsize=9)
axes[0].axis("off")
axes[1].bar(range(100), outputs[3][0])
axes[1].set_title(f"layer 3 ({names[3]}): 100 units", fontsize=9)
axes[2].bar(range(10), outputs[4][0], color="C1")
axes[2].set(xticks=range(10))
axes[2].set_title(f"layer 4 (softmax): predicts {outputs[4][0].argmax()}", fontsize=9)
plt.tight_layout()
plt.show()"""),
    ("md", """## Take it further

The trained network, exported for ONNX Runtime (and any other ONNX tool);
`to_torch(net)` gives the same network as a trainable PyTorch model. Both need
the optional extras (`pip install ".[onnx]"`, `".[torch]"`); see the
documentation's page "PyTorch and ONNX" (`docs/pytorch-onnx.md`)."""),
    ("code", """from cnn_numpy.interop import to_onnx

try:
    to_onnx(net, "tutorial-cnn.onnx")
    print("Wrote tutorial-cnn.onnx: input images (n, 28, 28, 1), output probabilities (n, 10)")
except ImportError as exc:  # the onnx extra is not installed
    print(exc)"""),
]


EXERCISE_INTRO = """# Build it yourself

The network's convolution, pooling and dense functions, for you to write. Each
function below has a docstring with its shapes, its equation and a hint; replace
its `raise NotImplementedError` with your code, run the cell, then run the check
under it. The checks grade shapes and dtypes, small cases worked by hand, random
cases against cnn-numpy's reference (the naive engine) and, for every backward
pass, numerical gradients; when something is wrong they name the likely mistake
and show the smallest example that fails.

When parts 1 and 2 pass, the last cell trains a network with your functions as its
engine and compares them with cnn-numpy's engines, number for number and in speed.
The same exercises as files: `cnn-numpy exercises DIR`, then `cnn-numpy check DIR`.
Stuck? The reference answers are in `cnn_numpy/engines/naive.py`."""

PART_TITLES = {
    "part1_conv.py": """## Part 1: convolution

Channels last, as everywhere in cnn-numpy: `x` is `(n, ih, iw, c)`, the filters `W`
are `(fw, fw, c, nf)`, one bias per filter `b` is `(nf,)`, and the output `Z` is
`(n, oh, ow, nf)` with `oh = (ih + 2 * pad - fw) // stride + 1`.""",
    "part2_pool.py": """## Part 2: pooling

An `fw x fw` window slides over each channel on its own and keeps one number: the
largest (max pooling) or the mean (average pooling). No weights, no sum over channels.""",
    "part3_dense.py": """## Part 3: the dense layer and the loss

Each sample, flattened to `k` numbers, meets `m` neurons: `A_prev (n, k)`, `W (m, k)`,
`b (m,)`, `Z (n, m)`. Softmax turns the last scores into probabilities; the mean
cross-entropy is what training lowers.""",
}

EXERCISE_TRAIN = [
    ("md", """## Train with your own code

Your convolution and pooling functions as an engine: the layers call them in every
step. First one training step against cnn-numpy's engines (the time of each, and the
largest difference of the gradients from yours), then a small network trained on 32
digits and tested on 100. With the four loops the course asks for, expect the speed
of the naive engine."""),
    ("code", """from cnn_numpy import ConvLayer_ReLU, FCLayer_Softmax, FlatLayer, Net, PoolLayer_Max
from cnn_numpy.data import load_dataset
from cnn_numpy.exercises import compare_engines, describe_comparison, load_engine
from cnn_numpy.exercises.spec import ENGINE_EXERCISES

report = check_exercises(globals(), ENGINE_EXERCISES)
if not report.passed:
    print("Not an engine yet:", report.message)
else:
    engine = load_engine(globals())
    data = load_dataset("mnist-sample", progress=False)
    net = Net([ConvLayer_ReLU(4, 3), PoolLayer_Max(2), FlatLayer(), FCLayer_Softmax(10)],
              engine=engine, seed=0, optimizer="adam")
    print(describe_comparison(compare_engines(net, data.x_train[:2], data.y_train[:2]), 2))
    for start in range(0, 32, 8):
        net.train(data.x_train[start:start + 8], data.y_train[start:start + 8], 0.01)
    result = net.evaluate(data.x_test[:100], data.y_test[:100])
    print(f"Trained on 32 digits with your engine: test error {result.ce:.0%} on 100")"""),
]


def exercise_cells() -> list[tuple[str, str]]:
    """The exercise mode's cells: each template function, then its check."""
    from cnn_numpy.exercises.files import template_text
    from cnn_numpy.exercises.spec import PARTS

    cells = [("md", EXERCISE_INTRO),
             ("code", "import numpy as np\n\nfrom cnn_numpy.exercises import check_exercises")]
    for part in PARTS:
        cells.append(("md", PART_TITLES[part]))
        text = template_text(part)
        for node in ast.parse(text).body:
            if isinstance(node, ast.FunctionDef):
                cells.append(("code", ast.get_source_segment(text, node)))
                cells.append(("code", f'print(check_exercises(globals(), "{node.name}"))'))
    return cells + EXERCISE_TRAIN


def build(cells: list[tuple[str, str]] | None = None) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    for kind, text in CELLS if cells is None else cells:
        make = nbformat.v4.new_markdown_cell if kind == "md" else nbformat.v4.new_code_cell
        nb.cells.append(make(text))
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i:02d}"
    return nb


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write and run the tutorial notebook.")
    parser.add_argument("--exercises", action="store_true",
                        help=f"write the exercise mode instead: {EXERCISES_NOTEBOOK.name}")
    exercises = parser.parse_args(argv).exercises
    nb = build(exercise_cells() if exercises else None)
    path = EXERCISES_NOTEBOOK if exercises else NOTEBOOK
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    nbformat.write(nb, path)
    (NOTEBOOK.parent / "tutorial-cnn.onnx").unlink(missing_ok=True)
    print(f"Wrote {path} with its outputs")


if __name__ == "__main__":
    main()

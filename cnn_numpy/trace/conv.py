"""Explanations for ConvLayer, ConvLayer_ReLU, PoolLayer_Max and PoolLayer_Avg: every
sum written out over the window it runs over."""

from __future__ import annotations

import numpy as np

from ..engines import columns, get_engine
from ..layers import ConvLayer, ConvLayer_ReLU, PoolLayer
from ..layers import activations as act
from .elementwise import relu_backward_terms, relu_terms
from .explanation import Explanation, Source, TermGroup, constant, product, source
from .records import Family, LayerTrace, windows_over


def _geometry(lt: LayerTrace) -> tuple[int, int, int, int]:
    """(filter width, stride, top padding, left padding) of a conv or pool layer."""
    layer = lt.layer
    if isinstance(layer, ConvLayer):
        _, ih, iw, _ = lt["A_prev"].shape
        (top, _), (left, _) = layer.pads(ih, iw)
        return layer.filter_width, layer.stride, top, left
    return layer.filter_width, layer.stride, 0, 0


def _in_input(lt: LayerTrace, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Where (rows, cols) fall inside A_prev rather than on its zero padding."""
    _, ih, iw, _ = lt["A_prev"].shape
    return (rows >= 0) & (rows < ih) & (cols >= 0) & (cols < iw)


def _stack(*columns_: np.ndarray) -> np.ndarray:
    return np.stack(np.broadcast_arrays(*columns_), axis=-1).reshape(-1, len(columns_))


def _padding_terms(other) -> TermGroup:
    """Terms whose input element is the zero padding: 0 * other."""
    return product(constant("0 (padding)", 0.0), other, count=len(other.values))


def _conv_sources(lt: LayerTrace, backward: bool) -> list[Source]:
    engine = get_engine(lt.engine)
    if not backward:
        return [source(ConvLayer.forward_propagate, "conv_forward("),
                source(engine.conv_forward, "Z[i, h, w, f] =", "Z = cols.T @", "(cols.T @ Wb)")]
    return [source(ConvLayer.backpropagate, "conv_backward(")]


def _conv_z(lt: LayerTrace, index: tuple, step) -> Explanation:
    i, h, w, f = index
    fw, s, top, left = _geometry(lt)
    c = lt["W"].shape[2]
    a, b, k = (g.ravel() for g in np.meshgrid(*map(np.arange, (fw, fw, c)), indexing="ij"))
    rows, cols = h * s + a - top, w * s + b - left
    inside = _in_input(lt, rows, cols)
    weights = lt.operands("W", _stack(a, b, k, np.full_like(a, f)))
    x = lt.operands("A_prev", _stack(np.full_like(a, i), rows, cols, k)[inside])
    groups = [product(x, _pick(weights, inside))]
    if not inside.all():
        groups.append(_padding_terms(_pick(weights, ~inside)))
    groups.append(product(lt.operand("b", (f,))))
    details = {"stride": s, "filter_width": fw, "padding": {"top": top, "left": left},
               "window_rows": [int(h * s - top), int(h * s - top + fw - 1)],
               "window_cols": [int(w * s - left), int(w * s - left + fw - 1)],
               "padding_terms": int((~inside).sum())}
    return lt.explanation(
        "Z", index, "Z[i, h, w, f] = sum over a, b, k of A_prev[i, h*s + a - pad, w*s + b - pad,"
        " k] * W[a, b, k, f] + b[f]  (outside A_prev: zero padding)", groups,
        _conv_sources(lt, backward=False), details)


def _pick(op, mask: np.ndarray):
    """The operand's terms where mask is True."""
    return type(op)(op.name, op.values[mask], op.layer, op.indices[mask])


def _conv_dw(lt: LayerTrace, index: tuple, step) -> Explanation:
    a, b, k, f = index
    fw, s, top, left = _geometry(lt)
    n, oh, ow, _ = lt["dZ"].shape
    i, h, w = (g.ravel() for g in np.meshgrid(*map(np.arange, (n, oh, ow)), indexing="ij"))
    rows, cols = h * s + a - top, w * s + b - left
    inside = _in_input(lt, rows, cols)
    dz = lt.operands("dZ", _stack(i, h, w, np.full_like(i, f)))
    groups = [product(lt.operands("A_prev", _stack(i, rows, cols, np.full_like(i, k))[inside]),
                      _pick(dz, inside))]
    if not inside.all():
        groups.append(_padding_terms(_pick(dz, ~inside)))
    engine = get_engine(lt.engine)
    line = source(engine.conv_backward, "dW[:, :, :, f] +=", "dWb = cols @ dZ2",
                  "dWb += cols @ dZ_g")
    return lt.explanation(
        "dW", index, "dW[a, b, k, f] = sum over i, h, w of A_prev[i, h*s + a - pad, "
        "w*s + b - pad, k] * dZ[i, h, w, f]  (every batch position the weight met)", groups,
        [*_conv_sources(lt, backward=True), line],
        {"stride": s, "positions": int(n * oh * ow)})


def _conv_db(lt: LayerTrace, index: tuple, step) -> Explanation:
    (f,) = index
    n, oh, ow, _ = lt["dZ"].shape
    i, h, w = (g.ravel() for g in np.meshgrid(*map(np.arange, (n, oh, ow)), indexing="ij"))
    engine = get_engine(lt.engine)
    line = source(engine.conv_backward, "db[f] +=", "dWb = cols @ dZ2", "dWb += cols @ dZ_g")
    return lt.explanation("db", index, "db[f] = sum over i, h, w of dZ[i, h, w, f]",
                          [product(lt.operands("dZ", _stack(i, h, w, np.full_like(i, f))))],
                          [*_conv_sources(lt, backward=True), line])


def _conv_da_prev(lt: LayerTrace, index: tuple, step) -> Explanation:
    i, r, q, k = index
    fw, s, top, left = _geometry(lt)
    n, oh, ow, nf = lt["dZ"].shape
    pairs = [(h, a, w, b) for h, a in windows_over(r + top, fw, s, oh)
             for w, b in windows_over(q + left, fw, s, ow)]
    h, a, w, b = np.array(pairs, dtype=np.intp).reshape(-1, 4).T[:, :, None]
    f = np.arange(nf)[None, :]
    groups = [product(lt.operands("W", _stack(a, b, np.full_like(f, k), f)),
                      lt.operands("dZ", _stack(np.full_like(h, i), h, w, f)))] if pairs else []
    engine = get_engine(lt.engine)
    sources = [*_conv_sources(lt, backward=True),
               source(engine.conv_backward, "dx[i, rows, cols, :] +=", "add_window_gradients(")]
    if "add_window_gradients" in sources[-1].code:
        sources.append(source(columns.add_window_gradients, "element +="))
    return lt.explanation(
        "dA_prev", index, "dA_prev[i, r, q, k] = sum over the windows (h, w) that cover it and "
        "every filter f of W[a, b, k, f] * dZ[i, h, w, f], with h*s + a = r + pad, "
        "w*s + b = q + pad", groups, sources,
        {"windows": [[int(p[0]), int(p[2])] for p in pairs], "filters": int(nf)})


def _conv_relu_a(lt: LayerTrace, index: tuple, step) -> Explanation:
    return relu_terms(lt, index, "Z", [source(ConvLayer_ReLU.forward_propagate, "relu("),
                                       source(act.relu, "np.maximum")])


def _conv_relu_dz(lt: LayerTrace, index: tuple, step) -> Explanation:
    return relu_backward_terms(lt, index, "dZ", [
        source(ConvLayer_ReLU.backpropagate, "relu_backward("),
        source(act.relu_backward, "dA * (Z > 0)")])


def _complete_conv(lt: LayerTrace) -> None:
    if type(lt.layer) is ConvLayer_ReLU:
        lt.arrays["dZ"] = act.relu_backward(lt.arrays["dA"], lt.arrays["Z"])
    else:  # linear: the output is Z, and the gradient arriving is dZ
        del lt.arrays["A"]
        lt.arrays["dZ"] = lt.arrays.pop("dA")
        lt.arriving = "dZ"
        lt.aliases.update(A="Z", dA="dZ")
    lt.decayed["W"] = np.ones(lt.arrays["W"].shape, dtype=bool)


CONV = Family(_complete_conv, {"Z": _conv_z, "A": _conv_relu_a, "dZ": _conv_relu_dz,
                               "dW": _conv_dw, "db": _conv_db, "dA_prev": _conv_da_prev})


# -- pooling -------------------------------------------------------------------------

def _window(lt: LayerTrace, i: int, h: int, w: int, c: int) -> tuple[np.ndarray, int, int]:
    """The window of A_prev under output (i, h, w, c), and where its first maximum is
    (row-major, the engines' and PyTorch's rule for ties)."""
    fw, s, _, _ = _geometry(lt)
    window = lt["A_prev"][i, h * s : h * s + fw, w * s : w * s + fw, c]
    a, b = divmod(int(np.argmax(window)), fw)
    return window, a, b


def _pool_sources(lt: LayerTrace, backward: bool, *markers: str) -> list[Source]:
    layer, engine = lt.layer, get_engine(lt.engine)
    if backward:
        return [source(PoolLayer.backpropagate, "_backward_name"),
                source(getattr(engine, layer._backward_name), *markers)]
    return [source(PoolLayer.forward_propagate, "_forward_name"),
            source(getattr(engine, layer._forward_name), *markers)]


def _max_pool_a(lt: LayerTrace, index: tuple, step) -> Explanation:
    i, h, w, c = index
    fw, s, _, _ = _geometry(lt)
    window, a, b = _window(lt, i, h, w, c)
    at = (i, h * s + a, w * s + b, c)
    group = TermGroup("{0}", (lt.operand("A_prev", at),), np.asarray([window[a, b]], np.float64))
    details = {"window": window.tolist(), "window_origin": [i, h * s, w * s, c],
               "maximum_at": list(at), "maximum_in_window": [a, b],
               "gradient_goes_to": list(at), "stride": s, "filter_width": fw}
    return lt.explanation(
        "A", index, "A[i, h, w, c] = max of the window A_prev[i, h*s : h*s + fw, w*s : w*s + "
        "fw, c]; backward, dA goes to its first maximum (row-major)", [group],
        _pool_sources(lt, False, "window.flat[k]", "elements.max(axis=0)"), details)


def _covering(lt: LayerTrace, r: int, q: int) -> list[tuple[int, int, int, int]]:
    """(h, w, a, b): the output windows over input (r, q), and its place (a, b) in each."""
    fw, s, _, _ = _geometry(lt)
    _, oh, ow, _ = lt["A"].shape
    return [(h, w, a, b) for h, a in windows_over(r, fw, s, oh)
            for w, b in windows_over(q, fw, s, ow)]


def _max_pool_da_prev(lt: LayerTrace, index: tuple, step) -> Explanation:
    i, r, q, c = index
    windows, won = [], []
    for h, w, a, b in _covering(lt, r, q):
        _, ma, mb = _window(lt, i, h, w, c)
        windows.append({"A": [i, h, w, c], "maximum_in_window": [ma, mb],
                        "receives": (ma, mb) == (a, b)})
        if (ma, mb) == (a, b):
            won.append((i, h, w, c))
    groups = [product(lt.operands("dA", np.array(won)))] if won else []
    return lt.explanation(
        "dA_prev", index, "dA_prev[i, r, q, c] = sum of dA[i, h, w, c] over the windows whose "
        "first maximum is A_prev[i, r, q, c] (0 if it is the maximum of none)", groups,
        _pool_sources(lt, True, "+= dout[i, h, w, ch]", "np.where(index"),
        {"windows": windows})


def _avg_pool_a(lt: LayerTrace, index: tuple, step) -> Explanation:
    i, h, w, c = index
    fw, s, _, _ = _geometry(lt)
    a, b = (g.ravel() for g in np.meshgrid(np.arange(fw), np.arange(fw), indexing="ij"))
    x = lt.operands("A_prev", _stack(np.full_like(a, i), h * s + a, w * s + b,
                                     np.full_like(a, c)))
    return lt.explanation(
        "A", index, "A[i, h, w, c] = sum of the window A_prev[i, h*s : h*s + fw, w*s : w*s + "
        "fw, c] / fw^2", [product(x, constant("1/fw^2", 1 / (fw * fw)))],
        _pool_sources(lt, False, ".mean("), {"stride": s, "filter_width": fw})


def _avg_pool_da_prev(lt: LayerTrace, index: tuple, step) -> Explanation:
    i, r, q, c = index
    fw, _, _, _ = _geometry(lt)
    covering = np.array([(i, h, w, c) for h, w, _, _ in _covering(lt, r, q)], dtype=np.intp)
    groups = [product(lt.operands("dA", covering), constant("1/fw^2", 1 / (fw * fw)),
                      count=len(covering))] if len(covering) else []
    return lt.explanation(
        "dA_prev", index, "dA_prev[i, r, q, c] = sum of dA[i, h, w, c] / fw^2 over the "
        "windows (h, w) that cover it", groups,
        _pool_sources(lt, True, "* share", "dout / (fw * fw)", "/ (fw * fw)"),
        {"windows": covering[:, 1:3].tolist() if len(covering) else []})


MAX_POOL = Family(lambda lt: None, {"A": _max_pool_a, "dA_prev": _max_pool_da_prev})
AVG_POOL = Family(lambda lt: None, {"A": _avg_pool_a, "dA_prev": _avg_pool_da_prev})

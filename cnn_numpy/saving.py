"""Model files: one .npz of plain arrays plus the architecture as JSON.

A model file can be read with numpy.load(path, allow_pickle=False): nothing
in it is ever unpickled or executed.  Layers are rebuilt from a fixed table
of known types.  Before any array is read, the zip directory and every
.npy header are checked: members stored uncompressed, their sizes adding up
to no more than the file, each header's data fitting its member, and every
weight exactly the shape the architecture implies (optimizer state: the
shape of its weight).  So a tampered file cannot make the loader allocate
more than the file holds.

Arrays in the file:
    architecture           JSON text (0-d unicode array): format, dtype, engine, seed,
                           input shape, layers [{type, config}], optimizer {name, config},
                           class names and how pictures become inputs (both optional)
    layer/<i>/<name>       the weights and buffers of layer i, e.g. layer/0/W,
                           layer/1/running_mean
    optimizer/<key>        optimizer state (checkpoints only)
    meta                   JSON text the caller stores (checkpoints)
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import layers as layer_module
from .engines import saved_engine
from .files import PathLike, atomic_write
from .optimizers import OPTIMIZERS

if TYPE_CHECKING:
    from .net import Net

FORMAT = "cnn-numpy-model"
VERSION = 1
LAYER_TYPES = {name: getattr(layer_module, name) for name in (
    "ConvLayer", "ConvLayer_ReLU", "PoolLayer_Max", "PoolLayer_Avg", "FlatLayer",
    "FCLayer", "FCLayer_ReLU", "FCLayer_Sigmoid", "FCLayer_Softmax", "Dropout", "BatchNorm",
    "ReLULayer", "LeakyReLULayer", "TanhLayer", "SigmoidLayer")}
_MAX_JSON_BYTES = 1 << 20


class ModelFileError(ValueError):
    """A model or checkpoint file that cannot be used; the message names the file."""


def architecture(net: Net) -> dict:
    """The JSON-able description of a built Net: enough to rebuild it exactly."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "dtype": net.dtype.name,
        "engine": saved_engine(net.engine),
        "seed": net.seed if isinstance(net.seed, int) else None,
        "input_shape": list(net.input_shape),
        "layers": [{"type": type(layer).__name__, "config": _saved_config(layer)}
                   for layer in net.layers],
        "optimizer": {"name": net.optimizer.name, "config": net.optimizer.config()},
        "weight_decay": net.weight_decay,
        "class_names": None if net.class_names is None else list(net.class_names),
        "images_as": net.images_as,
    }


def _saved_config(layer) -> dict:
    """layer.config(), its engine as a model file records it (saved_engine)."""
    config = layer.config()
    if "engine" in config:
        config["engine"] = saved_engine(config["engine"])
    return config


def _stored_arrays(layer) -> dict:
    """A layer's arrays as stored: its trained weights and its buffers."""
    return {**layer.params(), **layer.buffers()}


def save(net: Net, path: PathLike, meta: dict | None = None,
         with_optimizer: bool = False) -> None:
    """Write `net` (built) to `path` atomically; `meta` and the optimizer are for checkpoints."""
    arrays = _arrays(net, meta, with_optimizer)
    # np.savez stores members uncompressed, which lets load() check sizes against the file.
    atomic_write(Path(path), lambda f: np.savez(f, **arrays))


def to_bytes(net: Net) -> bytes:
    """The file save(net, path) would write, as bytes (for a download)."""
    buffer = io.BytesIO()
    np.savez(buffer, **_arrays(net, None, False))
    return buffer.getvalue()


def _arrays(net, meta: dict | None, with_optimizer: bool) -> dict[str, np.ndarray]:
    """The members of a model file, checked: only cnn-numpy's own layers and optimizers."""
    if net.input_shape is None:
        raise ValueError("Net.save: the net has no weights yet; train or build it first")
    for i, layer in enumerate(net.layers):
        if LAYER_TYPES.get(type(layer).__name__) is not type(layer):
            raise ValueError(f"Net.save: layer {i} ({type(layer).__name__}) is not one of "
                             "cnn-numpy's own layers, and a model file rebuilds layers only "
                             f"from those ({', '.join(LAYER_TYPES)}); save its weights "
                             "yourself, e.g. with numpy.savez")
    if OPTIMIZERS.get(net.optimizer.name) is not type(net.optimizer):
        raise ValueError(f"Net.save: the optimizer ({type(net.optimizer).__name__}) is not one "
                         f"of cnn-numpy's own ({', '.join(OPTIMIZERS)}), and a model file "
                         "rebuilds only those")
    arrays = {"architecture": np.array(json.dumps(architecture(net)))}
    for i, layer in enumerate(net.layers):
        for name, value in _stored_arrays(layer).items():
            arrays[f"layer/{i}/{name}"] = value
    if with_optimizer:
        for key, value in net.optimizer.state_dict().items():
            arrays[f"optimizer/{key}"] = value
    if meta is not None:
        arrays["meta"] = np.array(json.dumps(meta))
    return arrays


def _fail(path, why: str) -> ModelFileError:
    return ModelFileError(f"{path}: {why}")


def _member_shapes(path, zf: zipfile.ZipFile) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shape and dtype of every member, from the .npy headers alone (no data read)."""
    file_size = os.path.getsize(path)
    infos = zf.infolist()
    # Stored members of a genuine file occupy disjoint bytes: their sizes add up to less
    # than the file.  (Crafted zips can point many members at the same bytes.)
    if sum(info.file_size for info in infos) > file_size:
        raise _fail(path, "its members claim more data than the file holds")
    shapes = {}
    for info in infos:
        if not info.filename.endswith(".npy"):
            raise _fail(path, f"unexpected member {info.filename!r}: not a cnn-numpy model file")
        if info.compress_type != zipfile.ZIP_STORED:
            raise _fail(path, f"member {info.filename!r} is compressed")
        with zf.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        if dtype.hasobject:
            raise _fail(path, f"member {info.filename!r} holds Python objects; refusing it")
        if any(d >= 2**31 for d in shape) or math.prod(shape) * dtype.itemsize > info.file_size:
            raise _fail(path, f"member {info.filename!r} claims more data than it holds")
        shapes[info.filename[: -len(".npy")]] = (tuple(shape), dtype)
    return shapes


def _read_json(path, npz, key: str, shapes) -> dict:
    if key not in shapes:
        raise _fail(path, f"no {key!r} entry: not a cnn-numpy model file")
    shape, dtype = shapes[key]
    if shape != () or dtype.kind != "U" or dtype.itemsize > _MAX_JSON_BYTES:
        raise _fail(path, f"the {key!r} entry is not a JSON text")
    try:
        value = json.loads(str(npz[key]))
    except (json.JSONDecodeError, RecursionError) as exc:
        raise _fail(path, f"the {key!r} entry is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise _fail(path, f"the {key!r} entry is not a JSON object")
    return value


def _build_net(path, arch: dict, net_class: type):
    """An unbuilt net_class (Net) of the architecture, and its input shape, checked."""
    if arch.get("format") != FORMAT or arch.get("version") != VERSION:
        raise _fail(path, f"not a {FORMAT} version {VERSION} file "
                          f"(format {arch.get('format')!r}, version {arch.get('version')!r})")
    specs = arch.get("layers")
    if not isinstance(specs, list) or not specs:
        raise _fail(path, "the architecture lists no layers")
    built = []
    for i, spec in enumerate(specs):
        cls = LAYER_TYPES.get(spec.get("type")) if isinstance(spec, dict) else None
        config = spec.get("config") if cls is not None else None
        if cls is None or not isinstance(config, dict):
            raise _fail(path, f"layer {i}: unknown layer type or config {spec!r}")
        try:
            built.append(cls(**config))
        except (TypeError, ValueError) as exc:
            raise _fail(path, f"layer {i} ({spec['type']}): bad config: {exc}") from None
    opt = arch.get("optimizer") or {"name": "sgd", "config": {}}
    cls = OPTIMIZERS.get(opt.get("name")) if isinstance(opt, dict) else None
    try:
        optimizer = cls(**opt.get("config", {}))
        net = net_class(built, engine=arch.get("engine"), seed=arch.get("seed"),
                  dtype=np.dtype(arch.get("dtype")), optimizer=optimizer,
                  weight_decay=arch.get("weight_decay", 0.0))
        shape = arch.get("input_shape")
        if (not isinstance(shape, list) or not 1 <= len(shape) <= 3
                or not all(isinstance(d, int) and 0 < d <= 1 << 16 for d in shape)):
            raise ValueError(f"bad input shape {shape!r}")
        net.shapes(tuple(shape))  # checks every layer fits, allocates nothing
        names = arch.get("class_names")
        if names is not None and (not isinstance(names, list)
                                  or not all(isinstance(n, str) for n in names)):
            raise ValueError(f"bad class names {names!r}")
        net.set_classes(names, arch.get("images_as", "digits"))
    except (TypeError, ValueError, AttributeError) as exc:
        raise _fail(path, f"bad architecture: {exc}") from None
    return net, tuple(shape)


def _expected_params(net, input_shape) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Every weight array the architecture implies, by file key, without allocating it."""
    expected, shape = {}, input_shape
    for i, (layer, after) in enumerate(zip(net.layers, net.shapes(input_shape), strict=True)):
        shapes = {**layer.param_shapes(shape), **layer.buffer_shapes(shape)}
        for name, param_shape in shapes.items():
            expected[f"layer/{i}/{name}"] = (tuple(param_shape), net.dtype)
        shape = after
    return expected


def read(path: PathLike, net_class: type[Net]) -> tuple[Net, dict, dict]:
    """(net, meta, optimizer_arrays) from a model or checkpoint file; net_class is Net
    (Net.load calls this; the class comes as an argument so that this module need not
    import net.py, which imports it).

    Any problem is a ModelFileError (a ValueError) naming the file.
    """
    path = _existing(path)
    try:
        with zipfile.ZipFile(path) as zf, np.load(path, allow_pickle=False) as npz:
            shapes = _member_shapes(path, zf)
            arch = _read_json(path, npz, "architecture", shapes)
            net, input_shape = _build_net(path, arch, net_class)
            meta = _read_json(path, npz, "meta", shapes) if "meta" in shapes else {}
            # Every weight in the file must have exactly the shape the architecture implies,
            # checked on the headers: only then are weights allocated (no more than the file).
            for key, want in _expected_params(net, input_shape).items():
                if shapes.get(key) != want:
                    raise _fail(path, f"{key} is {shapes.get(key, 'missing')}, the architecture "
                                      f"needs {want}")
            net.build(input_shape)
            expected = {f"layer/{i}/{name}": p for i, layer in enumerate(net.layers)
                        for name, p in _stored_arrays(layer).items()}
            for key, param in expected.items():
                value = npz[key]
                if not np.isfinite(value).all():
                    raise _fail(path, f"{key} contains NaN or infinite values")
                param[...] = value
            for i, layer in enumerate(net.layers):
                try:
                    layer.check_buffers()
                except ValueError as exc:
                    raise _fail(path, f"layer {i}: {exc}") from None
            optimizer = _read_optimizer_state(path, npz, shapes, net)
    except ModelFileError:
        raise
    except _DAMAGED as exc:
        raise _damaged(path, exc) from None
    return net, meta, optimizer


#: What zip, npy header and data errors of a damaged file raise.
_DAMAGED = (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zipfile.LargeZipFile,
            UnicodeDecodeError, NotImplementedError, RuntimeError, OverflowError)


def _damaged(path, exc: BaseException) -> ModelFileError:
    return ModelFileError(f"{path}: not a readable cnn-numpy model file "
                          f"({type(exc).__name__}: {exc})")


def _existing(path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    return path


def read_meta(path: PathLike) -> dict:
    """The meta entry of a model or checkpoint file ({} for a plain model file), read
    without building the net; ModelFileError naming the file if it is not one."""
    path = _existing(path)
    try:
        with zipfile.ZipFile(path) as zf, np.load(path, allow_pickle=False) as npz:
            shapes = _member_shapes(path, zf)
            _read_json(path, npz, "architecture", shapes)
            return _read_json(path, npz, "meta", shapes) if "meta" in shapes else {}
    except ModelFileError:
        raise
    except _DAMAGED as exc:
        raise _damaged(path, exc) from None


def _read_optimizer_state(path, npz, shapes, net) -> dict[str, np.ndarray]:
    """optimizer/* members, each checked (shape and dtype of its weight) before reading.

    Keys are 'steps' (a scalar) and 'state/<layer>/<weight>[/<moment>]', as
    Optimizer.state_dict() writes them.
    """
    weights = {key: p for key, p, _ in net.param_triples()}
    state = {}
    for member, (shape, dtype) in shapes.items():
        if not member.startswith("optimizer/"):
            continue
        key = member[len("optimizer/"):]
        if key == "steps":
            ok = shape == () and dtype.kind in "iu"
        else:
            parts = key.split("/")
            weight = weights.get("/".join(parts[1:3])) if parts[0] == "state" else None
            ok = weight is not None and len(parts) <= 4 and (shape, dtype) == \
                (weight.shape, weight.dtype)
        if not ok:
            raise _fail(path, f"optimizer state {key!r} does not fit the model ({shape} {dtype})")
        state[key] = npz[member]
    return state

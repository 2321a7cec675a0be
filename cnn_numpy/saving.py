"""Model files: one .npz of plain arrays plus the architecture as JSON.

A model file can be read with numpy.load(path, allow_pickle=False): nothing
in it is ever unpickled or executed.  Layers are rebuilt from a fixed table
of known types, and every array is checked against the shape the
architecture implies before it is read, so a tampered file cannot make the
loader allocate more than the file holds.

Arrays in the file:
    architecture           JSON text (0-d unicode array): format, dtype, engine, seed,
                           input shape, layers [{type, config}], optimizer {name, config}
    layer/<i>/<name>       the weights of layer i, e.g. layer/0/W
    optimizer/<key>        optimizer state (checkpoints only)
    extra/<key>            anything else a caller stores (checkpoints)
    meta                   JSON text the caller stores (checkpoints)
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from . import layers as layer_module
from .optimizers import OPTIMIZERS

FORMAT = "cnn-numpy-model"
VERSION = 1
LAYER_TYPES = {name: getattr(layer_module, name) for name in (
    "ConvLayer", "ConvLayer_ReLU", "PoolLayer_Max", "PoolLayer_Avg", "FlatLayer",
    "FCLayer", "FCLayer_ReLU", "FCLayer_Sigmoid", "FCLayer_Softmax")}
_MAX_JSON_BYTES = 1 << 20


class ModelFileError(ValueError):
    """A model or checkpoint file that cannot be used; the message names the file."""


def atomic_write(path: Path, write) -> None:
    """Call write(file) on a temp file beside `path`, fsync it, then rename it onto `path`.

    A crash at any moment leaves either the old file or the new one, never a mix.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def architecture(net) -> dict:
    """The JSON-able description of a built Net: enough to rebuild it exactly."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "dtype": net.dtype.name,
        "engine": net.engine,
        "seed": net.seed,
        "input_shape": list(net.input_shape),
        "layers": [{"type": type(layer).__name__, "config": layer.config()}
                   for layer in net.layers],
        "optimizer": {"name": net.optimizer.name, "config": net.optimizer.config()},
    }


def save(net, path, meta: dict | None = None, extra: dict[str, np.ndarray] | None = None,
         with_optimizer: bool = False) -> None:
    """Write `net` (built) to `path` atomically; `meta` and `extra` are for checkpoints."""
    if net.input_shape is None:
        raise ValueError("Net.save: the net has no weights yet; train or build it first")
    arrays = {"architecture": np.array(json.dumps(architecture(net)))}
    for i, layer in enumerate(net.layers):
        for name, value in layer.params().items():
            arrays[f"layer/{i}/{name}"] = value
    if with_optimizer:
        for key, value in net.optimizer.state_dict().items():
            arrays[f"optimizer/{key}"] = value
    if meta is not None:
        arrays["meta"] = np.array(json.dumps(meta))
    for key, value in (extra or {}).items():
        arrays[f"extra/{key}"] = value
    # np.savez stores members uncompressed, which lets load() check sizes against the file.
    atomic_write(Path(path), lambda f: np.savez(f, **arrays))


def _fail(path, why: str) -> ModelFileError:
    return ModelFileError(f"{path}: {why}")


def _member_shapes(path, zf: zipfile.ZipFile) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shape and dtype of every member, from the .npy headers alone (no data read)."""
    file_size = os.path.getsize(path)
    shapes = {}
    for info in zf.infolist():
        if not info.filename.endswith(".npy"):
            raise _fail(path, f"unexpected member {info.filename!r}: not a cnn-numpy model file")
        if info.compress_type != zipfile.ZIP_STORED or info.file_size > file_size:
            raise _fail(path, f"member {info.filename!r} is compressed or larger than the file")
        with zf.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        if dtype.hasobject:
            raise _fail(path, f"member {info.filename!r} holds Python objects; refusing it")
        if int(np.prod(shape, dtype=np.float64)) * dtype.itemsize > info.file_size:
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
    except json.JSONDecodeError as exc:
        raise _fail(path, f"the {key!r} entry is not valid JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise _fail(path, f"the {key!r} entry is not a JSON object")
    return value


def _build_net(path, arch: dict):
    from .net import Net  # here, not at the top: net.py imports this module

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
        net = Net(built, engine=arch.get("engine"), seed=arch.get("seed"),
                  dtype=np.dtype(arch.get("dtype")), optimizer=optimizer)
        shape = arch.get("input_shape")
        if (not isinstance(shape, list) or not 1 <= len(shape) <= 3
                or not all(isinstance(d, int) and 0 < d <= 1 << 16 for d in shape)):
            raise ValueError(f"bad input shape {shape!r}")
        net.shapes(tuple(shape))  # checks every layer fits, allocates nothing
    except (TypeError, ValueError, AttributeError) as exc:
        raise _fail(path, f"bad architecture: {exc}") from None
    return net, tuple(shape)


def _expected_params(net, input_shape) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Every weight array the architecture implies, by file key, without allocating it."""
    expected, shape = {}, input_shape
    for i, (layer, after) in enumerate(zip(net.layers, net.shapes(input_shape), strict=True)):
        for name, param_shape in layer.param_shapes(shape).items():
            expected[f"layer/{i}/{name}"] = (tuple(param_shape), net.dtype)
        shape = after
    return expected


def read(path) -> tuple:
    """(net, meta, optimizer_arrays, extra_arrays) from a model or checkpoint file.

    Any problem is a ModelFileError (a ValueError) naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    try:
        with zipfile.ZipFile(path) as zf, np.load(path, allow_pickle=False) as npz:
            shapes = _member_shapes(path, zf)
            arch = _read_json(path, npz, "architecture", shapes)
            net, input_shape = _build_net(path, arch)
            meta = _read_json(path, npz, "meta", shapes) if "meta" in shapes else {}
            # Every weight in the file must have exactly the shape the architecture implies,
            # checked on the headers: only then are weights allocated (no more than the file).
            for key, want in _expected_params(net, input_shape).items():
                if shapes.get(key) != want:
                    raise _fail(path, f"{key} is {shapes.get(key, 'missing')}, the architecture "
                                      f"needs {want}")
            net.build(input_shape)
            expected = {f"layer/{i}/{name}": p for i, layer in enumerate(net.layers)
                        for name, p in layer.params().items()}
            for key, param in expected.items():
                value = npz[key]
                if not np.isfinite(value).all():
                    raise _fail(path, f"{key} contains NaN or infinite values")
                param[...] = value
            optimizer = {k[len("optimizer/"):]: npz[k] for k in shapes
                         if k.startswith("optimizer/")}
            extra = {k[len("extra/"):]: npz[k] for k in shapes if k.startswith("extra/")}
    except ModelFileError:
        raise
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zipfile.LargeZipFile,
            UnicodeDecodeError, NotImplementedError, RuntimeError, RecursionError) as exc:
        # zip, npy header and data errors of a damaged file
        raise ModelFileError(f"{path}: not a readable cnn-numpy model file "
                             f"({type(exc).__name__}: {exc})") from None
    return net, meta, optimizer, extra


def load(path):
    """The Net stored in `path` (a model file or a checkpoint)."""
    return read(path)[0]

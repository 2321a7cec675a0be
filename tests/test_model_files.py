"""Model files: exact round trip, atomic writes, and every damaged or foreign file is a
ValueError naming the file (fuzzed with hypothesis)."""

from __future__ import annotations

import io
import json
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
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
    LeakyReLULayer,
    Net,
    PoolLayer_Avg,
    PoolLayer_Max,
    ReLULayer,
    SigmoidLayer,
    TanhLayer,
)
from cnn_numpy.saving import ModelFileError


def small_net(**kwargs) -> Net:
    return Net([ConvLayer_ReLU(4, 3, padding="same"), PoolLayer_Max(2), ConvLayer(3, 2, stride=2),
                PoolLayer_Avg(2, stride=1), FlatLayer(), FCLayer_ReLU(8), FCLayer_Softmax(5)],
               **kwargs)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "model.npz"
    net = small_net(seed=0, engine="stride_groups", optimizer="adam")
    X = np.random.default_rng(0).random((6, 12, 12, 2), dtype=np.float32)
    net.train(X, np.arange(6) % 5, 0.01)
    net.save(path)
    return path, net, X


def test_round_trip_predicts_exactly_the_same(saved):
    path, net, X = saved
    loaded = Net.load(path)
    np.testing.assert_array_equal(loaded.predict(X), net.predict(X))
    assert [type(a) for a in loaded.layers] == [type(b) for b in net.layers]
    assert [a.config() for a in loaded.layers] == [b.config() for b in net.layers]
    assert loaded.engine == "stride_groups" and loaded.optimizer.name == "adam"
    assert loaded.input_shape == (12, 12, 2) and loaded.dtype == np.float32


def test_file_is_plain_arrays_and_json(saved):
    path, _, _ = saved
    with np.load(path, allow_pickle=False) as npz:
        arch = json.loads(str(npz["architecture"]))
        types = [layer["type"] for layer in arch["layers"]]
        assert types[:2] == ["ConvLayer_ReLU", "PoolLayer_Max"]
        assert npz["layer/0/W"].shape == (3, 3, 2, 4)


def test_float64_and_sigmoid_round_trip(tmp_path):
    net = Net([FlatLayer(), FCLayer_Sigmoid(3)], seed=1, dtype=np.float64)
    X = np.random.default_rng(1).random((4, 5, 5))
    net.predict(X)
    net.save(tmp_path / "m.npz")
    np.testing.assert_array_equal(Net.load(tmp_path / "m.npz").predict(X), net.predict(X))


def test_save_is_atomic_and_leaves_no_temp_files(saved, tmp_path):
    _, net, _ = saved
    target = tmp_path / "m.npz"
    target.write_bytes(b"old")

    class BoomError(Exception):
        pass

    from cnn_numpy import saving

    def failing_write(f):
        f.write(b"partial")
        raise BoomError

    with pytest.raises(BoomError):
        saving.atomic_write(target, failing_write)
    assert target.read_bytes() == b"old"  # the old file is untouched
    net.save(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]


def test_unbuilt_net_cannot_be_saved(tmp_path):
    with pytest.raises(ValueError, match="no weights yet"):
        small_net().save(tmp_path / "x.npz")


def test_a_users_own_layer_is_refused_before_anything_is_written(tmp_path):
    class Square(ReLULayer):  # a subclass is not the built-in layer either
        def function(self, Z):
            return Z * Z

    net = Net([FlatLayer(), Square(), FCLayer_Softmax(3)], seed=0)
    net.build((4, 4))
    with pytest.raises(ValueError, match=r"layer 1 \(Square\) is not one of cnn-numpy's own"):
        net.save(tmp_path / "x.npz")
    assert list(tmp_path.iterdir()) == []


def test_a_users_own_optimizer_is_refused_before_anything_is_written(tmp_path):
    from cnn_numpy import SGD

    class Halving(SGD):
        name = "halving"

        def step(self, triples, learning_rate):
            super().step(triples, learning_rate / 2)

    net = Net([FlatLayer(), FCLayer_Softmax(3)], seed=0, optimizer=Halving())
    net.build((4, 4))
    with pytest.raises(ValueError, match=r"the optimizer \(Halving\) is not one of cnn-numpy's"):
        net.save(tmp_path / "x.npz")
    assert list(tmp_path.iterdir()) == []


def _rewrite(path, out, change):
    """Copy a model file, letting change(name, array) replace members (None drops one)."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    new = {}
    for k, v in arrays.items():
        v = change(k, v)
        if v is not None:
            new[k] = v
    np.savez(out, **new)
    return out


def _edit_arch(edit):
    def change(k, v):
        if k != "architecture":
            return v
        arch = json.loads(str(v))
        edit(arch)
        return np.array(json.dumps(arch))
    return change


@pytest.mark.parametrize("change, message", [
    (_edit_arch(lambda a: a.update(format="keras")), "not a cnn-numpy-model"),
    (_edit_arch(lambda a: a["layers"][0].update(type="os.system")), "unknown layer type"),
    (_edit_arch(lambda a: a["layers"][0]["config"].update(num_filters=10**12)), "layer/0/W"),
    (_edit_arch(lambda a: a["layers"][0]["config"].update(filter_width=-1)), "positive integer"),
    (_edit_arch(lambda a: a["layers"][0]["config"].update(evil=1)), "bad config"),
    (_edit_arch(lambda a: a.update(input_shape=[10**9, 10**9, 3])), "bad input shape"),
    (_edit_arch(lambda a: a.update(input_shape=[2, 2, 2])), "too large"),
    (_edit_arch(lambda a: a.update(dtype="float16")), "float32 or float64"),
    (_edit_arch(lambda a: a.update(optimizer={"name": "evil"})), "bad architecture"),
    (lambda k, v: None if k == "layer/3/W" else v, "missing"),  # no such key: pool layer
    (lambda k, v: None if k == "layer/5/W" else v, "layer/5/W is missing"),
    (lambda k, v: v[:2] if k == "layer/0/W" else v, "layer/0/W"),
    (lambda k, v: v.astype(np.float64) if k == "layer/0/b" else v, "layer/0/b"),
    (lambda k, v: np.full_like(v, np.nan) if k == "layer/5/W" else v, "NaN"),
    (lambda k, v: None if k == "architecture" else v, "not a cnn-numpy model file"),
    (lambda k, v: np.array("[1, 2") if k == "architecture" else v, "not valid JSON"),
])
def test_tampered_files_are_refused(saved, tmp_path, change, message):
    path, _, _ = saved
    bad = _rewrite(path, tmp_path / "bad.npz", change)
    if message == "missing":  # dropping a key that does not exist changes nothing
        Net.load(bad)
        return
    with pytest.raises(ModelFileError, match=message) as info:
        Net.load(bad)
    assert str(bad) in str(info.value)


def test_pickled_object_arrays_are_refused_without_unpickling(saved, tmp_path):
    path, _, _ = saved
    bad = tmp_path / "pickle.npz"
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["layer/0/b"] = np.array([object()] * 4, dtype=object)
    np.savez(bad, **arrays)
    with pytest.raises(ModelFileError, match="Python objects"):
        Net.load(bad)


def test_foreign_and_missing_files(tmp_path):
    (tmp_path / "text.npz").write_text("hello")
    (tmp_path / "data.npz").write_bytes(np.lib.format.magic(1, 0) + b"\0" * 100)
    compressed = tmp_path / "compressed.npz"
    np.savez_compressed(compressed, architecture=np.array("{}"))
    for name, message in [("text.npz", "not a readable"), ("data.npz", "not a readable"),
                          ("compressed.npz", "compressed"), ("nothing.npz", "no such model")]:
        with pytest.raises(ModelFileError, match=message):
            Net.load(tmp_path / name)


def _mutations():
    return st.one_of(
        st.tuples(st.just("truncate"), st.floats(0, 1)),
        st.tuples(st.just("flip"), st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)),
                                            min_size=1, max_size=8)),
        st.tuples(st.just("append"), st.binary(min_size=1, max_size=64)),
        st.tuples(st.just("header"), st.integers(0, 2**62)),
    )


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutation=_mutations())
def test_fuzzed_model_files_give_value_errors_only(saved, tmp_path, mutation):
    """Random damage: the loader either loads a consistent model or raises ValueError,
    never another exception and never a large allocation."""
    path, net, X = saved
    data = bytearray(path.read_bytes())
    kind, arg = mutation
    if kind == "truncate":
        data = data[: int(len(data) * arg)]
    elif kind == "flip":
        for where, xor in arg:
            data[min(int(where * len(data)), len(data) - 1)] ^= xor
    elif kind == "append":
        data += arg
    else:  # a huge shape claimed in the first array's .npy header
        with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
            members = {i.filename: zf.read(i) for i in zf.infolist()}
        name = "layer/5/W.npy"
        header = members[name]
        shape_at = header.index(b"'shape': (") + len(b"'shape': (")
        end = header.index(b")", shape_at)
        new = header[:shape_at] + f"{arg}, 9".encode() + header[end:]
        members[name] = new
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for k, v in members.items():
                zf.writestr(k, v)
        data = bytearray(buf.getvalue())
    bad = tmp_path / "fuzz.npz"
    bad.write_bytes(bytes(data))
    tracemalloc.start()
    try:
        loaded = Net.load(bad)
    except ValueError as exc:
        assert str(bad) in str(exc)
        return
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        # never much more than the file (weights and a copy of each while reading)
        assert peak < 4 * len(data) + 1_000_000
    out = loaded.predict(X)  # whatever loaded is a working, finite model
    assert out.shape == (6, 5) and np.isfinite(out).all()


def _zip_with_central_directory(data: bytes, entries: list[zipfile.ZipInfo]) -> bytes:
    """The members' bytes of `data` followed by a central directory listing `entries`
    (which may name the same bytes several times)."""
    import struct

    body = data[: data.index(zipfile.stringCentralDir)]
    central = b""
    for info in entries:
        name = info.filename.encode()
        central += struct.pack(zipfile.structCentralDir, zipfile.stringCentralDir, 20, 0, 20, 0,
                               0, 0, 0, 0, info.CRC, info.compress_size, info.file_size,
                               len(name), 0, 0, 0, 0, 0, info.header_offset) + name
    end = struct.pack(zipfile.structEndArchive, zipfile.stringEndArchive, 0, 0, len(entries),
                      len(entries), len(central), len(body), 0)
    return body + central + end


def test_members_sharing_bytes_are_refused(saved, tmp_path):
    """A crafted zip can list the same bytes many times, so that reading every member
    would take many times the file's size; their sizes then add up to more than the file."""
    path, _, _ = saved
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
    biggest = max(infos, key=lambda i: i.file_size)
    bad = tmp_path / "shared.npz"
    bad.write_bytes(_zip_with_central_directory(path.read_bytes(), infos + [biggest] * 30))
    with pytest.raises(ModelFileError, match="claim more data than the file holds"):
        Net.load(bad)
    fine = tmp_path / "fine.npz"  # the same construction without repeats loads
    fine.write_bytes(_zip_with_central_directory(path.read_bytes(), infos))
    Net.load(fine)


def test_zero_sized_shape_with_a_huge_dimension_is_refused(saved, tmp_path):
    path, _, _ = saved
    with zipfile.ZipFile(path) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (0, 10**20)})
    members["optimizer/steps.npy"] = header.getvalue()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(buf.getvalue())
    with pytest.raises(ModelFileError, match="claims more data than it holds"):
        Net.load(bad)


def new_layers_net(**kwargs) -> Net:
    return Net([ConvLayer(4, 3), BatchNorm(momentum=0.3, eps=1e-4), LeakyReLULayer(0.05),
                PoolLayer_Max(2), FlatLayer(), Dropout(0.2), FCLayer(8), BatchNorm(),
                TanhLayer(), ReLULayer(), SigmoidLayer(), FCLayer_Softmax(5)], **kwargs)


@pytest.fixture(scope="module")
def saved_new(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "new.npz"
    net = new_layers_net(seed=0, optimizer="adam", weight_decay=0.003)
    X = np.random.default_rng(0).random((6, 10, 10, 1), dtype=np.float32)
    for _ in range(3):
        net.train(X, np.arange(6) % 5, 0.01)
    net.save(path)
    return path, net, X


def test_new_layers_round_trip_with_running_statistics(saved_new):
    path, net, X = saved_new
    loaded = Net.load(path)
    assert [repr(a) for a in loaded.layers] == [repr(b) for b in net.layers]
    assert loaded.weight_decay == 0.003
    for a, b in zip(loaded.layers, net.layers, strict=True):
        for key in (*b.params(), *b.buffers()):
            np.testing.assert_array_equal({**a.params(), **a.buffers()}[key],
                                          {**b.params(), **b.buffers()}[key])
    assert not np.array_equal(net.layers[1].running_var, np.ones(4))  # they were trained
    np.testing.assert_array_equal(loaded.predict(X), net.predict(X))


@pytest.mark.parametrize("change, message", [
    (lambda k, v: -v if k == "layer/1/running_var" else v, "layer 1: BatchNorm: running_var "
                                                           "has negative values"),
    (lambda k, v: None if k == "layer/7/running_mean" else v, "layer/7/running_mean is missing"),
    (lambda k, v: v[:2] if k == "layer/1/running_mean" else v, "layer/1/running_mean"),
    (lambda k, v: np.full_like(v, np.inf) if k == "layer/7/gamma" else v, "NaN or infinite"),
    (_edit_arch(lambda a: a["layers"][5]["config"].update(rate=1.5)), "rate must be a number"),
    (_edit_arch(lambda a: a["layers"][1]["config"].update(eps=-1)), "eps must be a number > 0"),
    (_edit_arch(lambda a: a.update(weight_decay="lots")), "weight_decay must be a finite"),
])
def test_tampered_new_layer_files_are_refused(saved_new, tmp_path, change, message):
    path, _, _ = saved_new
    bad = _rewrite(path, tmp_path / "bad.npz", change)
    with pytest.raises(ModelFileError, match=message):
        Net.load(bad)

"""Batch shards on worker threads: the same numbers whatever the thread count, and the
same gradients as one whole batch."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import threadpoolctl

from cnn_numpy import (
    BatchNorm,
    ConvLayer,
    ConvLayer_ReLU,
    Dropout,
    FCLayer,
    FCLayer_ReLU,
    FCLayer_Softmax,
    FlatLayer,
    Net,
    PoolLayer_Avg,
    PoolLayer_Max,
    ReLULayer,
)
from cnn_numpy.architecture import parse_layers
from cnn_numpy.cli import main
from cnn_numpy.fast import threads
from cnn_numpy.fast.path import plan_ops
from cnn_numpy.layers import Layer
from cnn_numpy.models import build_model

load = Net.load


@pytest.fixture(autouse=True)
def restore_threads():
    yield
    threads.set_threads(None)


class Halve(Layer):
    """A user's layer that says nothing about samples: the Net must give it the whole batch.
    It notes how many samples it saw and how many threads NumPy's BLAS had."""

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def forward_propagate(self, A_prev):
        self.seen = A_prev.shape[0]
        self.blas = [p["num_threads"] for p in threadpoolctl.threadpool_info()
                     if p["user_api"] == "blas"]
        return A_prev * 0.5

    def backpropagate(self, dA):
        return dA * 0.5


def conv_net(**kwargs) -> Net:
    """Large enough samples (14 x 14 x 16 after the conv) that the Net shards the conv run."""
    return Net([ConvLayer_ReLU(16, 3, padding=1), BatchNorm(), PoolLayer_Max(2), FlatLayer(),
                Dropout(0.2), FCLayer_ReLU(12), Halve(), FCLayer_Softmax(10)], **kwargs)


def data(n: int, dtype=np.float32):
    rng = np.random.default_rng(3)
    return rng.random((n, 14, 14, 2)).astype(dtype), rng.integers(0, 10, n)


@pytest.mark.parametrize("n, training, sizes", [
    (1, True, [1]), (64, True, [64]), (127, True, [127]), (128, True, [64, 64]),
    (200, True, [67, 66, 67]), (256, True, [64] * 4), (1000, True, [125] * 8),
    # A prediction: two shards from 64 samples on, no more than training's from 128.
    (63, False, [63]), (64, False, [32, 32]), (127, False, [64, 63]), (128, False, [64, 64]),
    (1000, False, [125] * 8)])
def test_shards_cover_the_batch_in_order(n, training, sizes):
    slices = threads.shard_slices(n, training)
    assert [s.stop - s.start for s in slices] == sizes
    assert slices[0].start == 0 and slices[-1].stop == n
    assert all(a.stop == b.start for a, b in zip(slices, slices[1:], strict=False))


@pytest.mark.parametrize("n, weights, sizes", [
    (64, threads.FEW_WEIGHTS, [32, 32]), (127, 1000, [64, 63]), (63, 1000, [63]),
    (64, threads.FEW_WEIGHTS + 1, [64]), (64, None, [64]), (128, 1000, [64, 64]),
    (256, 1000, [64] * 4)])
def test_training_a_network_with_few_weights_takes_shards_of_32_from_64_samples(
        n, weights, sizes):
    assert [s.stop - s.start for s in threads.shard_slices(n, True, weights)] == sizes


@pytest.mark.parametrize("n, weights, sizes", [
    (128, None, [128]), (255, None, [255]), (256, None, [128, 128]),
    (1024, threads.FEW_WEIGHTS + 1, [128] * 8),
    (128, 1000, [64, 64]), (256, 1000, [64] * 4)])  # few weights: as unblocked
def test_training_a_network_whose_convolutions_run_in_blocks_takes_shards_of_128(
        n, weights, sizes):
    slices = threads.shard_slices(n, True, weights, blocked=True)
    assert [s.stop - s.start for s in slices] == sizes
    assert threads.shard_slices(128, False, None, blocked=True) == threads.even_slices(128, 2)


def test_the_fast_path_shards_a_network_with_a_stride_group_convolution_from_128():
    """Its convolutions on the stride-group engine have only the shards for the second
    core, and so has a network without convolutions; the same network on im2col has
    its blocks and trains 128 samples whole."""
    layers = {"im2col": "ConvLayer_ReLU(16, 3, engine='im2col'), PoolLayer_Max(2), ",
              "stride_groups": "ConvLayer_ReLU(16, 3, engine='stride_groups'), "
                               "PoolLayer_Max(2), ",
              "none": ""}
    counts = {}
    for name, convolution in layers.items():
        text = convolution + "FlatLayer(), FCLayer_ReLU(512), FCLayer_Softmax(10)"
        net = Net(parse_layers(text), seed=0)
        net.build((32, 32, 3))
        counts[name] = len(net._fast_path.shard_slices((128, 32, 32, 3), True))
    assert counts == {"im2col": 1, "stride_groups": 2, "none": 2}


def test_the_fast_path_counts_every_weight_for_its_shards():
    net = conv_net(seed=0)
    X, _ = data(64)
    net.build(X.shape[1:])
    weights = sum(array.size for layer in net.layers for array in layer.params().values())
    assert weights <= threads.FEW_WEIGHTS
    assert len(net._fast_path.shard_slices(X.shape, True)) == 2
    wide = Net([FlatLayer(), FCLayer_ReLU(threads.FEW_WEIGHTS // 392 + 1),
                FCLayer_Softmax(10)], seed=0)
    wide.build(X.shape[1:])
    assert len(wide._fast_path.shard_slices(X.shape, True)) == 1
    assert len(wide._fast_path.shard_slices(X.shape, False)) == 2


@pytest.mark.parametrize("n, training, weights, work, sizes", [
    (32, True, 1000, threads.HEAVY_SAMPLE, [16, 16]),
    (32, True, 1000, threads.HEAVY_SAMPLE - 1, [32]),
    (31, True, 1000, threads.HEAVY_SAMPLE, [31]),
    (32, True, threads.FEW_WEIGHTS + 1, threads.HEAVY_SAMPLE, [32]),  # many gradients
    (32, False, None, threads.HEAVY_SAMPLE, [16, 16]),  # a prediction
    (64, True, 1000, threads.HEAVY_SAMPLE, [32, 32]), (128, True, 1000, 10**9, [64, 64])])
def test_samples_of_much_work_take_shards_of_16_from_32_samples(n, training, weights, work,
                                                                 sizes):
    assert [s.stop - s.start for s in threads.shard_slices(n, training, weights, work)] \
        == sizes


def test_the_fast_path_counts_a_samples_multiply_adds_for_its_shards():
    """A 3 x 3 convolution of 2 channels into 4 on 6 x 6: 16 positions of 72 multiply-adds;
    a dense layer of 64 inputs and 5 outputs: 325 (its W holds the bias as a 65th
    column).  Samples of a 16-filter convolution on 64 x 64 x 4 take 2.4 M: a batch of
    32 of them has two shards in training."""
    from cnn_numpy.fast.path import _multiply_adds

    small = Net([ConvLayer(4, 3), FlatLayer(), FCLayer(5)], seed=0)
    small.build((6, 6, 2))
    assert _multiply_adds(small.layers, (6, 6, 2)) == 16 * 72 + 65 * 5
    heavy = Net([ConvLayer_ReLU(16, 3, padding=1), PoolLayer_Max(4), FlatLayer(),
                 FCLayer_Softmax(10)], seed=0)
    heavy.build((64, 64, 4))
    assert _multiply_adds(heavy.layers, (64, 64, 4)) == 64 * 64 * 576 + 4097 * 10
    assert len(heavy._fast_path.shard_slices((32, 64, 64, 4), True)) == 2
    assert len(small._fast_path.shard_slices((32, 6, 6, 2), True)) == 1


def plan(net: Net, X, training: bool, whole_last: bool) -> list[tuple[str, list[str]]]:
    """The fast path's steps for X, each with the names of its layers."""
    path = net._fast_path
    shards = len(path.shard_slices(X.shape, training))
    steps = path.steps(plan_ops(net.layers, training), X, training, whole_last, shards)
    return [(how, [type(layer).__name__ for op in ops for layer in op.layers])
            for how, ops in steps]


def test_the_plan_shards_per_sample_runs_and_keeps_the_rest_whole():
    net = conv_net(seed=0)
    X, _ = data(128)
    net.build(X.shape[1:])
    assert plan(net, X, training=True, whole_last=True) == [
        ("shards", ["ConvLayer_ReLU"]), ("joint", ["BatchNorm"]),
        ("shards", ["PoolLayer_Max", "FlatLayer"]), ("whole", ["Dropout"]),
        ("whole", ["FCLayer_ReLU"]),  # 392 -> 12 numbers per sample: not worth it
        ("whole", ["Halve"]), ("whole", ["FCLayer_Softmax"])]
    # in inference BatchNorm and Dropout work per sample: conv .. the first dense layer
    # make one run, as it holds large samples
    runs = [len(layers) for how, layers in plan(net, X, False, False) if how != "whole"]
    assert runs == [6]
    assert {how for how, _ in plan(net, X[:63], False, False)} == {"whole"}  # 1 shard
    # training: this network has few weights, so 64 samples or more make 2 shards
    assert {how for how, _ in plan(net, X[:63], True, True)} == {"whole"}
    assert plan(net, X[:64], True, True) == plan(net, X, True, True)



def test_the_deep_blocks_run_as_one_joint_operation_while_training():
    from cnn_numpy.models import build_model

    net = build_model("deep", seed=0)
    X, _ = data(128)  # 14 x 14 x 2: the blocks' outputs are small, their convs' are not
    net.build(X.shape[1:])
    block = ["ConvLayer", "BatchNorm", "ReLULayer", "PoolLayer_Max"]
    training = plan(net, X, training=True, whole_last=True)
    assert training[:2] == [("joint", block), ("joint", block)]
    assert ("joint", ["BatchNorm"]) not in training[:2]
    # in inference BatchNorm is per sample: the blocks are per-sample operations on shards
    inference = plan(net, X, training=False, whole_last=False)
    assert inference[0][0] == "shards" and "BatchNorm" in inference[0][1]
    # a naive pool runs its own loops, so the block stops before it
    net.layers[3].engine = "naive"
    assert plan(net, X, training=True, whole_last=True)[:2] == [
        ("joint", block[:3]), ("shards", ["PoolLayer_Max"])]

def test_the_first_pass_is_plain_and_builds_the_weights_the_next_ones_use_shards(monkeypatch):
    """Lazily built weights come from the generator in layer order, on the plain loop;
    the user's layer (which never says it is built) does not keep the Net plain after."""
    net = conv_net(seed=0)
    X, y = data(128)
    seen = []
    monkeypatch.setattr(net._fast_path, "forward", lambda *a, _f=net._fast_path.forward,
                        **k: seen.append(a[0].shape[0]) or _f(*a, **k))
    net.train(X, y, 0.01)
    assert not net.layers[6].built and seen == []
    net.train(X, y, 0.01)
    assert seen == [128]


def steps(model_fn, X, y, count: int, steps: int = 3):
    threads.set_threads(count)
    net = model_fn()
    losses = [net.train(X, y, 0.05).cce for _ in range(steps)]
    weights = [p.copy() for _, p, _ in net.param_triples()]
    buffers = [b.copy() for layer in net.layers for b in layer.buffers().values()]
    return losses, weights, buffers, net.predict(X, batch_size=48), net.evaluate(X, y).cce


@pytest.mark.parametrize("make, mnist", [
    (lambda: conv_net(seed=1, optimizer="adam"), False),
    (lambda: build_model("deep", seed=1), True),
    (lambda: build_model("cnn", engine="stride_groups", seed=1, optimizer="momentum"), True),
], ids=["user-layer", "deep", "cnn-stride-groups"])
def test_results_are_identical_whatever_the_number_of_threads(make, mnist):
    X, y = data(192)  # 3 shards
    if mnist:
        X = np.random.default_rng(4).random((192, 28, 28, 1), dtype=np.float32)
    one = steps(make, X, y, count=1)
    for count in (2, 3):
        other = steps(make, X, y, count)
        assert one[0] == other[0]
        for a, b in zip(one[1] + one[2], other[1] + other[2], strict=True):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(one[3], other[3])
        assert one[4] == other[4]


#: Networks like the zoo's (benchmarks/zoo.py), for 14 x 14 x 2 inputs: "same" padding,
#: BatchNorm after a convolution without a pool, strides, average and global pools, tanh.
ZOO_LIKE = {
    "vgg-bn": "ConvLayer(8, 3, padding='same'), BatchNorm(), ReLULayer(), "
              "ConvLayer_ReLU(8, 3, padding='same'), PoolLayer_Max(2), "
              "ConvLayer(12, 3, padding='same'), BatchNorm(), ReLULayer(), PoolLayer_Max(2), "
              "FlatLayer(), FCLayer_ReLU(16), FCLayer_Softmax(10)",
    "strided-avg": "ConvLayer_ReLU(8, 3, stride=2, padding='same'), ConvLayer(12, 3), "
                   "TanhLayer(), PoolLayer_Avg(5), FlatLayer(), FCLayer_Softmax(10)",
    "odd": "ConvLayer_ReLU(6, 4), PoolLayer_Max(3, stride=2), FlatLayer(), "
           "FCLayer_Softmax(10)",
}


@pytest.mark.parametrize("name", list(ZOO_LIKE))
@pytest.mark.parametrize("n, heavy", [(40, False), (38, False), (40, True), (192, False)],
                         ids=["40-whole", "38-whole", "40-on-two-shards", "192-whole"])
def test_blocks_give_the_same_bits_whatever_the_number_of_threads(name, n, heavy,
                                                                  monkeypatch):
    """A convolution's blocks of images (small here, so that there are several) run on
    the thread pool at any batch size, in an even number (38 images: some counts are odd
    by size and rounded up), as these samples are too small for shards; or one
    after the other on a shard (heavy: every sample counts as large and as one of
    HEAVY_SAMPLE multiply-adds, so 40 samples take two shards of 20); the weights after
    three steps, the predictions and the loss are the same bits on 1, 2 and 3 threads."""
    from cnn_numpy.architecture import parse_layers
    from cnn_numpy.fast import blocks

    monkeypatch.setattr(blocks, "BLOCK", 3000)
    monkeypatch.setattr(blocks, "LARGE", 1)
    monkeypatch.setattr(blocks, "CACHE_LARGE", 1)
    if heavy:
        monkeypatch.setattr(threads, "HEAVY_SAMPLE", 1)
        monkeypatch.setattr(threads, "MIN_SAMPLE_SIZE", 1)
    X, y = data(n)

    def make():
        return Net(parse_layers(ZOO_LIKE[name]), seed=2, optimizer="momentum")

    one = steps(make, X, y, count=1)
    for count in (2, 3):
        other = steps(make, X, y, count)
        assert one[0] == other[0]
        for a, b in zip(one[1] + one[2], other[1] + other[2], strict=True):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(one[3], other[3])
        assert one[4] == other[4]


def test_shards_give_the_whole_batch_gradients(monkeypatch):
    """float64: the sharded step's gradients (BatchNorm on shards too) equal one whole-batch
    pass's to rounding."""
    X, y = data(128, np.float64)
    grads = {}
    for max_shards in (1, threads.MAX_SHARDS):
        monkeypatch.setattr(threads, "MAX_SHARDS", max_shards)
        net = conv_net(seed=2, dtype=np.float64)
        net.build(X.shape[1:])  # the first pass on an unbuilt net is never sharded
        net.train(X, y, 0.0)
        assert net.layers[6].seen == 128  # the user's layer saw the whole batch
        grads[max_shards] = [g.copy() for _, _, g in net.param_triples()]
    for whole, sharded in zip(*grads.values(), strict=True):
        # BatchNorm adds the shards' sums (another order), and its backward pass
        # subtracts nearly equal terms: rounding differences grow to ~1e-11.
        np.testing.assert_allclose(sharded, whole, rtol=1e-9, atol=1e-13)


def test_predict_in_shards_equals_one_sample_at_a_time():
    threads.set_threads(2)
    net = Net([ConvLayer(8, 3), BatchNorm(), ReLULayer(), PoolLayer_Avg(2), FlatLayer(),
               FCLayer_Softmax(10)], seed=0, dtype=np.float64)
    X, y = data(160, np.float64)
    net.train(X, y, 0.1)
    alone = np.concatenate([net.predict(X[i : i + 1]) for i in range(160)])
    np.testing.assert_allclose(net.predict(X), alone, rtol=1e-12)


def test_floating_point_settings_reach_the_workers():
    """np.errstate is per thread: the training loop's over='raise' must hold in the shards."""
    threads.set_threads(2)
    net = build_model("cnn", seed=0)
    X = np.random.default_rng(0).random((128, 28, 28, 1), dtype=np.float32)
    net.predict(X)
    net.layers[0].W[...] = np.float32(1e38)  # every conv output overflows
    with np.errstate(over="raise", invalid="raise"), pytest.raises(FloatingPointError):
        net.predict(X)


def test_a_dense_layer_cuts_its_products_only_where_blas_runs_on_one_thread():
    """Outside a pass on one BLAS thread, BLAS's own threads share a large product; inside
    one (and in the pool's tasks), a large one is cut into blocks for the pool."""
    from cnn_numpy.fast.ops import Dense

    threads.set_threads(2)
    dense = Dense(FCLayer(1024))
    assert not threads.blas_on_one_thread()
    assert dense._count(128, 1024 * 785) == 1
    with threads.single_threaded_blas():
        assert threads.blas_on_one_thread()
        assert dense._count(128, 1024 * 785) == 2
        assert dense._count(64, 1024 * 785) == 2  # one shard, still two blocks
        assert dense._count(1024, 1024 * 785) == 8
        assert dense._count(8, 1024 * 785) == 1  # 6.4 M multiply-adds: not worth it
        assert threads.run_all([threads.blas_on_one_thread] * 2) == [True, True]
    assert not threads.blas_on_one_thread()


def test_blas_threads_come_back_after_a_pass():
    before = [p["num_threads"] for p in threadpoolctl.threadpool_info()]
    threads.set_threads(2)
    net = build_model("cnn", seed=0)
    X = np.random.default_rng(0).random((128, 28, 28, 1), dtype=np.float32)
    y = np.arange(128) % 10
    net.train(X, y, 0.01)  # builds the weights
    net.train(X, y, 0.01)  # on shards
    assert [p["num_threads"] for p in threadpoolctl.threadpool_info()] == before


def test_whole_batch_layers_keep_blas_on_one_thread_in_a_pass_with_shards(monkeypatch):
    """Spinning BLAS threads would take the cores from the workers, or from this thread's
    elementwise steps: a pass with shards, with an operation that cuts its work into
    blocks for the pool (a large convolution, at any batch size), or with large samples
    runs BLAS on one thread; a pass without any, and the plain loop, leave BLAS as it
    is (whatever the worker count)."""
    from cnn_numpy.fast import blocks

    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        for count in (1, 2):
            threads.set_threads(count)
            net = conv_net(seed=0)
            X, y = data(128)
            net.train(X, y, 0.01)  # builds the weights, on the plain loop: BLAS as it is
            assert net.layers[6].blas == [2]
            net.train(X, y, 0.01)
            assert net.layers[6].blas == [1]
            net.train(X[:63], y[:63], 0.01)  # one shard, samples of 14 x 14 x 16
            assert net.layers[6].blas == [1]
            with monkeypatch.context() as patch:
                patch.setattr(threads, "MIN_SAMPLE_SIZE", 14 * 14 * 16 + 1)  # small ones
                net.train(X[:63], y[:63], 0.01)
                assert net.layers[6].blas == [2]
                patch.setattr(blocks, "LARGE", 1)  # the convolution large: in blocks
                patch.setattr(blocks, "BLOCK", 3000)
                net.train(X[:63], y[:63], 0.01)
                assert net.layers[6].blas == [1]
            reference = Net(net.layers, fast=False)
            reference.train(X, y, 0.01)  # the plain loop leaves BLAS as it is
            assert reference.layers[6].blas == [2]
            dense = Net([FlatLayer(), FCLayer_ReLU(12), Halve(), FCLayer_Softmax(10)], seed=0)
            for _ in range(2):  # samples of 392 numbers at most: BLAS as it is
                dense.train(X[:63], y[:63], 0.01)
                assert dense.layers[2].blas == [2]



def test_tasks_inside_a_task_finish_and_change_no_result():
    """At 1,024 images a shard holds 128, and the cnn's dense layer cuts its products in
    a shard into blocks: run_all inside a task, which must neither wait for workers
    that are busy with the shards around it (that hung) nor change a bit."""
    from cnn_numpy.models import build_model

    X = np.random.default_rng(5).random((1024, 28, 28, 1), dtype=np.float32)
    y = np.arange(1024) % 10
    results = {}

    def run(count):
        threads.set_threads(count)
        net = build_model("cnn", seed=0)
        net.train(X, y, 0.01)
        net.train(X, y, 0.01)
        results[count] = (net.predict(X, batch_size=1024), net.layers[-2].W.copy())

    for count in (2, 1):
        worker = threading.Thread(target=run, args=(count,), daemon=True)
        worker.start()
        worker.join(120)
        assert not worker.is_alive(), f"{count} threads: still running after 2 minutes"
    threads.set_threads(None)
    for a, b in zip(results[1], results[2], strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_pool_that_grows_under_another_callers_feet_keeps_working():
    """One thread runs passes while another asks for more and more threads: the pool is
    replaced, never shut down under a caller that is still submitting to it."""
    errors, done = [], threading.Event()

    def passes():
        while not done.is_set():
            try:
                assert threads.run_all([lambda i=i: i for i in range(8)]) == list(range(8))
            except Exception as error:  # collected for the assert below
                errors.append(error)
                return

    other = threading.Thread(target=passes, daemon=True)
    other.start()
    try:
        for count in range(2, 60):
            threads.set_threads(count)
            assert threads.run_all([lambda: 1, lambda: 2]) == [1, 2]
    finally:
        done.set()
        other.join(30)
        threads.set_threads(None)
    assert errors == [] and not other.is_alive()

def test_a_failing_task_raises_the_first_error_in_task_order():
    threads.set_threads(3)

    def fail(message):
        raise ValueError(message)

    assert threads.run_all([lambda: 1, lambda: 2, lambda: 3]) == [1, 2, 3]
    with pytest.raises(ValueError, match="first"):
        threads.run_all([lambda: 1, lambda: fail("first"), lambda: fail("second")])



def test_ctrl_c_in_a_task_is_not_kept_for_later():
    """A KeyboardInterrupt (any BaseException that is not an Exception) in a task comes out
    of run_all on every thread count, ahead of the ordinary errors of the other tasks."""
    def interrupted():
        raise KeyboardInterrupt

    def fail():
        raise ValueError("an ordinary error")

    for count in (1, 2, 3):
        threads.set_threads(count)
        for tasks in ([interrupted, fail], [fail, interrupted], [interrupted, lambda: 1]):
            with pytest.raises(KeyboardInterrupt if tasks[0] is interrupted or count > 1
                               else ValueError):
                threads.run_all(tasks)
    threads.set_threads(None)

@pytest.mark.parametrize("text", ["0", "-2", "two", "1.5", "100000"])
def test_a_bad_thread_count_is_a_clear_error(monkeypatch, text, capsys):
    monkeypatch.setenv(threads.ENV_VAR, text)
    threads.set_threads(None)
    with pytest.raises(ValueError, match=f"{threads.ENV_VAR} must be an integer from 1"):
        threads.get_threads()
    assert main(["evaluate", "missing.npz"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and threads.ENV_VAR in err
    with pytest.raises(ValueError, match="threads must be an integer"):
        threads.set_threads(0)


def test_the_environment_sets_the_default(monkeypatch):
    monkeypatch.setenv(threads.ENV_VAR, " 3 ")
    threads.set_threads(None)
    assert threads.get_threads() == 3
    monkeypatch.delenv(threads.ENV_VAR)
    threads.set_threads(None)
    assert threads.get_threads() == len(__import__("os").sched_getaffinity(0))


def test_training_on_the_command_line_is_the_same_for_any_threads(tmp_path, capsys):
    """--threads changes the speed only: the saved weights are the same, and a run may
    resume with another thread count."""
    quick = ["--dataset", "mnist-sample", "--no-progress", "--limit", "512", "--test-limit",
             "100", "--batch-size", "128", "--schedule", "constant"]
    files = {}
    for count in ("1", "2"):
        files[count] = tmp_path / f"t{count}.npz"
        assert main(["train", "cnn", *quick, "--epochs", "2", "--threads", count,
                     "--save", str(files[count])]) == 0
        assert f", {count} thread" in capsys.readouterr().out
    resumed = tmp_path / "resumed.npz"
    assert main(["train", "cnn", *quick, "--epochs", "1", "--threads", "2",
                 "--save", str(resumed)]) == 0
    assert main(["train", "--resume", str(resumed), "--epochs", "2", "--threads", "1",
                 "--no-progress"]) == 0
    nets = [load(files["1"]), load(files["2"]), load(resumed)]
    for a, b in zip(nets[0].param_triples(), nets[1].param_triples(), strict=True):
        np.testing.assert_array_equal(a[1], b[1])
    for a, b in zip(nets[0].param_triples(), nets[2].param_triples(), strict=True):
        np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize("model, last", [("cnn", 28), ("deep", 32)])
def test_how_busy_the_machine_is_changes_no_result(model, last):
    """The same bits beside a process that keeps a core busy as on a quiet machine: BLAS's
    threads, which may split long sums differently, depend on the batch size only (one
    thread in a pass with shards, BLAS's own setting otherwise), never on the load."""
    import subprocess
    import sys

    from cnn_numpy.data import load_dataset

    sample = load_dataset("mnist-sample", progress=False)
    n = 5 * 32 + last
    X, y = sample.x_train[:n], sample.y_train[:n]
    weights = []
    for busy in (False, True):
        loop = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
        try:
            net = build_model(model, seed=0, optimizer="adam")
            for start in range(0, n, 32):  # five batches of 32, then the last one
                net.train(X[start : start + 32], y[start : start + 32], 0.001)
            weights.append([p.copy() for _, p, _ in net.param_triples()])
        finally:
            if loop is not None:
                loop.kill()
                loop.wait()
    for a, b in zip(*weights, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.skipif(__import__("platform").libc_ver()[0] != "glibc",
                    reason="the allocator setting is glibc's")
@pytest.mark.parametrize("setting", ["", "0"])
def test_the_allocator_setting_is_made_once_and_can_be_switched_off(setting):
    """keep_freed_memory makes glibc serve an 8 MB array from its heap instead of a fresh
    mmap (mallinfo2's hblkhd counts mmapped bytes); CNN_NUMPY_KEEP_MEMORY=0 leaves it."""
    import os
    import subprocess
    import sys

    code = ("import ctypes, numpy as np\n"
            "from cnn_numpy.fast import threads\n"
            "class Info(ctypes.Structure):\n"
            "    _fields_ = [(n, ctypes.c_size_t) for n in ('arena', 'ordblks', 'smblks', "
            "'hblks', 'hblkhd', 'usmblks', 'fsmblks', 'uordblks', 'fordblks', 'keepcost')]\n"
            "libc = ctypes.CDLL(None)\n"
            "libc.mallinfo2.restype = Info\n"
            "threads.keep_freed_memory()\n"
            "before = libc.mallinfo2().hblkhd\n"
            "a = np.ones(1 << 21, np.float32)\n"
            "print(libc.mallinfo2().hblkhd - before)\n")
    env = {**os.environ, threads.MEMORY_ENV_VAR: setting}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout
    mapped = int(out)
    assert (mapped >= 8 << 20) if setting == "0" else mapped == 0


def test_what_the_process_did_before_changes_no_result():
    """A run trained in a thread gives the same bits after another net predicted on the
    main thread (which sets BLAS's threads there): OpenBLAS was seen to ignore a thread
    count set from a thread once the main thread had set one, so the count is set per
    thread (threads.single_threaded_blas)."""
    from cnn_numpy.data import load_dataset

    sample = load_dataset("mnist-sample", progress=False)

    def trained_in_a_thread():
        out = {}

        def work():
            net = build_model("cnn", seed=0, optimizer="adam")
            for start in range(0, 160, 32):
                net.train(sample.x_train[start : start + 32],
                          sample.y_train[start : start + 32], 0.001)
            out["weights"] = [p.copy() for _, p, _ in net.param_triples()]

        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
        return out["weights"]

    before = trained_in_a_thread()
    other = build_model("cnn", seed=1)
    other.build((28, 28, 1))
    other.predict(sample.x_test[:1])  # the main thread's own pass
    for a, b in zip(before, trained_in_a_thread(), strict=True):
        np.testing.assert_array_equal(a, b)

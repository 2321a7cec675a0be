"""Both cores busy: batch shards on a small thread pool.

NumPy runs elementwise work, copies and reductions on one core, but it
releases Python's lock (the GIL) while it does, so threads can compute at
the same time.  The fast path (path.py) splits a batch into *shards* and
runs the operations that treat every sample on its own (convolution,
pooling, dense, ...) on each shard, on the calling thread and the pool's
worker threads (N threads in all: the caller and N - 1 workers).
BatchNorm while training takes the shards together (batchnorm.py: its statistics are sums
over the shards); other layers that look at the whole batch (Dropout while
training, the loss) run once on the batch.

Identical results whatever the number of threads: the shards depend on the
batch's shape and the network (its weights, a sample's multiply-adds, its
convolutions' engines) only (`shard_slices`), each
shard is computed by the same code on whichever thread takes it, and the Net
adds the shards' weight gradients in shard order.  While a pass runs operations on shards,
NumPy's BLAS computes on one thread, so that its own threads do not fight
the workers for the cores (blas_for_pass).

    CNN_NUMPY_THREADS=1 python -m cnn_numpy train cnn   # or --threads 1, or set_threads(1)

The default is one thread per core this process may use.
"""

from __future__ import annotations

import contextvars
import ctypes
import os
import platform
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TypeVar

T = TypeVar("T")

ENV_VAR = "CNN_NUMPY_THREADS"

#: The most threads one may ask for.
MAX_THREADS = 1024
#: At most this many shards, however large the batch.
MAX_SHARDS = 8
#: Samples per shard, at least, when training a network of many weights.  Each shard
#: costs a fixed amount on top of its samples (every dense layer makes a whole weight
#: gradient per shard, and the shards are joined for each layer that needs the whole
#: batch), which shards of 32 did not win back: on 2 cores they trained the cnn at
#: batch 64 and the deep model at 64 and 128 slower than one whole batch.
MIN_SHARD = 64
#: The same for a network whose convolutions all run in blocks of images on the thread
#: pool (the im2col engine's; stride-group convolutions have only the shards for the
#: second core): shards of 64 trained the zoo's small VGG and two-convolution network at
#: batch 128 slower than the whole batch (docs/performance.md).
BLOCKED_SHARD = 128
#: The same for a pass whose shards have no gradients to add up (a prediction) or few:
#: training a network of FEW_WEIGHTS weights or fewer.  Shards of 32 predicted the zoo's
#: batches of 64 faster than one shard, and trained those of its networks with 95 K
#: weights or fewer faster too, while networks of 225 K weights or more trained slower
#: (docs/performance.md).
MIN_LIGHT_SHARD = 32
FEW_WEIGHTS = 2**17
#: The same again, for such a pass whose samples each take HEAVY_SAMPLE multiply-adds or
#: more (its convolutions' and dense layers'): at batch 32 on two threads, shards of 16
#: trained the zoo's strided network and narrow stack faster than one shard, and
#: predicted the strided network and the small VGG faster, while LeNet-5, 0.42 M
#: multiply-adds a sample, trained slower so.  On one thread, which runs the shards in
#: turn, they cost 7-15% (docs/performance.md).
MIN_HEAVY_SHARD = 16
HEAVY_SAMPLE = 2**20
#: Layers whose samples (input and output) all hold fewer numbers than this stay
#: whole.  NumPy keeps Python's lock through small operations, so threads on
#: short vectors mostly wait for each other.  A pass with a sample this large
#: runs BLAS on one thread (large_sample).
MIN_SAMPLE_SIZE = 2048

_lock = threading.RLock()
_in_task = threading.local()  # .active: this thread is running one of run_all's tasks
_threads: int | None = None  # None: not chosen yet (environment or core count)
_pool: ThreadPoolExecutor | None = None
_pool_size = 0  # its max_workers


def shard_slices(n: int, training: bool = True, weights: int | None = None,
                 work: int | None = None, blocked: bool = False) -> list[slice]:
    """How a batch of n samples is split: contiguous slices, a function of n, training,
    the network's number of weights, a sample's multiply-adds (None: not known, taken
    as many weights and few multiply-adds) and `blocked` (whether its convolutions all
    run in blocks of images on the thread pool) only.

    Shards of MIN_SHARD (64) samples or a little more, at most 8: one shard below
    128 samples, 2 for 128, 8 from 512 on; in training a blocked network of many
    weights, shards of BLOCKED_SHARD (128) or more.  More shards than threads let an
    idle worker take over work from one that another program slows down.  A
    prediction has no gradients to add up, and the training of a network of
    FEW_WEIGHTS weights or fewer has few, so they take shards of MIN_SHARD, blocked
    or not, and 2 shards at least from 2 * MIN_LIGHT_SHARD samples on, or from
    2 * MIN_HEAVY_SHARD when a sample takes `work` >= HEAVY_SAMPLE multiply-adds.
    """
    light = not training or (weights is not None and weights <= FEW_WEIGHTS)
    size = BLOCKED_SHARD if blocked and not light else MIN_SHARD
    count = max(1, min(MAX_SHARDS, n // size))
    least = MIN_HEAVY_SHARD if work is not None and work >= HEAVY_SAMPLE else MIN_LIGHT_SHARD
    if light and n >= 2 * least:
        count = max(count, 2)
    return even_slices(n, count)


def even_slices(n: int, count: int) -> list[slice]:
    """range(n) as `count` consecutive slices whose sizes differ by 1 at most."""
    edges = [round(i * n / count) for i in range(count + 1)]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def large_sample(sample_size: int) -> bool:
    """Whether a sample of sample_size numbers (an input or output of a layer) is large:
    a run of layers with one is worth splitting into shards, and a pass with one
    runs BLAS on one thread (FastPath.forward)."""
    return sample_size >= MIN_SAMPLE_SIZE


def _check_count(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_THREADS:
        raise ValueError(f"{where} must be an integer from 1 to {MAX_THREADS} (the "
                         f"threads that compute), got {value!r}")
    return value


def default_threads() -> int:
    """CNN_NUMPY_THREADS if set, else the number of cores this process may run on."""
    text = os.environ.get(ENV_VAR, "").strip()
    if text:
        try:
            value = int(text)
        except ValueError:
            value = text
        return _check_count(value, f"the environment variable {ENV_VAR}")
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def get_threads() -> int:
    """The number of threads a Net computes with: the calling thread and one fewer workers."""
    global _threads
    with _lock:
        if _threads is None:
            _threads = default_threads()
        return _threads


def set_threads(count: int | None) -> None:
    """Compute with `count` threads from now on (None: back to the default).

    Results do not depend on it, only speed does.
    """
    global _threads
    count = None if count is None else _check_count(count, "threads")
    with _lock:
        _threads = count  # the pool grows when run_all needs more workers; it never shrinks


def run_all(tasks: Sequence[Callable[[], T]]) -> list[T]:
    """Each task's result, in task order: tasks on shards, run on the calling thread and
    the pool's workers when there are several threads, with BLAS on one thread
    either way.  (On a busy machine the workers stay: the kernel shares the cores
    per thread, so two workers beside two busy processes kept 62% of their idle
    speed, one 48%.)  A single task (a batch in one shard) runs here as it is,
    BLAS's setting unchanged.

    Errors: on several threads, the first failing task's exception (in task
    order) is raised after every task has finished; on one thread, and for
    tasks inside a task, the tasks run in order and the first failure stops
    them.  Ctrl-C (any exception that is not an Exception) on the calling
    thread is raised at once.
    """
    if len(tasks) == 1:
        return [tasks[0]()]
    threads = get_threads()
    with single_threaded_blas():
        # Tasks of a task (a dense layer's blocks inside a shard) run here, in order: the
        # workers may all be busy with the tasks around them.
        if threads == 1 or getattr(_in_task, "active", False):
            return [task() for task in tasks]
        results: list = [None] * len(tasks)
        errors: list[Exception | None] = [None] * len(tasks)
        order = iter(range(len(tasks)))  # shared: next() on it is atomic under the GIL

        def work() -> None:
            _in_task.active = True
            try:
                with single_threaded_blas():  # this thread's own BLAS count
                    for i in order:  # the next task no thread has taken yet
                        try:
                            results[i] = tasks[i]()
                        except Exception as error:  # raised below, in task order
                            errors[i] = error
            finally:
                _in_task.active = False

        # The caller works too: one hand-over fewer per pass (8% faster training).
        helpers = _helpers(work, min(threads, len(tasks)) - 1)
        try:
            work()
        except BaseException:
            for helper in helpers:
                helper.cancel()
            raise
        for helper in helpers:  # every task is taken: wait only for helpers that began
            if not helper.cancel():
                helper.result()
        for error in errors:
            if error is not None:
                raise error
        return results


def _helpers(work: Callable[[], None], count: int) -> list:
    """Up to `count` pool workers running work(), each in a copy of the caller's context
    (np.errstate lives there).  Fewer, or none, when the pool takes no more (the
    interpreter is exiting): the caller then does the rest."""
    global _pool, _pool_size
    with _lock:
        if _pool_size < count:  # it grows, never shrinks: idle workers cost nothing
            # The old pool is not shut down: another thread may be submitting to it.
            # Its workers end when it is collected.
            _pool = ThreadPoolExecutor(max_workers=count, thread_name_prefix="cnn_numpy")
            _pool_size = count
        pool = _pool
    helpers = []
    for _ in range(count):
        try:
            helpers.append(pool.submit(contextvars.copy_context().run, work))
        except RuntimeError:  # cannot schedule new futures after (interpreter) shutdown
            break
    return helpers


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """NumPy's BLAS on one thread inside the block, for the calling thread: a fast pass
    with shards or blocks (blas_for_pass) and each task of run_all, on whichever thread
    runs it.

    Whatever the number of workers: BLAS's own threads would fight the workers for
    the cores, and BLAS may add a product's sums in another order on one thread than
    on two, so the setting must not depend on what other threads do.  OpenBLAS keeps
    a thread count per calling thread (openblas_set_num_threads_local), which is used
    where the library has it: a process-wide count, changed from one thread, was seen
    to be ignored by OpenBLAS once the main thread had changed it, so a step's bits
    depended on what the process had done before.  Other libraries get the
    process-wide setting, counted over nested and concurrent blocks.
    """
    setters = _local_setters()
    _one_blas.depth = getattr(_one_blas, "depth", 0) + 1
    try:
        if setters:
            before = [set_local(1) for set_local in setters]
            try:
                yield
            finally:
                for set_local, count in zip(setters, before, strict=True):
                    set_local(count)
        else:
            with _process_wide_single_blas():
                yield
    finally:
        _one_blas.depth -= 1


def blas_on_one_thread() -> bool:
    """True inside single_threaded_blas on the calling thread: its products run on one
    core unless the caller cuts them into tasks for the pool."""
    return getattr(_one_blas, "depth", 0) > 0


@contextmanager
def _process_wide_single_blas() -> Iterator[None]:
    """BLAS on one thread for the whole process, for a library without a per-thread
    count; the setting before the first of nested and concurrent blocks comes back
    after the last."""
    global _blas_users
    with _lock:
        if _blas_users == 0:
            _blas_default[:] = [lib.get_num_threads() for lib in _blas_libraries()]
            for lib in _blas_libraries():
                lib.set_num_threads(1)
        _blas_users += 1
    try:
        yield
    finally:
        with _lock:
            _blas_users -= 1
            if _blas_users == 0:
                for lib, default in zip(_blas_libraries(), _blas_default, strict=True):
                    lib.set_num_threads(default)


def blas_for_pass(one_thread: bool) -> AbstractContextManager:
    """BLAS's threads for a fast pass: one thread (single_threaded_blas) when one_thread
    (path._one_blas_thread: the pass uses the thread pool, or has large samples), for
    its operations on the whole batch too; else BLAS's own setting.

    Whole-batch work between the shards would otherwise wake BLAS's own
    threads, which keep spinning for a while after each product and take the
    cores from the workers, or from this thread's elementwise steps.  The
    choice depends on the batch size and the shapes only, never on how busy
    the machine is: OpenBLAS splits some long sums between its threads, so one
    thread or two may differ in the last bits, and a result must not depend on
    what else the machine runs.
    """
    return single_threaded_blas() if one_thread else nullcontext()


_blas_users = 0  # blocks inside single_threaded_blas now
_one_blas = threading.local()  # depth: the calling thread's blocks inside it
_blas: list | None = None  # threadpoolctl's controllers of NumPy's BLAS libraries
_blas_default: list[int] = []  # their thread counts when the first block began


def _blas_libraries() -> list:
    global _blas
    if _blas is None:
        from threadpoolctl import ThreadpoolController

        _blas = ThreadpoolController().select(user_api="blas").lib_controllers
    return _blas


_setters: list | None = None  # each BLAS library's per-thread count setter, if all have one


def _local_setters() -> list:
    """openblas_set_num_threads_local of every BLAS library NumPy uses, as functions that
    set the calling thread's count and return the previous one; [] unless every
    library has it (OpenBLAS 0.3.26 and later)."""
    global _setters
    if _setters is None:
        found = []
        for lib in _blas_libraries():
            try:
                setter = ctypes.CDLL(lib.filepath).openblas_set_num_threads_local
            except (OSError, AttributeError):
                found = []
                break
            setter.argtypes, setter.restype = [ctypes.c_int], ctypes.c_int
            found.append(setter)
        _setters = found
    return _setters


#: Set CNN_NUMPY_KEEP_MEMORY=0 to leave the C allocator's settings alone.
MEMORY_ENV_VAR = "CNN_NUMPY_KEEP_MEMORY"
_memory_kept = False


def keep_freed_memory() -> None:
    """Let glibc's allocator keep freed arrays for the next step: a process-wide setting,
    made once, by the first fast pass (later calls return at once).

    Every training step allocates the same large arrays (a few MB each) and
    frees them.  By default glibc gives such blocks back to the kernel at
    once, and the next step pays a page fault per 4 KB page to get them
    back.  Here blocks up to 32 MB come from the heap, which keeps up to
    256 MB of free space instead of trimming it, so the next step reuses the
    same memory.  This changes how the whole process allocates memory, not
    only cnn-numpy: set the environment variable CNN_NUMPY_KEEP_MEMORY=0
    (before the first training step) to leave the allocator alone; results
    are the same either way, only speed differs.  Nothing happens outside glibc.
    """
    global _memory_kept
    if _memory_kept:
        return
    _memory_kept = True
    if os.environ.get(MEMORY_ENV_VAR, "").strip() == "0" or platform.libc_ver()[0] != "glibc":
        return
    libc = ctypes.CDLL(None)
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    libc.mallopt(m_mmap_threshold, 32 * 2**20)
    libc.mallopt(m_trim_threshold, 256 * 2**20)

"""Training: prepare a run, then run the loop with callbacks.

    settings.py     Settings (what a run is asked to do), Progress, the limits of each number
    prepare.py      prepare_run: the images that train, validate and test; what is recorded
    loop.py         train: epochs of shuffled mini-batches, calling the callbacks
    callbacks.py    Callback, and the ones shipped: ProgressBar, EpochLog, LossWarning,
                    HistoryFile, PlotFile, History, EarlyStopping
    checkpoints.py  Checkpoint (a callback), load_checkpoint, what a resumed run may change
    fit.py          Net.fit

The command line, the page and Net.fit all prepare a run with prepare_run and train it
with train, so the same settings give the same weights from any of them.
"""

from .callbacks import (
    Callback,
    EarlyStopping,
    EpochLog,
    History,
    LossWarning,
    PlotFile,
    ProgressBar,
    epoch_line,
    weight_arrays,
)
from .checkpoints import (
    CHECKPOINT_VERSION,
    Checkpoint,
    load_checkpoint,
    replanned_note,
    resume_settings,
    save_checkpoint,
)
from .fit import fit
from .history_files import HistoryFile, read_run, write_history
from .loop import EVAL_CHUNK, train
from .prepare import (
    MIN_VALIDATED,
    VALIDATION,
    PreparedRun,
    data_fingerprint,
    default_validation,
    evaluation_data,
    evaluation_warning,
    hold_out,
    load_run_data,
    prepare_run,
    record_data,
    run_settings,
)
from .settings import (
    HISTORY_KEYS,
    LIMITS,
    MAX_AUGMENT,
    MAX_EPOCHS,
    Progress,
    Range,
    Settings,
    check_setting,
)

__all__ = [
    "Callback", "check_setting", "Checkpoint", "CHECKPOINT_VERSION", "data_fingerprint",
    "default_validation", "EarlyStopping", "epoch_line", "EpochLog", "EVAL_CHUNK",
    "evaluation_data", "evaluation_warning", "fit", "History", "HISTORY_KEYS", "HistoryFile",
    "hold_out", "LIMITS", "load_checkpoint", "load_run_data", "LossWarning", "MAX_AUGMENT",
    "MAX_EPOCHS", "MIN_VALIDATED", "PlotFile", "prepare_run", "PreparedRun", "Progress",
    "ProgressBar", "Range", "read_run", "record_data", "replanned_note", "resume_settings",
    "run_settings", "save_checkpoint", "Settings", "train", "VALIDATION", "weight_arrays",
    "write_history",
]

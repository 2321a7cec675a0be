"""Open one training step: every number of the forward pass, the backward pass and the
update, kept by name and explained.

    from cnn_numpy.trace import trace_step
    trace = trace_step(net, X, y, learning_rate=0.1)   # one step, exactly as net.train
    trace.names(0)                                     # what layer 0 kept
    e = trace.explain(0, "Z", (0, 3, 4, 7))            # one number of it
    e.value, e.total, e.equation(), e.source, e.largest(5), e.to_dict()

docs/trace.md shows it in a notebook.  The modules: step.py (trace_step, Trace),
explanation.py (Explanation and its terms), records.py (LayerTrace), and one module per
family of layers saying how each of their numbers is made (conv.py, dense.py,
batchnorm.py, elementwise.py) and update.py for the optimizers.
"""

from .explanation import Explanation, Number, Source, Term
from .records import LayerTrace
from .step import Trace, trace_step

__all__ = ["trace_step", "Trace", "LayerTrace", "Explanation", "Term", "Number", "Source"]

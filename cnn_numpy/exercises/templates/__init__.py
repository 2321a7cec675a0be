"""The exercise files as `cnn-numpy exercises DIR` writes them: each function's docstring
(shapes, the equation, a hint) and a body that raises NotImplementedError.  No answers
here: the reference is cnn_numpy/engines/naive.py."""

"""The way out of NumPy, and back: PyTorch and ONNX.

    from cnn_numpy.interop import to_torch, from_torch, to_onnx
    model = to_torch(net)          # torch.nn.Sequential, NCHW input, logits out
    net = from_torch(model)        # back to a cnn-numpy Net
    to_onnx(net, "model.onnx")     # (n, height, width, channels) in, probabilities out

PyTorch and ONNX are optional: `pip install "cnn-numpy[torch]"` or
`"cnn-numpy[onnx]"`.  Importing this module needs neither; calling a
function whose library is missing raises an ImportError naming the extra.
"""

from .onnx_export import to_onnx
from .pytorch import export_torch, from_torch, to_torch

__all__ = ["to_torch", "from_torch", "export_torch", "to_onnx"]

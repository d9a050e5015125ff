"""Taking a trained model out of the suite: ONNX graphs checked by onnxruntime, safetensors weights.

``core.export`` sits above ``core.train`` (it reads checkpoints through it) and is used by ``mas-export``.
"""

"""The ONNX graphs of a SubTransformer, their export, and decoding with ONNX Runtime."""

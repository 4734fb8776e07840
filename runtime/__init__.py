"""ml-matching runtime: serve ONNX match-success models with onnxruntime (no scikit-learn)."""

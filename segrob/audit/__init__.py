"""The audit: an onnxruntime robustness benchmark over a perturbation suite."""

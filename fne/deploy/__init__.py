"""Shipping a searched cell: ONNX export checked by onnxruntime, and latency measured and predicted per device.

onnx_export.py writes and checks the ONNX file, runtime_latency.py times PyTorch and onnxruntime for the
export's summary, timing.py is the one timer both use (torch.utils.benchmark). latency_parts.py names what
a network of each space is made of, latency_table.py measures and caches those parts per device, and
latency_model.py predicts a genotype's latency from the table for the search's budget and objective.
"""

"""Shipping a searched cell: ONNX export checked by onnxruntime, and latency measured and predicted per device.

onnx_export.py writes and checks the ONNX file, runtime_latency.py times PyTorch and onnxruntime for the
export's summary, timing.py is the one timer all of them use (torch.utils.benchmark). latency_parts.py names
what a network of each space is made of, latency_table.py keeps those parts' latencies per device,
latency_model.py predicts a genotype's latency from the table, and latency_search.py makes the prediction a
search's budget (--max-latency-ms) and objective (log_latency).
"""

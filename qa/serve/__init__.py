"""Stage 4, serving a trained folder: its files (model_files), answering questions (predict,
pipeline, passages), the ONNX export (export) and the Hub upload (hub).
"""

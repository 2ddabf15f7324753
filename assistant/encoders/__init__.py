"""Encoders: text to vectors.

Takes a sentence-transformers model folder (the packaged all-MiniLM-L6-v2, or the same model
adapted to the corpus by :mod:`.adaptation`). Gives passage and query encoders behind one
interface (:mod:`.embedding`): ONNX Runtime graphs exported once into a content-addressed
cache (:mod:`.onnx_export`, :mod:`.onnx_models`, :mod:`.onnx_encoder`), with numpy
(:mod:`.fast_encoder`) and torch fallbacks.
"""

"""Evaluation: the OCR benchmark over a folder of documents with ground truth (`benchmark`) and its
metrics (`metrics`: CER, word F1, ANLS)."""

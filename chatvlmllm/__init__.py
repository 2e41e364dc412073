"""chatvlmllm: chat with your documents through local vision-language models."""

__version__ = "0.1.0"

"""Models: what exists, what fits here, and which one runs.

- `families`: the registry of model families, declared by the adapters in `chatvlmllm.engines`.
- `catalog`: the built-in and user models (`ModelSpec`), derived from the families and the models file.
- `hardware`, `planner`: this machine's GPU and memory; the load plan (device, dtype, attention, pixels).
- `weights`, `downloads`: where a model's weights are, and fetching them.
- `tasks`: what a request asks for (`classify` → `Task`), the prompts, the offline engines.
- `choice`: each model's status here, the default model and the best model per task.
- `doctor`: the report `chatvlmllm doctor` and the System page show.

Imports documents and the base modules, never an engine adapter or the chat.
"""

"""Chat: a conversation about documents, answered by models, kept in the database.

- `session`: `ChatSession`, a conversation with its documents; `ask` records a question.
- `answer`: `Answer`, one answer's lifecycle (states, Stop, partial saves, the saved turn).
- `conversation`: turns, transcripts and their exports.
- `context`: what fits in one request (turns, pages, pixels).
- `router`: answer with the chosen model, then the fallback chain.
- `engine_cache`: loaded engines, one per model and plan, shared by every caller.
- `store`: the chat history in the database.
- `document_reading`: OCR for the whole-document reading job, and a VLM request over retrieved pages.
"""

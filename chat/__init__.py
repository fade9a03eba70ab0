"""The customer's side: conversations, the answer pipeline, SSE streams and the widget."""

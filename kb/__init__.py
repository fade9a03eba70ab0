"""Knowledge bases: documents, chunks, FAQ entries, their indexes and hybrid search."""

"""Long-term memory and documents: embeddings, memories, chunks, ingestion, retrieval."""

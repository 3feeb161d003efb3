"""Speaker embeddings (who is speaking), for meeting diarisation."""

"""Tag vocabularies: the bundled label system, name templates, LLM descriptions, text encoding, `TagSet`."""

"""Client-facing API formats, translated to and from the canonical (OpenAI) chat format."""

"""Response caching: exact (a hash of the normalized, masked request) and semantic (embeddings in
Redis Search), scoped per tenant by default. Never worse than no cache: any trouble bypasses."""

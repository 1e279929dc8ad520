"""kopf handlers: tiny, one module per concern; they validate and request renders."""

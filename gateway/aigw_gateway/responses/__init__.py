"""The Responses API's own state: response ids that route a follow-up, and stored conversations."""

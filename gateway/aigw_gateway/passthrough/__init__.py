"""Same-protocol passthrough: a client's request goes to a target speaking its API untranslated.

One module per client API (anthropic, gemini) describes that API to the shared flow (flow.py);
base.py holds what they share and headers.py the client headers each provider API defines.
"""

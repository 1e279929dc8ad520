"""Live status, read from the gateway pods and written into the custom resources.

- observe.py: pure — the pods' reports of a namespace -> what each object's status says;
- patch.py:   pure — observations -> status merge patches and transition Events;
- reports.py: I/O  — the ready gateway pods (EndpointSlices) and their /internal/report;
- round.py:   I/O  — one status round of a namespace (read reports, patch status, post Events).
"""

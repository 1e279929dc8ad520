from .lean_imports import skip_unused

skip_unused()  # before anything imports redis (see lean_imports.py)

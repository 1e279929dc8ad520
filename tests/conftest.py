"""Root fixtures: real servers (fake providers, Redis, the API-server emulator) for every tier."""

pytest_plugins = [
    "tests.fakes.fixtures",
    "tests.fakes.anthropic_fixtures",
    "tests.fakes.gemini_fixtures",
    "tests.kube.fixtures",
    "tests.gateway.harness",
]

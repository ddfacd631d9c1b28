"""pytest configuration that travels with tests/: CI runs copies of this
directory outside the source tree, where pyproject.toml is not read."""


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "huge_memory: allocates a buffer of about 2 GiB (run by default; "
        "deselect with -m 'not huge_memory')")

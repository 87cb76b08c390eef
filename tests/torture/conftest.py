"""The torture suite uses the integration harness's environment and failure reports.

boto3 in this process must not read the runner's ``~/.aws`` or ``AWS_*``
settings, and a failing round shows the tail of every daemon still running --
the same two hooks as ``tests/integration/conftest.py``, re-exported here so
the suite can run on its own (``pytest tests/torture``).
"""

from tests.integration.conftest import _hermetic_aws_env, pytest_runtest_makereport

__all__ = ["_hermetic_aws_env", "pytest_runtest_makereport"]

from tests.web.conftest import unreachable_cluster  # noqa: F401 - shared fixture

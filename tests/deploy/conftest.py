import pytest

from tests.deploy.images import build_wheel_of_the_image_context


@pytest.fixture(scope="session")
def project_wheel(tmp_path_factory):
    """What ``pip install .`` installs on the deploy images, as a wheel (built once)."""
    return build_wheel_of_the_image_context(tmp_path_factory.mktemp("wheel"))

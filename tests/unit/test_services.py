"""Services: adapters given are used as they are, the rest built on first use; `installed` scopes them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chalicelib import services as services_module
from chalicelib.adapters import clients
from chalicelib.services import Services, get_services, installed
from chalicelib.settings import load_settings
from tests.settings_env import REQUIRED


class FakeSageMaker:
    """Stands in for the SageMaker adapter: only the method the test calls."""

    def create_training_job(self, request: dict[str, object]) -> bool:
        return True


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The settings in the environment and a region for clients (none of them calls AWS), caches fresh."""
    for name, value in {**REQUIRED, "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    services_module.reset()
    yield
    services_module.reset()


def test_a_given_adapter_is_used_as_it_is_and_no_client_is_made(settings_env: None) -> None:
    # Given a Services with its own SageMaker adapter
    fake = FakeSageMaker()
    svc = Services(load_settings(REQUIRED), sagemaker=fake)  # type: ignore[arg-type]

    # When a flow asks for it, then it gets that very object, and no boto3 client was created for it
    assert svc.sagemaker is fake
    assert clients.client.cache_info().currsize == 0


def test_an_unknown_adapter_name_is_refused() -> None:
    with pytest.raises(TypeError, match="sagemakr"):
        Services(load_settings(REQUIRED), sagemakr=FakeSageMaker())  # type: ignore[call-arg]


def test_an_adapter_not_given_is_built_once_on_first_use(settings_env: None) -> None:
    # Given a Services with no adapter of its own
    svc = Services(load_settings(REQUIRED))

    # When its endpoints adapter is asked for twice, then it is built once, on the runtime client
    first = svc.endpoints
    assert svc.endpoints is first
    assert type(first).__name__ == "Endpoints"
    # sagemaker-runtime, sagemaker for a missing endpoint, s3 for asynchronous bodies and captures
    assert clients.client.cache_info().currsize == 3


def test_installed_services_are_the_handlers_until_the_block_ends_nested_or_failing(
    settings_env: None,
) -> None:
    # Given the process-wide defaults
    defaults = get_services()
    outer, inner = Services(defaults.settings), Services(defaults.settings)

    # When services are installed, and others inside them, then the innermost are the handlers'
    with installed(outer):
        assert get_services() is outer
        seen = []

        def fail_inside() -> None:
            with installed(inner):
                seen.append(get_services())
                raise RuntimeError("the test failed inside the block")

        with pytest.raises(RuntimeError):
            fail_inside()
        assert seen == [inner]
        # Then a block that ended with an error gives back what was there before it
        assert get_services() is outer
        # And reset() (a new mock or local cloud) forgets the defaults' caches, not what a block installed
        services_module.reset()
        assert get_services() is outer
    assert get_services() is not outer and get_services() is not inner

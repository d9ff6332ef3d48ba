"""``generate(**options)`` and ``SyncTaskManager(**options)`` are typed: a misspelt option is a
type-checker error (the ``type: ignore`` comments below would be unused, and mypy --strict
would fail, if it were not) and, at run time, a TypeError naming the closest valid one."""

from __future__ import annotations

import inspect

import pytest

from sora_tasks import CreateOptions, ManagerOptions, SyncTaskManager, TaskManager
from sora_tasks.testing import FakeProvider


def keyword_parameters(function: object, *, leaving_out: set[str]) -> set[str]:
    signature = inspect.signature(function)  # type: ignore[arg-type]
    return {
        name
        for name, parameter in signature.parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY and name not in leaving_out
    }


def test_create_options_are_exactly_the_keyword_arguments_of_create() -> None:
    assert set(CreateOptions.__optional_keys__) == keyword_parameters(
        TaskManager.create, leaving_out=set()
    )


def test_manager_options_are_exactly_the_keyword_arguments_of_the_manager() -> None:
    assert set(ManagerOptions.__optional_keys__) == keyword_parameters(
        TaskManager.__init__, leaving_out=set()
    )


@pytest.mark.anyio
async def test_a_misspelt_generate_option_is_a_type_error_naming_the_right_one() -> None:
    async with TaskManager(providers=FakeProvider()) as manager:
        with pytest.raises(TypeError, match=r"'secnds'; did you mean 'seconds'\?"):
            await manager.generate("a cat", secnds=4)  # type: ignore[call-arg]
        page = await manager.list()
    assert page.items == []  # nothing was created


def test_a_misspelt_sync_generate_option_is_a_type_error() -> None:
    with (
        SyncTaskManager(providers=FakeProvider()) as manager,
        pytest.raises(TypeError, match=r"generate\(\) got an unexpected keyword argument 'sed'"),
    ):
        manager.generate("a cat", sed=4)  # type: ignore[call-arg]


def test_a_misspelt_sync_manager_option_is_a_type_error_naming_the_right_one() -> None:
    with pytest.raises(TypeError, match=r"'provider'; did you mean 'providers'\?"):
        SyncTaskManager(provider=FakeProvider())  # type: ignore[call-arg]

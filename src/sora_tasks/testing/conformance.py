"""The provider conformance kit: what "an adapter works" means, as a pytest class to subclass.

Wire the adapter to a simulator of its API once, in a :class:`~sora_tasks.testing.ProviderHarness`,
and the kit checks the whole lifecycle through it::

    from sora_tasks.testing import OpenAISimulatorHarness
    from sora_tasks.testing.conformance import ProviderConformance


    class TestMyAdapter(ProviderConformance):
        @pytest.fixture
        async def harness(self) -> AsyncIterator[ProviderHarness]:
            with OpenAISimulatorHarness.serve(adapter=MyAdapter.for_tests) as harness:
                yield harness

Checks of a part of the lifecycle the provider's API lacks (``harness.features``) or the model
does not take (its capabilities) are skipped, each saying why. Throughout every check the
harness's secret must show in no job, error, repr or log record.

This module needs pytest (``pip install "sora-tasks[testing]"``); ``sora_tasks.testing`` does not.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

try:
    import pytest
except ImportError:
    raise ModuleNotFoundError(
        f'{__name__} needs pytest: pip install "sora-tasks[testing]"'
    ) from None

from .._exceptions import (
    ProviderAuthError,
    ProviderError,
    ProviderHTTPError,
    ProviderRateLimitError,
    ProviderRejectedError,
    ProviderTransportError,
    ProviderUnsupportedError,
    SubmissionUncertainError,
)
from .._models import TaskStatus
from ..providers._base import ProviderJob
from ._conformance_support import closed_port_url, frames_to_try
from ._harness import ProviderHarness, Received
from ._simulator_faults import Faults
from ._simulator_state import Phase, Pin

# the kit's helper asserts too: rewritten, like this module's when the user's conftest.py
# registers it (see docs/testing.md), so a failed check shows its values
pytest.register_assert_rewrite(f"{__package__}._conformance_kit")
from ._conformance_kit import Kit  # noqa: E402

__all__ = ["ProviderConformance"]

_STATUS_OF: dict[Phase, TaskStatus] = {
    "queued": TaskStatus.QUEUED,
    "in_progress": TaskStatus.PROCESSING,
    "completed": TaskStatus.COMPLETED,
    "failed": TaskStatus.FAILED,
    "cancelled": TaskStatus.CANCELLED,
}
_UNKNOWN_WORD = "conformance_unknown_word"
_NO_SUCH_JOB = "conformance_no_such_job"
_FAILURE_CODE = "conformance_failure"
_FAILURE_MESSAGE = "the conformance kit failed this job on purpose"
_IMAGE_URL = "https://images.example/conformance/{name}.png"
_SEED = 424242
# how far a provider's clock may run ahead of ours when it says an output expired "now"
_CLOCK_SKEW = timedelta(seconds=5)


class ProviderConformance:
    """The conformance checks. Subclass it as ``Test...`` and override the ``harness`` fixture.

    Every check is an ``anyio`` test; the adapter's calls are bounded by the harness's short
    ``call_timeout``, so the whole kit runs in seconds.
    """

    pytestmark = pytest.mark.anyio

    @pytest.fixture
    def harness(self) -> ProviderHarness:
        """The adapter under test over a simulator of its API: override this fixture."""
        raise NotImplementedError(
            f"{type(self).__name__} must override the `harness` fixture to yield a ProviderHarness"
        )

    @pytest.fixture
    async def kit(
        self, harness: ProviderHarness, caplog: pytest.LogCaptureFixture
    ) -> AsyncIterator[Kit]:
        """The harness, with every answer kept; at the end, the secret is looked for in all."""
        caplog.set_level(logging.DEBUG)
        kit = Kit(harness)
        try:
            yield kit
        finally:
            await kit.aclose()
        records = [*caplog.get_records("setup"), *caplog.get_records("call"), *caplog.records]
        found = kit.leaks(records)
        assert not found, "the harness's secret leaked into: " + "; ".join(found)

    # -- submit ---------------------------------------------------------------------------

    async def test_submit_text_only(self, kit: Kit) -> None:
        """A prompt alone reaches the API with the model, duration and frame asked for."""
        request = kit.request()
        _, received = await kit.submit(request)
        _assert_frame(received, request.size, request.aspect_ratio, request.resolution)
        assert received.image is None and received.last_frame is None
        assert received.reference_images == ()
        if "http" in kit.harness.features:
            assert kit.harness.sent("create") == 1

    async def test_submit_each_frame(self, kit: Kit) -> None:
        """Every size, or ratio and resolution, the model takes arrives as asked."""
        by_size = kit.capabilities.sizes is not None
        for frame in frames_to_try(kit.capabilities):
            if by_size:
                request = kit.request(size=frame.size)
            else:
                request = kit.request(aspect_ratio=frame.aspect_ratio, resolution=frame.resolution)
            _, received = await kit.submit(request)
            _assert_frame(received, frame.size, frame.aspect_ratio, frame.resolution)

    async def test_submit_each_duration(self, kit: Kit) -> None:
        """Every duration the model takes arrives as asked."""
        durations = kit.capabilities.seconds
        if durations is None:
            pytest.skip(f"{kit.model} declares no list of durations")
        for seconds in sorted(durations):
            _, received = await kit.submit(kit.request(seconds=seconds))
            assert received.seconds in (None, seconds)

    async def test_submit_uploaded_first_frame(self, kit: Kit) -> None:
        """An image given as bytes reaches the API as those bytes."""
        kit.require("image_upload", "the API takes no uploaded image")
        if not kit.capabilities.image_upload:
            pytest.skip(f"{kit.model} takes no uploaded first frame")
        image = kit.image(kit.request().size)
        _, received = await kit.submit(kit.request(image=image))
        assert received.image == image.data, "the first frame did not arrive as uploaded"

    async def test_submit_first_frame_url(self, kit: Kit) -> None:
        """An image given as a URL reaches the API as that URL."""
        kit.require("image_url", "the API takes no image URL")
        if not kit.capabilities.image_url:
            pytest.skip(f"{kit.model} takes no first frame by URL")
        url = _IMAGE_URL.format(name="first-frame")
        _, received = await kit.submit(kit.request(image_url=url))
        assert received.image == url

    async def test_submit_negative_prompt(self, kit: Kit) -> None:
        """A negative prompt arrives verbatim where the model takes one."""
        if not kit.capabilities.negative_prompt:
            pytest.skip(f"{kit.model} takes no negative_prompt")
        text = "blurry, low contrast, text overlays"
        _, received = await kit.submit(kit.request(negative_prompt=text))
        assert received.negative_prompt == text

    async def test_submit_seed(self, kit: Kit) -> None:
        """A seed arrives as given where the model takes one."""
        if not kit.capabilities.seed:
            pytest.skip(f"{kit.model} takes no seed")
        _, received = await kit.submit(kit.request(seed=_SEED))
        assert received.seed == _SEED

    async def test_submit_audio(self, kit: Kit) -> None:
        """Each value of the audio switch the model takes arrives as given."""
        values = kit.capabilities.audio
        if not values:
            pytest.skip(f"{kit.model} has no audio switch")
        for value in sorted(values):
            _, received = await kit.submit(kit.request(audio=value))
            assert received.audio is value

    async def test_submit_last_frame(self, kit: Kit) -> None:
        """A last frame arrives as its bytes (or its URL) where the model takes one, after a
        first frame when the model takes one (some take a last frame only after a first)."""
        if not kit.capabilities.last_frame:
            pytest.skip(f"{kit.model} takes no last_frame")
        size = kit.request().size
        if "image_upload" in kit.harness.features and kit.capabilities.image_upload:
            image = kit.image(size, shade=30)
            first = kit.image(size, shade=200)
            _, received = await kit.submit(kit.request(image=first, last_frame=image))
            assert received.last_frame == image.data
            assert received.image == first.data
        else:
            url = _IMAGE_URL.format(name="last-frame")
            first_url = _IMAGE_URL.format(name="first-frame")
            with_first = {"image_url": first_url} if kit.capabilities.image_url else {}
            _, received = await kit.submit(kit.request(last_frame=url, **with_first))
            assert received.last_frame == url

    async def test_submit_reference_images(self, kit: Kit) -> None:
        """As many reference images as the model takes arrive, in order."""
        most = kit.capabilities.max_reference_images
        if most == 0:
            pytest.skip(f"{kit.model} takes no reference_images")
        if "image_upload" in kit.harness.features and kit.capabilities.image_upload:
            size = kit.request().size
            images = [kit.image(size, shade=60 + 20 * n) for n in range(most)]
            _, received = await kit.submit(kit.request(reference_images=tuple(images)))
            assert received.reference_images == tuple(image.data for image in images)
        else:
            urls = tuple(_IMAGE_URL.format(name=f"reference-{n}") for n in range(most))
            _, received = await kit.submit(kit.request(reference_images=urls))
            assert received.reference_images == urls

    async def test_submit_provider_options_verbatim(self, kit: Kit) -> None:
        """``provider_options`` reach the provider's input unchanged."""
        if not kit.capabilities.provider_options:
            pytest.skip(f"{kit.model} takes no provider_options")
        options = dict(kit.harness.provider_options)
        if not options:
            pytest.skip(f"{type(kit.harness).__name__}: the API takes no input beyond the mapped")
        _, received = await kit.submit(kit.request(provider_options=options))
        for key, value in options.items():
            assert key in received.options, f"provider option {key!r} did not arrive"
            assert received.options[key] == value, f"provider option {key!r} arrived changed"

    # -- status ---------------------------------------------------------------------------

    async def test_every_status_word_maps(self, kit: Kit) -> None:
        """Each of the API's status words becomes the status it stands for, the word kept."""
        assert kit.harness.status_words, "the harness names no status words"
        job, _ = await kit.submit(kit.request())
        for word, phase in kit.harness.status_words.items():
            pin = Pin(phase, word=word, progress=50 if phase == "in_progress" else None)
            if phase == "failed":
                pin = Pin(
                    phase, word=word, error_code=_FAILURE_CODE, error_message=_FAILURE_MESSAGE
                )
            await kit.harness.pin(job.external_id, pin)
            answer = await kit.status(job.external_id)
            assert answer.status is _STATUS_OF[phase], (
                f"status word {word!r} became {answer.status}, not {_STATUS_OF[phase]}"
            )
            assert answer.raw_status == word, (
                f"status word {word!r} was kept as {answer.raw_status!r}"
            )

    async def test_unknown_status_word_is_kept_raw(self, kit: Kit) -> None:
        """A word nobody knows gives no status (the manager decides), and is kept as it came."""
        job, _ = await kit.submit(kit.request())
        await kit.harness.pin(job.external_id, Pin("in_progress", word=_UNKNOWN_WORD))
        answer = await kit.status(job.external_id)
        assert answer.status is None
        assert answer.raw_status == _UNKNOWN_WORD

    async def test_progress_is_read(self, kit: Kit) -> None:
        """The API's progress becomes ``progress`` in percent."""
        kit.require("progress", "the API reports no progress")
        job, _ = await kit.submit(kit.request())
        for percent in (0, 37, 99):
            await kit.harness.pin(job.external_id, Pin("in_progress", progress=percent))
            answer = await kit.status(job.external_id)
            assert answer.status is TaskStatus.PROCESSING
            assert answer.progress == percent

    async def test_missing_progress_is_handled(self, kit: Kit) -> None:
        """An answer without progress is still read: no progress, or none made up."""
        job, _ = await kit.submit(kit.request())
        await kit.harness.pin(job.external_id, Pin("in_progress", progress=None))
        answer = await kit.status(job.external_id)
        assert answer.status is TaskStatus.PROCESSING
        if "progress" in kit.harness.features:
            assert answer.progress in (None, 0)
        else:
            assert answer.progress is None or 0 <= answer.progress <= 100

    async def test_poll_after_hint(self, kit: Kit) -> None:
        """The provider's hint of when to ask again becomes ``poll_after`` in seconds."""
        kit.require("poll_after", "the API gives no poll-after hint")
        job, _ = await kit.submit(kit.request())
        await kit.harness.pin(job.external_id, Pin("in_progress", progress=10, poll_after=2.5))
        answer = await kit.status(job.external_id)
        assert answer.poll_after == pytest.approx(2.5)

    async def test_queue_position(self, kit: Kit) -> None:
        """A queued job's position is read where the adapter exposes it."""
        kit.require("queue_position", "the API reports no queue position")
        if "queue_position" not in ProviderJob.model_fields:
            pytest.skip("ProviderJob has no queue_position field to read it into")
        job, _ = await kit.submit(kit.request())
        await kit.harness.pin(job.external_id, Pin("queued", queue_position=3))
        answer = await kit.status(job.external_id)
        assert answer.status is TaskStatus.QUEUED
        assert getattr(answer, "queue_position", None) == 3

    async def test_done_but_empty_is_failed(self, kit: Kit) -> None:
        """A job done with no output is FAILED with a code, never COMPLETED, and has nothing
        to download (rather than an empty video)."""
        kit.require("empty_result", "the API cannot finish a job without output")
        job, _ = await kit.submit(kit.request())
        await kit.harness.pin(job.external_id, Pin("completed", empty=True))
        answer = await kit.status(job.external_id)
        assert answer.status is TaskStatus.FAILED, f"an empty result became {answer.status}"
        assert answer.error is not None and answer.error.code.strip(), "FAILED without a code"
        await kit.raises(ProviderError, kit.download(job.external_id))

    async def test_failure_carries_code_and_message(self, kit: Kit) -> None:
        """A failed job's error is the provider's own code and message."""
        job, _ = await kit.submit(kit.request())
        pin = Pin("failed", error_code=_FAILURE_CODE, error_message=_FAILURE_MESSAGE)
        await kit.harness.pin(job.external_id, pin)
        answer = await kit.status(job.external_id)
        assert answer.status is TaskStatus.FAILED
        assert answer.error is not None
        assert answer.error.code == _FAILURE_CODE
        assert _FAILURE_MESSAGE in answer.error.message

    async def test_unknown_job_is_not_found(self, kit: Kit) -> None:
        """A job the provider does not know is a 404 (the manager then calls the task lost),
        and has nothing to download."""
        error = await kit.raises(ProviderHTTPError, kit.provider.status(_NO_SUCH_JOB))
        assert error.status_code in (404, 410), f"an unknown job answered {error.status_code}"
        assert not error.retryable
        await kit.raises(ProviderError, kit.download(_NO_SUCH_JOB))

    # -- cancel and content ---------------------------------------------------------------

    async def test_cancel(self, kit: Kit) -> None:
        """A job is cancelled where the provider can; elsewhere cancel says it cannot."""
        assert ("cancel" in kit.harness.features) == kit.capabilities.can_cancel, (
            "the harness's `cancel` feature and the adapter's can_cancel disagree"
        )
        job, _ = await kit.submit(kit.request())
        if not kit.capabilities.can_cancel:
            await kit.raises(ProviderUnsupportedError, kit.provider.cancel(job.external_id))
            return
        answer = await kit.provider.cancel(job.external_id)
        if answer is not None:
            kit.keep(answer)
            assert answer.status not in (TaskStatus.COMPLETED, TaskStatus.FAILED)
        if "http" in kit.harness.features:
            assert kit.harness.sent("cancel") >= 1
        final = await kit.cancelled(job.external_id)
        assert final.status is TaskStatus.CANCELLED, f"a cancelled job stayed {final.status}"

    async def test_content_download(self, kit: Kit) -> None:
        """A completed job's video downloads whole: the simulator's very bytes."""
        job, _ = await kit.submit(kit.request())
        await kit.harness.pin(job.external_id, Pin("completed"))
        answer = await kit.status(job.external_id)
        assert answer.status is TaskStatus.COMPLETED
        body = await kit.download(job.external_id)
        assert body == kit.harness.content(job.external_id), "the video is not the served bytes"

    async def test_expired_output(self, kit: Kit) -> None:
        """An output past retention is said to be expired, and its download refused as such."""
        kit.require("expiry", "the API's outputs do not expire")
        job, _ = await kit.submit(kit.request())
        await kit.harness.pin(job.external_id, Pin("completed", expired=True))
        answer = await kit.status(job.external_id)
        if answer.expired or answer.status is TaskStatus.FAILED:
            assert answer.status is TaskStatus.FAILED
            assert answer.error is not None and answer.error.code == "expired"
        else:
            # the API keeps saying "completed" and names when the output went (OpenAI's
            # expires_at): the manager's download then fails as expired
            assert answer.status is TaskStatus.COMPLETED
            assert answer.expires_at is not None, "an expired output looks downloadable"
            assert answer.expires_at <= datetime.now(UTC) + _CLOCK_SKEW
        error = await kit.raises(ProviderError, kit.download(job.external_id))
        assert "expired" in str(error).lower(), f"the refusal does not say expired: {error}"

    # -- create failures ------------------------------------------------------------------

    async def test_create_connection_refused(self, kit: Kit) -> None:
        """A create that could not connect is retryable and certainly started nothing."""
        kit.require("http", "the adapter speaks no HTTP")
        provider = kit.provider_at(closed_port_url())
        error = await kit.raises(ProviderError, provider.submit(kit.request()))
        assert not isinstance(error, SubmissionUncertainError), "a refused connection is certain"
        assert isinstance(error, ProviderTransportError) and error.retryable
        assert kit.harness.sent("create") == 0

    async def test_create_rate_limited(self, kit: Kit) -> None:
        """A 429 is retried in the call, then raised as a rate limit: nothing started."""
        kit.require("http", "the adapter speaks no HTTP")
        kit.harness.inject("create", Faults(rate_limits=sys.maxsize, retry_after=0))
        error = await kit.raises(ProviderRateLimitError, kit.provider.submit(kit.request()))
        assert error.retryable
        assert kit.harness.sent("create") >= 2, "a 429 on create was not retried"

    @pytest.mark.parametrize("status_code", [400, 422])
    async def test_create_rejected(self, kit: Kit, status_code: int) -> None:
        """A 400 or 422 is a final rejection, sent once."""
        kit.require("http", "the adapter speaks no HTTP")
        kit.harness.inject("create", Faults(rejections=1, rejection_status=status_code))
        error = await kit.raises(ProviderRejectedError, kit.provider.submit(kit.request()))
        assert error.status_code == status_code and not error.retryable
        assert kit.harness.sent("create") == 1

    async def test_create_unauthorized(self, kit: Kit) -> None:
        """A 401 is an auth error, sent once."""
        kit.require("http", "the adapter speaks no HTTP")
        kit.harness.inject("create", Faults(auth_failures=1))
        error = await kit.raises(ProviderAuthError, kit.provider.submit(kit.request()))
        assert error.status_code == 401
        assert kit.harness.sent("create") == 1

    @pytest.mark.parametrize(
        "faults",
        [
            pytest.param(Faults(server_errors=1), id="500"),
            pytest.param(Faults(server_errors=1, server_error_status=503), id="503"),
            pytest.param(Faults(dropped_responses=1), id="dropped"),
            pytest.param(Faults(truncated_bodies=1), id="truncated"),
            pytest.param(Faults(slow_responses=1), id="slow"),
        ],
    )
    async def test_create_uncertain(self, kit: Kit, faults: Faults) -> None:
        """A create that may have started a job is uncertain, and was sent exactly once."""
        kit.require("http", "the adapter speaks no HTTP")
        if faults.slow_responses:
            faults = Faults(slow_responses=1, delay=kit.harness.call_timeout + 0.5)
        kit.harness.inject("create", faults)
        await kit.raises(SubmissionUncertainError, kit.provider.submit(kit.request()))
        assert kit.harness.sent("create") == 1, "an uncertain create was sent again"

    # -- secrets --------------------------------------------------------------------------

    async def test_echoed_secret_is_kept_out(self, kit: Kit) -> None:
        """A provider that quotes the key back in an error does not get it into ours."""
        kit.require("http", "the adapter speaks no HTTP")
        kit.harness.inject("create", Faults(echoed_keys=1))
        await kit.raises(ProviderError, kit.provider.submit(kit.request()))
        job, _ = await kit.submit(kit.request())
        kit.harness.inject("status", Faults(echoed_keys=1))
        await kit.raises(ProviderError, kit.provider.status(job.external_id))
        assert kit.leaks([]) == []

    async def test_repr_hides_secret(self, kit: Kit) -> None:
        """Neither the adapter's repr nor its str shows the key."""
        for text in (repr(kit.provider), str(kit.provider)):
            assert kit.harness.secret not in text


def _assert_frame(
    received: Received, size: str, aspect_ratio: str | None, resolution: str | None
) -> None:
    got_size, got_ratio, got_resolution = received.size, received.aspect_ratio, received.resolution
    assert (got_size, got_ratio, got_resolution) != (None, None, None), (
        "the API received no frame at all"
    )
    if got_size is not None:
        assert got_size == size, f"asked for size {size}, the API received {got_size}"
    if got_ratio is not None:
        assert got_ratio == aspect_ratio, f"asked for {aspect_ratio}, the API received {got_ratio}"
    if got_resolution is not None:
        assert got_resolution == resolution, (
            f"asked for {resolution}, the API received {got_resolution}"
        )

"""A job's sending limits, stated once: the model's validators, the upload form, the API's
serializer and the ``upsert`` command all read their defaults and bounds here."""

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.core.validators import MaxValueValidator, MinValueValidator

if TYPE_CHECKING:  # the model reads its validators here
    from upserts.models import UpsertJob


@dataclass(frozen=True)
class Limit:
    default: int
    minimum: int
    maximum: int
    help_text: str

    def validators(self) -> list[MinValueValidator | MaxValueValidator]:
        return [MinValueValidator(self.minimum), MaxValueValidator(self.maximum)]


BATCH_SIZE = Limit(500, 1, 10_000, "Most rows sent in one upsert request.")
MAX_IN_FLIGHT = Limit(2, 1, 16, "Upsert requests sent at the same time.")
MAX_BATCH_BYTES = Limit(
    8 * 1024 * 1024, 1024, 64 * 1024 * 1024, "Largest upsert request body, in bytes."
)


@dataclass(frozen=True)
class JobLimits:
    """What one job may send at once; the defaults are the model's."""

    batch_size: int = BATCH_SIZE.default
    max_in_flight: int = MAX_IN_FLIGHT.default
    max_batch_bytes: int = MAX_BATCH_BYTES.default

    @classmethod
    def of_job(cls, job: "UpsertJob") -> "JobLimits":
        return cls(job.batch_size, job.max_in_flight, job.max_batch_bytes)


DEFAULT_LIMITS = JobLimits()

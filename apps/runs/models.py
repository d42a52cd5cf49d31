"""Certification programs, campaigns (a vendor's request), the jobs that run suites on a target's
device, and the evidence they bring back (signed result documents and their measurements).

Programs live here rather than in `certificates` because submitting a campaign needs a
program's suite plan; the certificates app interprets the criteria of the same definition.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import Organization
from apps.registry.models import HardwareTarget, ModelArtifact, Runner


class ProgramStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    ACTIVE = "active", "Active"
    RETIRED = "retired", "Retired"


class Program(models.Model):
    """A versioned certification program, loaded from a data file; immutable once active."""

    code = models.SlugField(max_length=32)
    version = models.CharField(max_length=16)
    title = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=ProgramStatus.choices, default=ProgramStatus.ACTIVE)
    definition = models.JSONField()
    definition_sha256 = models.CharField(max_length=64)
    validity_days = models.PositiveIntegerField()
    surveillance_days = models.PositiveIntegerField()
    required_approvals = models.PositiveSmallIntegerField(default=1)
    loaded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["code", "version"]
        constraints = [models.UniqueConstraint(fields=["code", "version"], name="program_version_unique")]

    def __str__(self) -> str:
        return f"{self.code} {self.version}"

    def level(self, code: str) -> dict | None:
        return next((lvl for lvl in self.definition["levels"] if lvl["code"] == code), None)

    def level_codes(self) -> list[str]:
        return [lvl["code"] for lvl in self.definition["levels"]]


class CampaignState(models.TextChoices):
    DRAFT = "draft", _("Draft")
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    EVALUATING = "evaluating", _("Evaluating")
    AWAITING_REVIEW = "awaiting_review", _("Awaiting review")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")
    CANCELLED = "cancelled", _("Cancelled")
    FAILED = "failed", _("Failed")


class CampaignPurpose(models.TextChoices):
    CERTIFICATION = "certification", _("Certification")
    SURVEILLANCE = "surveillance", _("Surveillance re-run")


class Campaign(models.Model):
    """A request to certify one hardware target under a program at a level."""

    vendor = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="campaigns")
    target = models.ForeignKey(HardwareTarget, on_delete=models.PROTECT, related_name="campaigns")
    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="campaigns")
    level = models.CharField(max_length=32)
    model_artifacts = models.ManyToManyField(ModelArtifact, related_name="campaigns", blank=True)
    purpose = models.CharField(
        max_length=16, choices=CampaignPurpose.choices, default=CampaignPurpose.CERTIFICATION
    )
    state = models.CharField(
        max_length=16, choices=CampaignState.choices, default=CampaignState.DRAFT, db_index=True
    )
    state_reason = models.TextField(blank=True)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True, help_text="When the last job ended")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["state", "submitted_at"])]

    def __str__(self) -> str:
        return f"Campaign {self.pk} ({self.target.slug}, {self.program} {self.level})"


class JobSuite(models.TextChoices):
    CONFORMANCE = "conformance", _("Conformance")
    PERFORMANCE = "performance", _("Performance")
    MODEL = "model", _("Model")
    SERVING = "serving", _("Serving")
    COLLECTIVES = "collectives", _("Collectives")


class JobState(models.TextChoices):
    PENDING = "pending", _("Pending")
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")


JOB_DONE_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})


class ErrorClass(models.TextChoices):
    PRODUCT_FAILURE = "product_failure", _("Product failure")
    INFRASTRUCTURE = "infrastructure", _("Infrastructure")
    TIMEOUT = "timeout", _("Timeout")
    REJECTED_EVIDENCE = "rejected_evidence", _("Rejected evidence")


class Job(models.Model):
    """One suite run on the target's device. Its challenge is secret: it never leaves the platform
    except inside the spec sent to the runner queue."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="jobs")
    suite = models.CharField(max_length=16, choices=JobSuite.choices)
    model = models.ForeignKey(
        ModelArtifact, null=True, blank=True, on_delete=models.PROTECT, related_name="jobs"
    )
    state = models.CharField(max_length=16, choices=JobState.choices, default=JobState.PENDING, db_index=True)
    challenge = models.CharField(max_length=64)
    spec = models.JSONField(default=dict)
    attempts = models.PositiveSmallIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=3)
    progress = models.FloatField(default=0.0)
    progress_message = models.CharField(max_length=200, blank=True)
    eta_seconds = models.FloatField(null=True, blank=True)
    runner = models.ForeignKey(Runner, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs")
    task_id = models.CharField(max_length=64, blank=True, db_index=True)
    error_class = models.CharField(max_length=32, choices=ErrorClass.choices, blank=True)
    error_message = models.TextField(blank=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    deadline_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="The last signed sign of life of the running attempt (progress or heartbeat)",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["campaign_id", "id"]

    def __str__(self) -> str:
        label = f"{self.suite}:{self.model.name}" if self.model_id else self.suite
        return f"Job {self.pk} {label}"


class ResultDocument(models.Model):
    """A verified, signed result document: the evidence a certificate rests on (by sha256)."""

    job = models.OneToOneField(Job, on_delete=models.PROTECT, related_name="document")
    sha256 = models.CharField(max_length=64, unique=True)
    size = models.PositiveBigIntegerField()
    content = models.FileField(upload_to="results/", max_length=200)
    signature = models.TextField(help_text="Ed25519 signature of the canonical document, base64")
    runner = models.ForeignKey(Runner, on_delete=models.PROTECT, related_name="documents")
    key_id = models.CharField(max_length=64)
    suite = models.CharField(max_length=16, choices=JobSuite.choices)
    fingerprint = models.JSONField(default=dict)
    summary = models.JSONField(default=dict)
    integrity = models.JSONField(default=dict)
    spot_check = models.JSONField(default=dict, help_text="The server-side recomputation of sampled cases")
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.suite} document {self.sha256[:12]}"


class CaseResult(models.Model):
    """One conformance case of a document, queryable for heatmaps and criteria."""

    document = models.ForeignKey(ResultDocument, on_delete=models.CASCADE, related_name="cases")
    kernel = models.CharField(max_length=64)
    dtype = models.CharField(max_length=32)
    case = models.CharField(max_length=128)
    status = models.CharField(max_length=16)
    error_class = models.CharField(max_length=32, blank=True)
    max_abs = models.FloatField(null=True)
    max_rel = models.FloatField(null=True)
    tolerance_ratio = models.FloatField(
        null=True, help_text="Worst element's error / its allowance; 1.0 is the limit"
    )
    mismatch_fraction = models.FloatField(null=True)
    atol = models.FloatField(null=True)
    rtol = models.FloatField(null=True)

    class Meta:
        indexes = [models.Index(fields=["document", "kernel", "dtype"])]

    def __str__(self) -> str:
        return f"{self.kernel}/{self.dtype}/{self.case}: {self.status}"


class Measurement(models.Model):
    """One performance or model measurement of a document."""

    document = models.ForeignKey(ResultDocument, on_delete=models.CASCADE, related_name="measurements")
    kind = models.CharField(max_length=32)
    name = models.CharField(max_length=128)
    dtype = models.CharField(max_length=32, blank=True)
    unit = models.CharField(max_length=32, blank=True)
    value = models.FloatField(null=True)
    median = models.FloatField(null=True)
    p90 = models.FloatField(null=True)
    p99 = models.FloatField(null=True)
    cv = models.FloatField(null=True)
    unstable = models.BooleanField(default=False)
    efficiency = models.FloatField(
        null=True, help_text="Achieved / declared, where a declared figure applies"
    )
    flags = models.JSONField(default=list)
    params = models.JSONField(default=dict)

    class Meta:
        indexes = [models.Index(fields=["document", "kind", "dtype"])]

    def __str__(self) -> str:
        return f"{self.name} {self.dtype}: {self.value} {self.unit}"


class EvidenceRejection(models.Model):
    """A result that failed verification, kept with its reason; nothing of it is stored as evidence."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="rejections")
    reason = models.TextField()
    envelope_sha256 = models.CharField(max_length=64)
    key_id = models.CharField(max_length=64, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"rejected evidence of job {self.job_id}: {self.reason[:60]}"


class RevealState(models.TextChoices):
    PENDING = "pending", _("Awaiting the runner's reveal")
    VERIFIED = "verified", _("Revealed outputs match the commitment and the server's verdicts")
    MISMATCH = (
        "mismatch",
        _("Integrity failure: the reveal contradicts the commitment or the runner's verdicts"),
    )
    EXPIRED = "expired", _("The runner did not reveal in time")


class RevealPlanState(models.TextChoices):
    PREPARING = "preparing", "Computing the references of the predicted sample"
    READY = "ready", "References ready"
    FAILED = "failed", "References not precomputed (judged inline)"


class RevealPlan(models.Model):
    """The secret half of a job's commit–reveal round, fixed when the job is dispatched under its
    challenge: the key that orders the outputs the platform will draw from (services/reveal.py), and
    the float64 references of the outputs that order predicts, computed by a platform task while the
    runner runs. Platform-only: nothing here is in the job's spec or any message to the runner."""

    job = models.OneToOneField(Job, on_delete=models.CASCADE, related_name="reveal_plan")
    challenge = models.CharField(max_length=64, help_text="The attempt's challenge the plan was drawn for")
    spec_sha256 = models.CharField(max_length=64, help_text="Digest of the job's spec the plan was drawn for")
    sample_key = models.CharField(max_length=64, help_text="Secret HMAC key ordering the draw")
    state = models.CharField(
        max_length=16, choices=RevealPlanState.choices, default=RevealPlanState.PREPARING
    )
    predicted = models.JSONField(
        default=list, help_text="Reference keys predicted to be drawn, in draw order (precomputed)"
    )
    references = models.FileField(
        upload_to="reveal-plans/", blank=True, help_text="safetensors of the references (random name)"
    )
    reference_numbers = models.JSONField(default=dict, help_text="Each reference's tolerances")
    draw_order = models.JSONField(
        default=list,
        help_text=(
            "Every planned output the draw could take, in the key's order, priced: "
            "[output id, recomputation cost, why it cannot be drawn or null] (computed with the references)"
        ),
    )
    problems = models.JSONField(default=list, help_text="References that could not be precomputed")
    drawn_at = models.DateTimeField(auto_now_add=True)
    prepared_at = models.DateTimeField(null=True, blank=True)
    prepare_seconds = models.FloatField(null=True, blank=True)

    def __str__(self) -> str:
        return f"reveal plan of job {self.job_id}: {self.state}"


class OutputReveal(models.Model):
    """The commit–reveal round of one document: the sample the platform drew after storing the
    commitment, the runner's answer, and the server's own verdict on every revealed output."""

    document = models.OneToOneField(ResultDocument, on_delete=models.CASCADE, related_name="reveal")
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="reveals")
    state = models.CharField(
        max_length=16, choices=RevealState.choices, default=RevealState.PENDING, db_index=True
    )
    rule = models.CharField(max_length=32)
    sample_size = models.PositiveIntegerField()
    committed = models.PositiveIntegerField(help_text="Outputs the document commits to")
    requested = models.JSONField(default=list, help_text="The output ids drawn, in the order drawn")
    excluded = models.JSONField(
        default=list, help_text="Committed outputs the platform could not draw, with the reason"
    )
    judging = models.JSONField(
        default=dict,
        help_text="What judging the answer reads, stored at the draw: the committed digest of each requested "
        "output, the document's sections its verdicts rest on, reduced to the requested outputs, and whether "
        "the level's reveal criterion settles a mismatch",
    )
    checked = models.JSONField(default=list, help_text="The server's verdict on each revealed output")
    findings = models.JSONField(default=list, help_text="Each way the reveal contradicts the commitment")
    requested_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the request went to the runner: with the other reveals of the campaign, once none of "
        "its jobs on the target's queue is still to send its evidence (empty while it waits for them)",
    )
    deadline_at = models.DateTimeField()
    answered_at = models.DateTimeField(null=True, blank=True)
    server_seconds = models.FloatField(
        null=True, blank=True, help_text="Platform time spent drawing, checking and judging"
    )

    class Meta:
        ordering = ["-requested_at"]

    def __str__(self) -> str:
        return f"reveal of job {self.job_id}: {self.state}"

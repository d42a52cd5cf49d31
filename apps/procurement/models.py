"""Tenders of buyer organizations, their requirements and scoring weights, and saved evaluations.

A saved evaluation is a snapshot: it keeps the certificate serials and the figures it used, so a
decision can be audited later, after certificates have been suspended, revoked or superseded.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import translation
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import Organization


class RequirementKind(models.TextChoices):
    CERTIFICATE_LEVEL = "certificate_level", _("Active certificate under a program at a level or above")
    CONFORMANCE_DTYPE = "conformance_dtype", _("Conformance passed for a dtype")
    MODEL_PERFORMANCE = "model_performance", _("Model meets a throughput or latency bound")
    MEMORY_GIB = "memory_gib", _("Memory (GiB)")
    TDP_W = "tdp_w", _("TDP (W)")
    DOMESTIC_CONTENT_PCT = "domestic_content_pct", _("Domestic content (%)")
    ORIGIN_COUNTRY = "origin_country", _("Fab or assembly country in a set")
    EXPORT_CLASS = "export_class", _("Export-control class in or not in a set")
    BACKEND = "backend", _("Backend in a set")
    MEASURED_TFLOPS = "measured_tflops", _("Certified GEMM TFLOP/s in a dtype at least")
    SERVING_QPS = "serving_qps", _("Certified MLPerf Server QPS of a model at a latency bound")
    SERVING_TOKENS = "serving_tokens", _("Certified Server tokens/s of a decoder at a TPOT bound")
    SERVING_ENERGY = (
        "serving_energy",
        _("Certified serving energy of a model (J/query at most, or tokens/J at least)"),
    )


class ScoreMetric(models.TextChoices):
    """Ranking figures; each is normalised by the best eligible value, so every term lies in [0, 1]."""

    MEASURED_TFLOPS = "measured_tflops", _("Best certified GEMM TFLOP/s")
    TFLOPS_PER_WATT = "tflops_per_watt", _("Certified GEMM TFLOP/s per watt (TDP)")
    TFLOPS_PER_PRICE = "tflops_per_price", _("Certified GEMM TFLOP/s per 1,000 units of list price")
    TFLOPS_PER_GIB = "tflops_per_gib", _("Certified GEMM TFLOP/s per GiB of memory")
    MODEL_THROUGHPUT = "model_throughput", _("Certified model throughput (items/s)")
    MODEL_THROUGHPUT_PER_WATT = "model_throughput_per_watt", _("Certified model throughput per watt")
    MODEL_THROUGHPUT_PER_PRICE = (
        "model_throughput_per_price",
        _("Certified model throughput per 1,000 units of price"),
    )
    MEMORY_GIB = "memory_gib", _("Memory (GiB)")
    SERVING_QPS = "serving_qps", _("Certified MLPerf Server QPS of a model at its latency bound")
    SERVING_TOKENS = "serving_tokens", _("Certified Server tokens/s of a decoder")


def default_currency() -> str:
    """The currency a new tender starts with: by the request's language (CNY for zh-hans), else the
    fallback (settings.TENDER_DEFAULT_CURRENCY*). The column's own default stays USD for old rows."""
    by_language = getattr(settings, "TENDER_DEFAULT_CURRENCY", {})
    fallback = getattr(settings, "TENDER_DEFAULT_CURRENCY_FALLBACK", "USD")
    return str(by_language.get(translation.get_language() or "", fallback))


class Tender(models.Model):
    """A buyer organization's call for accelerators: requirements to meet and weights to rank by."""

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="tenders")
    title = models.CharField(max_length=200)
    reference = models.CharField(
        max_length=64,
        validators=[RegexValidator(r"^[A-Za-z0-9][A-Za-z0-9._/\-]*$", "Letters, digits, . _ / -")],
    )
    description = models.TextField(blank=True)
    deadline = models.DateTimeField()
    currency = models.CharField(
        max_length=3,
        default="USD",
        validators=[RegexValidator(r"^[A-Z]{3}$", "An ISO 4217 code such as USD.")],
        help_text="Prices in other currencies are not compared",
    )
    scoring = models.JSONField(default=list, help_text="[{metric, weight, model?, dtype?}, ...]")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "reference"], name="tender_reference_unique_per_org"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reference} {self.title}"


class Requirement(models.Model):
    """One requirement of a tender; `params` are validated per kind by procurement.requirements."""

    tender = models.ForeignKey(Tender, on_delete=models.CASCADE, related_name="requirements")
    position = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=32, choices=RequirementKind.choices)
    params = models.JSONField(default=dict)

    class Meta:
        ordering = ["tender_id", "position"]
        constraints = [
            models.UniqueConstraint(fields=["tender", "position"], name="requirement_position_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.tender_id}#{self.position} {self.kind}"


class Evaluation(models.Model):
    """A saved evaluation of a tender: the whole matrix and ranking as they were, with their sources."""

    tender = models.ForeignKey(Tender, on_delete=models.PROTECT, related_name="evaluations")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    rule_id = models.CharField(max_length=64, help_text="Export-control rule version used")
    candidate_count = models.PositiveIntegerField()
    eligible_count = models.PositiveIntegerField()
    snapshot = models.JSONField()
    snapshot_sha256 = models.CharField(max_length=64)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Evaluation {self.pk} of tender {self.tender_id}"

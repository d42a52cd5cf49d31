"""Reads of procurement: a buyer's tenders and evaluations, the certified candidates (built from
active certificates and their campaigns' measurements in a fixed number of queries, whatever the
number of chips), and the chips whose export-control classification a member may read.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from apps.accounts.models import Membership
from apps.accounts.selectors import buyer_rows_of, own_organization_q
from apps.certificates.judge import (
    Thresholds,
    above_peak,
    level_thresholds,
    measurement_exclusion,
    peak_for,
    peak_ratio,
    serving_bound,
    serving_figure_problem,
    serving_params,
)
from apps.certificates.models import Certificate, CertificateStatus
from apps.procurement.eligibility import Candidate
from apps.procurement.export_control import Rule, classify, rule_current
from apps.procurement.models import Evaluation, Tender
from apps.procurement.requirements import Vocabulary
from apps.registry.models import Backend, Chip, HardwareTarget
from apps.registry.reference_data import reference_chips
from apps.runs.models import Measurement, Program
from runners.measurements import best_gemm_per_dtype

MODEL_KINDS = {"model_throughput": "throughput", "model_latency": "latency"}


def tenders_of(membership: Membership | None) -> QuerySet[Tender]:
    """A buyer's own organization's tenders; nobody else's (others get an empty set, hence 404)."""
    return buyer_rows_of(Tender.objects.prefetch_related("requirements"), membership, owner="organization_id")


def evaluations_of(membership: Membership | None) -> QuerySet[Evaluation]:
    return buyer_rows_of(
        Evaluation.objects.select_related("tender"), membership, owner="tender__organization_id"
    )


def tender_requirements(*, tender: Tender) -> list[dict]:
    return [{"kind": r.kind, "params": r.params} for r in tender.requirements.all()]


def requirement_vocabulary(*, rule: Rule | None = None) -> Vocabulary:
    """Programs (active and retired: a retired program's certificates may still be live), backends and
    export classes."""
    programs: dict[str, dict[str, int]] = {}
    for program in Program.objects.exclude(status="draft").only("code", "definition"):
        levels = programs.setdefault(program.code, {})
        for level in program.definition.get("levels", []):
            levels[level["code"]] = max(levels.get(level["code"], 0), int(level.get("rank", 0)))
    backends = set(Backend.values) | set(HardwareTarget.objects.values_list("backend", flat=True).distinct())
    rule = rule or rule_current()
    return Vocabulary(
        programs=programs, backends=frozenset(backends), export_classes=tuple(rule.class_codes())
    )


def _price(value) -> float | None:
    return float(value) if value is not None else None


def active_certificates() -> QuerySet[Certificate]:
    """Certificates a buyer may rely on now: active and not past their date (even before the expiry sweep)."""
    return Certificate.objects.filter(status=CertificateStatus.ACTIVE, valid_until__gt=timezone.now())


CANDIDATE_FIELDS = (
    "id",
    "serial",
    "level",
    "program_id",
    "campaign_id",
    "valid_until",
    "payload_json",
    "chip_id",
    "subject_chip_sku",
    "subject_chip_name",
    "subject_target_slug",
    "subject_backend",
    "chip__vendor__name",
    "chip__die_area_mm2",
    "chip__data_center",
    "chip__fab_country",
    "chip__assembly_country",
    "chip__domestic_content_pct",
    "chip__list_price",
    "chip__currency",
)


def certified_candidates(
    *, certificates: QuerySet[Certificate] | None = None, rule: Rule | None = None
) -> list[Candidate]:
    """Every active certificate as a Candidate, in three queries: certificates, programs, measurements.

    What was certified (chip, target, backend, declarations) is read from the signed subject (the
    payload and its subject_* columns), never from the live registry rows a vendor may have edited.
    """
    certificates = active_certificates() if certificates is None else certificates
    rows = list(certificates.order_by("subject_chip_sku", "serial").values(*CANDIDATE_FIELDS))
    programs = {p.pk: p for p in Program.objects.filter(pk__in={row["program_id"] for row in rows})}
    rule = rule or rule_current()
    candidates: dict[int, Candidate] = {}
    thresholds: dict[int, Thresholds] = {}
    for row in rows:
        payload = json.loads(row["payload_json"])
        vendor = payload.get("subject", {}).get("vendor", {})
        subject = payload.get("subject", {}).get("chip", {})
        scope = payload.get("scope", {})
        program = programs[row["program_id"]]
        peaks = {k: float(v) for k, v in (subject.get("declared_peak_tflops") or {}).items() if v is not None}
        candidate = Candidate(
            certificate_id=row["id"],
            serial=row["serial"],
            program_code=program.code,
            program_version=program.version,
            level=row["level"],
            level_ranks={
                lvl["code"]: int(lvl.get("rank", 0)) for lvl in program.definition.get("levels", [])
            },
            valid_until=row["valid_until"].isoformat(),
            chip_id=row["chip_id"],
            sku=row["subject_chip_sku"],
            name=row["subject_chip_name"],
            vendor=vendor.get("name") or row["chip__vendor__name"],
            target=row["subject_target_slug"],
            backend=row["subject_backend"],
            memory_gib=subject.get("memory_gib"),
            tdp_w=subject.get("tdp_w"),
            declared_peaks=peaks,
            scope_dtypes=list(scope.get("dtypes", [])),
            scope_models={m["name"]: list(m.get("dtypes", [])) for m in scope.get("models", [])},
            # Declarations as frozen in the signed subject; the registry row for older certificates.
            die_area_mm2=subject.get("die_area_mm2", row["chip__die_area_mm2"]),
            data_center=subject.get("data_center", row["chip__data_center"]),
            fab_country=subject.get("fab_country", row["chip__fab_country"]),
            assembly_country=subject.get("assembly_country", row["chip__assembly_country"]),
            domestic_content_pct=subject.get("domestic_content_pct", row["chip__domestic_content_pct"]),
            list_price=_price(subject.get("list_price", row["chip__list_price"])),
            currency=subject.get("currency", row["chip__currency"]),
            declarations_signed="fab_country" in subject,
        )
        # Declared peaks and die area as certified (the signed subject).
        candidate.classification = classify(
            peaks=peaks, die_area_mm2=candidate.die_area_mm2, data_center=candidate.data_center, rule=rule
        )
        candidate.energy = _signed_energy(payload)
        candidates[row["campaign_id"]] = candidate
        thresholds[row["campaign_id"]] = level_thresholds(program=program, level=row["level"])
    _attach_measurements(candidates, certificates, thresholds)
    _attach_serving(candidates, certificates, thresholds)
    return list(candidates.values())


def _signed_energy(payload: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The serving energy figures a certificate's signed headline carries, the lowest per (model,
    dtype, unit): figures the judge certified at issue (judge.serving_energy_problem), never a live
    measurement row."""
    figures = (payload.get("headline") or {}).get("serving") or []
    best: dict[tuple[str, str, str], dict[str, Any]] = {}
    for figure in figures if isinstance(figures, list) else []:
        if not isinstance(figure, dict) or figure.get("kind") != "energy":
            continue
        value = figure.get("value")
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            continue
        key = (str(figure.get("model")), str(figure.get("dtype")), str(figure.get("unit")))
        if key not in best or value < best[key]["value"]:
            best[key] = figure
    return best


def _attach_serving(
    candidates: dict[int, Candidate], certificates: QuerySet[Certificate], thresholds: dict[int, Thresholds]
) -> None:
    """Each candidate's certifiable serving figures (judge.serving_figure_problem: VALID LoadGen runs at
    the level's settings only), best per (model, dtype, kind)."""
    if not candidates:
        return
    rows = Measurement.objects.filter(
        document__job__campaign_id__in=certificates.values("campaign_id"),
        kind__in=["serving_qps", "serving_tokens"],
        value__isnull=False,
    ).values_list(
        "id",
        "kind",
        "dtype",
        "unit",
        "value",
        "flags",
        "params",
        "document__sha256",
        "document__job__campaign_id",
        "document__job__model__name",
    )
    for pk, kind, dtype, unit, value, flags, params, sha256, campaign_id, model in rows.order_by():
        candidate = candidates.get(campaign_id)
        if candidate is None:
            continue
        inner = serving_params({"params": params})
        if inner.get("scenario") != "Server" or serving_figure_problem(
            value=value, flags=flags, params=inner, thresholds=thresholds[campaign_id]
        ):
            continue
        key = (model or str(inner.get("model") or ""), dtype, kind)
        best = candidate.serving.get(key)
        if best is None or value > best["value"]:
            candidate.serving[key] = {
                "value": value,
                "unit": unit,
                "measurement": pk,
                "document": sha256,
                # What LoadGen judged the Server run by (judge.serving_bound; the judge just let it be
                # certified, so it is readable): one latency bound, or TTFT and TPOT (a decoder).
                **(bound.as_params() if (bound := serving_bound(inner)[0]) is not None else {}),
            }


def _attach_measurements(
    candidates: dict[int, Candidate], certificates: QuerySet[Certificate], thresholds: dict[int, Thresholds]
) -> None:
    """Each candidate's certifiable figures: what the judge lets feed a tender (no unstable, flagged
    or above-peak measurement), with measured/declared against the peaks the certificate signed."""
    if not candidates:
        return
    # A subquery rather than a list of ids: one statement, no parameter limit, whatever the count.
    measurements = Measurement.objects.filter(
        document__job__campaign_id__in=certificates.values("campaign_id"),
        kind__in=["gemm", *MODEL_KINDS],
        value__isnull=False,
    ).values_list(
        "id",
        "kind",
        "dtype",
        "unit",
        "value",
        "unstable",
        "flags",
        "document__sha256",
        "document__job__campaign_id",
        "document__job__model__name",  # a model job always names its artifact
    )
    gemm_figures: dict[int, list[tuple[str, dict[str, Any]]]] = {}
    # Tuples, not dicts: this loop sees every GEMM and model figure of every certified campaign.
    for pk, kind, dtype, unit, value, unstable, flags, sha256, campaign_id, model in measurements.order_by():
        candidate = candidates.get(campaign_id)
        if candidate is None or measurement_exclusion(value=value, unstable=unstable, flags=flags):
            continue
        efficiency = (
            peak_ratio(value=value, peak=peak_for(candidate.declared_peaks, dtype))
            if kind == "gemm"
            else None
        )
        if above_peak(ratio=efficiency, thresholds=thresholds[campaign_id]):
            continue
        figure = {
            "value": value,
            "unit": unit,
            "measurement": pk,
            "document": sha256,
            "efficiency": efficiency,
        }
        if kind == "gemm":
            gemm_figures.setdefault(campaign_id, []).append((dtype, figure))
            continue
        metric = MODEL_KINDS[kind]
        key = (model or "", dtype, metric)
        best = candidate.model_figures.get(key)
        if best is None or (value > best["value"] if metric == "throughput" else value < best["value"]):
            candidate.model_figures[key] = figure
    for campaign_id, figures in gemm_figures.items():
        best_gemm = best_gemm_per_dtype(figures, dtype=lambda f: f[0], value=lambda f: f[1]["value"])
        candidates[campaign_id].gemm.update({dtype: figure for dtype, (_, figure) in best_gemm.items()})


@lru_cache(maxsize=1)
def _reference_pairs() -> frozenset[tuple[str, str]]:
    return frozenset((row["vendor_name"], row["sku"]) for row in reference_chips())


def reference_chip_filter() -> Q:
    """The well-known reference chips (apps/registry/data/accelerators.csv): their datasheets are public."""
    query = Q(pk__in=[])
    for vendor, sku in _reference_pairs():
        query |= Q(vendor__name=vendor, sku=sku)
    return query


def classifiable_chips(membership: Membership | None) -> QuerySet[Chip]:
    """Chips whose classification the member may read: certified chips and the reference chips for
    everyone signed in; a vendor's own chips too; every chip for the authority. No other vendor's
    uncertified chip is ever listed."""
    chips = Chip.objects.select_related("vendor").order_by("vendor__name", "sku")
    if membership is None:
        return chips.none()
    if membership.is_authority:
        return chips
    visible = reference_chip_filter() | Q(pk__in=active_certificates().values("chip_id"))
    if membership.is_vendor:
        visible |= own_organization_q(membership, owner="vendor_id")
    return chips.filter(visible)


def chip_classifications(*, chips: Iterable[Chip], rule: Rule | None = None) -> list[dict]:
    """Each chip's class with its explanation, beside the certified measured/declared ratios.

    For a chip with an active certificate every figure (SKU, name, peaks, die area, data-centre flag)
    is its certificate's, as signed; for any other chip they are the registry's declared figures and
    the entry says `certified: false`.
    """
    chips = list(chips)
    rule = rule or rule_current()
    certs = active_certificates().filter(chip_id__in=[c.pk for c in chips])
    by_chip: dict[int, list[Candidate]] = {}
    for candidate in certified_candidates(certificates=certs, rule=rule):
        by_chip.setdefault(candidate.chip_id, []).append(candidate)
    entries = []
    for chip in chips:
        certified = by_chip.get(chip.pk, [])
        if certified:  # live certificates of one chip agree: its certified fields cannot change meanwhile
            signed = certified[0]
            sku, name, peaks = signed.sku, signed.name, signed.declared_peaks
            die_area_mm2, data_center, klass = signed.die_area_mm2, signed.data_center, signed.classification
        else:
            sku, name, peaks = chip.sku, chip.name, chip.declared_peaks()
            die_area_mm2, data_center = chip.die_area_mm2, chip.data_center
            klass = classify(peaks=peaks, die_area_mm2=die_area_mm2, data_center=data_center, rule=rule)
        ratios: dict[str, dict] = {}
        for candidate in certified:
            for dtype, figure in candidate.gemm.items():
                if figure["efficiency"] is None:
                    continue
                if dtype not in ratios or figure["efficiency"] > ratios[dtype]["ratio"]:
                    ratios[dtype] = {
                        "ratio": figure["efficiency"],
                        "measured_tflops": figure["value"],
                        "certificate": candidate.serial,
                        "measurement": figure["measurement"],
                    }
        entries.append(
            {
                "chip": chip,
                "sku": sku,
                "name": name,
                "die_area_mm2": die_area_mm2,
                "data_center": data_center,
                "certified": bool(certified),
                "serials": [c.serial for c in certified],
                "declared_peaks": peaks,
                "classification": klass,
                "measured_to_declared": dict(sorted(ratios.items())),
            }
        )
    return entries

from rest_framework import serializers

from apps.registry.api.serializers import StrictFieldsMixin
from apps.runs.models import Campaign, Job, Program


class ProgramSerializer(serializers.ModelSerializer):
    levels = serializers.SerializerMethodField()

    class Meta:
        model = Program
        fields = [
            "code",
            "version",
            "title",
            "status",
            "validity_days",
            "surveillance_days",
            "required_approvals",
            "levels",
            "definition_sha256",
        ]

    def get_levels(self, program: Program) -> list[dict]:
        return [
            {
                "code": lvl["code"],
                "rank": lvl["rank"],
                "title": lvl["title"],
                "intent": lvl.get("intent", ""),
                "suites": lvl.get("suites", {}),
                "criteria": lvl.get("criteria", []),
            }
            for lvl in program.definition["levels"]
        ]


class JobSerializer(serializers.ModelSerializer):
    """A job as vendors and reviewers see it; the challenge never leaves the platform this way."""

    model = serializers.SerializerMethodField()
    runner = serializers.SlugRelatedField(slug_field="name", read_only=True)
    document_sha256 = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id",
            "suite",
            "model",
            "state",
            "attempts",
            "max_attempts",
            "progress",
            "progress_message",
            "eta_seconds",
            "runner",
            "error_class",
            "error_message",
            "queued_at",
            "started_at",
            "finished_at",
            "deadline_at",
            "document_sha256",
        ]
        read_only_fields = fields

    def get_model(self, job: Job) -> str | None:
        return f"{job.model.name}:{job.model.version}" if job.model_id else None

    def get_document_sha256(self, job: Job) -> str | None:
        document = getattr(job, "document", None) if job.state == "succeeded" else None
        return document.sha256 if document else None


class CampaignSerializer(serializers.ModelSerializer):
    target = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    vendor = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    program = serializers.SerializerMethodField()
    models = serializers.SerializerMethodField()
    jobs = JobSerializer(many=True, read_only=True)
    progress = serializers.SerializerMethodField()
    submitted_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Campaign
        fields = [
            "id",
            "vendor",
            "target",
            "program",
            "level",
            "models",
            "purpose",
            "state",
            "state_reason",
            "progress",
            "submitted_by",
            "created_at",
            "submitted_at",
            "finished_at",
            "jobs",
        ]
        read_only_fields = fields

    def get_program(self, campaign: Campaign) -> dict:
        return {"code": campaign.program.code, "version": campaign.program.version}

    def get_models(self, campaign: Campaign) -> list[int]:
        return [artifact.pk for artifact in campaign.model_artifacts.all()]

    def get_progress(self, campaign: Campaign) -> float:
        jobs = list(campaign.jobs.all())
        return round(sum(job.progress for job in jobs) / len(jobs), 4) if jobs else 0.0


class CampaignSubmitSerializer(StrictFieldsMixin, serializers.Serializer):
    target = serializers.CharField(help_text="The hardware target's slug (or id)")
    program = serializers.CharField(max_length=32, help_text="Program code, e.g. AIA")
    program_version = serializers.CharField(
        max_length=16, required=False, help_text="Default: the newest active"
    )
    level = serializers.CharField(max_length=32)
    models = serializers.ListField(
        child=serializers.IntegerField(min_value=1), required=False, default=list, max_length=32
    )


class CampaignCancelSerializer(StrictFieldsMixin, serializers.Serializer):
    reason = serializers.CharField(max_length=2000, required=False, default="", allow_blank=True)

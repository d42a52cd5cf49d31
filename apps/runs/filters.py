import django_filters as filters

from apps.runs.models import Campaign, CampaignState, Job, JobState, JobSuite
from certification.filters import FilterSet, IdFilter


class CampaignFilter(FilterSet):
    state = filters.MultipleChoiceFilter(choices=CampaignState.choices)
    target = filters.CharFilter(field_name="target__slug")
    program = filters.CharFilter(field_name="program__code")
    vendor = filters.CharFilter(field_name="vendor__slug")

    class Meta:
        model = Campaign
        fields = ["state", "target", "program", "level", "purpose", "vendor"]


class JobFilter(FilterSet):
    state = filters.MultipleChoiceFilter(choices=JobState.choices)
    suite = filters.ChoiceFilter(choices=JobSuite.choices)
    campaign = IdFilter(field_name="campaign_id")

    class Meta:
        model = Job
        fields = ["state", "suite", "campaign", "error_class"]

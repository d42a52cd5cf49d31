from django.urls import path

from apps.portal.views import campaigns, home, inventory, registry, selfservice

app_name = "portal"

urlpatterns = [
    path("", home.home, name="home"),
    path("queue/", campaigns.queue, name="queue"),
    path("campaigns/", campaigns.campaign_list, name="campaign-list"),
    path("campaigns/new/", campaigns.campaign_submit_view, name="campaign-submit"),
    path("campaigns/<int:pk>/", campaigns.campaign_detail, name="campaign-detail"),
    path("campaigns/<int:pk>/progress.json", campaigns.campaign_progress, name="campaign-progress"),
    path("campaigns/<int:pk>/approve/", campaigns.campaign_approve, name="campaign-approve"),
    path("campaigns/<int:pk>/reject/", campaigns.campaign_reject, name="campaign-reject"),
    path("campaigns/<int:pk>/waive/", campaigns.criterion_waive_view, name="criterion-waive"),
    path("campaigns/<int:pk>/cancel/", campaigns.campaign_cancel_view, name="campaign-cancel"),
    path("chips/", inventory.chips, name="chips"),
    path("chips/new/", selfservice.chip_edit, name="chip-new"),
    path("chips/<int:pk>/edit/", selfservice.chip_edit, name="chip-edit"),
    path("targets/", inventory.targets, name="targets"),
    path("targets/new/", selfservice.target_edit, name="target-new"),
    path("targets/<int:pk>/edit/", selfservice.target_edit, name="target-edit"),
    path("models/", inventory.models, name="models"),
    path("models/new/", selfservice.model_upload, name="model-new"),
    path("tokens/", selfservice.api_tokens, name="tokens"),
    path("tokens/<str:key>/revoke/", selfservice.api_token_revoke_view, name="token-revoke"),
    path("webhooks/", selfservice.webhooks, name="webhooks"),
    path("webhooks/<int:pk>/", selfservice.webhook_detail, name="webhook-detail"),
    path("webhooks/<int:pk>/test/", selfservice.webhook_test, name="webhook-test"),
    path("webhooks/<int:pk>/delete/", selfservice.webhook_delete, name="webhook-delete"),
    path("runners/", inventory.runners, name="runners"),
    path("registry/", registry.registry, name="registry"),
    path("registry/compare/", registry.compare, name="compare"),
    path("registry/export.<str:fmt>", registry.registry_export, name="registry-export"),
    path("certificates/<str:serial>/", registry.certificate_detail, name="certificate"),
    path("certificates/<str:serial>/verify/", registry.certificate_verify_page, name="certificate-verify"),
    path(
        "certificates/<str:serial>/evidence.zip", registry.certificate_evidence, name="certificate-evidence"
    ),
    path("certificates/<str:serial>/<str:action>/", registry.certificate_status, name="certificate-status"),
]

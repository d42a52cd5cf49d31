"""Django's password-reset URLs, answered only when mail is configured (settings.PASSWORD_RESET_ENABLED)."""

from django.urls import path

from apps.accounts import views

urlpatterns = [
    path("password_reset/", views.password_reset, name="password_reset"),
    path("password_reset/done/", views.password_reset_done, name="password_reset_done"),
    path("reset/<uidb64>/<token>/", views.password_reset_confirm, name="password_reset_confirm"),
    path("reset/done/", views.password_reset_complete, name="password_reset_complete"),
]

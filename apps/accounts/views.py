"""Password reset, offered only when the platform can send mail."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.shortcuts import render


def _unless_mail(view):
    """The view itself when mail is configured; otherwise a page that says whom to ask (404)."""

    def wrapped(request, *args, **kwargs):
        if not settings.PASSWORD_RESET_ENABLED:
            return render(request, "registration/password_reset_unavailable.html", status=404)
        return view(request, *args, **kwargs)

    return wrapped


password_reset = _unless_mail(auth_views.PasswordResetView.as_view())
password_reset_done = _unless_mail(auth_views.PasswordResetDoneView.as_view())
password_reset_confirm = _unless_mail(auth_views.PasswordResetConfirmView.as_view())
password_reset_complete = _unless_mail(auth_views.PasswordResetCompleteView.as_view())

"""Chinese and English (issue 17, item 1): Accept-Language, the language switcher, the zh-hans
catalogue, and the viewer's time zone."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

PO = Path(__file__).resolve().parents[2] / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"


def _csrf(client: Client, path: str = "/") -> str:
    html = client.get(path).content.decode()
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)


def test_accept_language_zh_cn_gets_the_home_page_in_chinese_and_english_stays_the_default():
    chinese = Client().get("/", HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9,en;q=0.5")
    assert chinese.status_code == 200 and chinese["Content-Language"] == "zh-hans"
    html = chinese.content.decode()
    assert '<html lang="zh-hans">' in html
    assert "已认证的人工智能推理加速器" in html and "人工智能加速器认证" in html
    assert "Certified AI inference accelerators" not in html
    english = Client().get("/").content.decode()
    assert '<html lang="en">' in english and "Certified AI inference accelerators" in english
    assert "已认证" not in english


def test_the_public_registry_and_the_login_page_are_in_chinese(certified):
    certificate = certified()
    client = Client(HTTP_ACCEPT_LANGUAGE="zh-CN")
    html = client.get("/registry/").content.decode()
    assert "<h1>已认证芯片目录</h1>" in html
    for text in ("证书编号", "厂商", "有效期至", "应用筛选", "不限", "登录"):
        assert text in html, text
    assert certificate.serial in html
    assert '<span class="badge status-active">有效</span>' in html  # the status label, translated
    assert "Registry of certified chips" not in html and "Apply filters" not in html
    login = client.get("/login/").content.decode()
    assert "<h1>登录</h1>" in login and "用户名" in login and "密码" in login


def test_the_switcher_posts_with_csrf_sets_the_language_and_returns_to_the_same_page():
    client = Client(enforce_csrf_checks=True)
    form = client.get("/registry/?status=all").content.decode()
    assert 'action="/i18n/setlang/"' in form and 'name="language"' in form
    assert 'value="/registry/?status=all"' in form  # keeps the current page
    refused = client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/registry/?status=all"})
    assert refused.status_code == 403  # no CSRF token
    token = _csrf(client, "/registry/")
    switched = client.post(
        "/i18n/setlang/",
        {"language": "zh-hans", "next": "/registry/?status=all", "csrfmiddlewaretoken": token},
    )
    assert switched.status_code == 302 and switched["Location"] == "/registry/?status=all"
    after = client.get("/registry/?status=all").content.decode()  # no Accept-Language: the choice holds
    assert "<h1>已认证芯片目录</h1>" in after
    back = client.post(
        "/i18n/setlang/", {"language": "en", "next": "/", "csrfmiddlewaretoken": _csrf(client)}
    )
    assert (
        back.status_code == 302 and "Certified AI inference accelerators" in client.get("/").content.decode()
    )


def test_every_message_of_the_catalogue_is_translated_and_it_compiles_cleanly():
    result = subprocess.run(
        [shutil.which("msgfmt") or "msgfmt", "--check", "--statistics", "-o", "/dev/null", str(PO)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "untranslated" not in result.stderr and "fuzzy" not in result.stderr, result.stderr
    assert re.search(r"\d+ translated messages", result.stderr)


def test_the_time_zone_defaults_by_language_and_the_viewer_can_choose_another():
    assert "Asia/Shanghai" in Client(HTTP_ACCEPT_LANGUAGE="zh-CN").get("/").context["TIME_ZONE"]
    client = Client()
    assert client.get("/").context["TIME_ZONE"] == "UTC"
    assert " selected>UTC<" not in client.get("/").content.decode()  # nothing chosen: the default is
    bad = client.post("/i18n/timezone/", {"timezone": "Mars/Olympus", "next": "/"})
    assert bad.status_code == 400
    chosen = client.post("/i18n/timezone/", {"timezone": "Europe/Berlin", "next": "/registry/"})
    assert chosen.status_code == 302 and chosen["Location"] == "/registry/"
    page = client.get("/")
    assert page.context["TIME_ZONE"] == "Europe/Berlin"
    assert '<option value="Europe/Berlin" selected>' in page.content.decode()
    away = client.post("/i18n/timezone/", {"timezone": "UTC", "next": "https://evil.example/"})
    assert away["Location"] == "/"  # never redirected off the site

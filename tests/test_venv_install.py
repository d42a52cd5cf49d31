"""tools/venv_install.py hands uv what pip would use on this machine (uv reads no pip configuration):
without it, uv took torch from the public index (the CUDA build, 2 GB of nvidia wheels) instead of
the CPU wheel that pip's find-links point to."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from django.conf import settings


def _tool():
    path = Path(settings.BASE_DIR) / "tools" / "venv_install.py"
    spec = importlib.util.spec_from_file_location("venv_install", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pips_indexes_find_links_constraints_and_ca_become_uv_options():
    args, env = _tool().uv_options(
        {
            "index-url": "https://mirror.example.org/simple",
            "extra-index-url": "file:///opt/a/simple file:///opt/b/simple",
            "find-links": "/opt/wheels",
            "constraint": "/etc/xdg/pip/constraints.txt",
            "cert": "/etc/ssl/certs/ca-certificates.crt",
            "default-timeout": "180",
        }
    )
    assert args == [
        "--index-strategy",
        "unsafe-best-match",  # pip's rule: the best version across every index and find-links
        "--index-url",
        "https://mirror.example.org/simple",
        "--extra-index-url",
        "file:///opt/a/simple",
        "--extra-index-url",
        "file:///opt/b/simple",
        "--find-links",
        "/opt/wheels",
        "--constraint",
        "/etc/xdg/pip/constraints.txt",
    ]
    assert env == {"SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt", "UV_HTTP_TIMEOUT": "180"}


def test_pips_own_reading_puts_a_pip_variable_over_the_config_files(monkeypatch, tmp_path):
    config = tmp_path / "pip.conf"
    config.write_text("[global]\nfind-links = /from/file\nextra-index-url = file:///from/file\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(config))
    monkeypatch.setenv("PIP_FIND_LINKS", "/from/variable")
    found = _tool().pip_config(Path(sys.executable))
    assert found["find-links"] == "/from/variable"
    assert found["extra-index-url"] == "file:///from/file"

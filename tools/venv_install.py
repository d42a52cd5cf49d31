"""Install the project into its virtualenv, with progress, as fast as this machine allows (`make install`).

Runs with the system python3 and its standard library only. It creates the virtualenv when it is
missing, then installs with `uv` (PyPI's `uv`, a resolver and installer written in Rust: parallel
downloads, no bytecode compilation of torch at install time) when it can be had: from PATH, from
the virtualenv, or put into the virtualenv by pip (one wheel). uv does not read pip's configuration,
so the index, extra indexes, find-links, constraints and CA bundle that pip would use on this machine
(its config files and PIP_* variables) are handed to uv as options, and uv picks the best version
across all of them as pip does. Where uv cannot be had, or fails, pip installs as before: a machine
with only python3 still works.

    python3 tools/venv_install.py --venv .venv --constraints constraints/local.txt '.[dev]'
"""

from __future__ import annotations

import argparse
import ast
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

# The options of pip's configuration that have a uv equivalent; the effective value is the one
# pip itself would use: a PIP_* variable over the [install] section over [global].
PIP_SECTIONS = (":env:", "install", "global")
PIP_KEYS = ("index-url", "extra-index-url", "find-links", "constraint", "cert", "no-index", "default-timeout")


def say(text: str) -> None:
    print(f"==> {text}", flush=True)


def run(argv: list[str], env: dict[str, str] | None = None) -> int:
    return subprocess.call(argv, env=env)  # noqa: S603 - this interpreter, pip or uv; no shell


def pip_config(python: Path) -> dict[str, str]:
    """pip's effective settings on this machine, as `pip config list` prints them (one `section.key='value'`
    line each, a format stable across pip versions; pip's internal Configuration.items() is not: pip 26
    nests it per file). Empty when pip cannot say."""
    try:
        out = subprocess.run(  # noqa: S603
            [str(python), "-m", "pip", "config", "list"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    items: dict[str, str] = {}
    for line in out.splitlines():
        name, sep, value = line.partition("=")
        if not sep:
            continue
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            continue
        items[name.strip()] = str(parsed)
    found: dict[str, str] = {}
    for key in PIP_KEYS:
        for section in PIP_SECTIONS:
            if f"{section}.{key}" in items:
                found[key] = items[f"{section}.{key}"]
                break
    return found


def uv_options(config: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """uv's command-line options and environment for pip's configuration."""
    args = ["--index-strategy", "unsafe-best-match"]  # pip's rule: the best version across all indexes
    env: dict[str, str] = {}
    if config.get("no-index", "").lower() in ("1", "true", "yes", "on"):
        args.append("--no-index")
    if config.get("index-url"):
        args += ["--index-url", config["index-url"].split()[0]]
    for url in config.get("extra-index-url", "").split():
        args += ["--extra-index-url", url]
    for place in config.get("find-links", "").split():
        args += ["--find-links", place]
    for path in config.get("constraint", "").split():
        args += ["--constraint", path]
    if config.get("cert"):
        env["SSL_CERT_FILE"] = config["cert"]
    if config.get("default-timeout"):
        env["UV_HTTP_TIMEOUT"] = config["default-timeout"].split(".")[0]
    return args, env


def has_pip(python: Path) -> bool:
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    return subprocess.call([str(python), "-m", "pip", "--version"], **quiet) == 0  # noqa: S603


def ensure_pip(python: Path) -> bool:
    """pip in the virtualenv (created without it: ensurepip takes ~25 s on a loaded machine, and uv needs none)."""
    return has_pip(python) or run([str(python), "-m", "ensurepip", "--upgrade", "--default-pip"]) == 0


def find_uv(venv: Path, python: Path) -> str | None:
    """uv from PATH or the virtualenv, else installed into the virtualenv by pip (this python3's pip
    when it has one, else the virtualenv's); None when it cannot be had."""
    local = venv / "bin" / "uv"
    for candidate in (os.environ.get("UV") or "", shutil.which("uv") or "", str(local)):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    say("Fetching the uv installer into the virtualenv (pip, one wheel)")
    quiet = ["install", "--disable-pip-version-check", "--quiet", "uv"]
    if has_pip(Path(sys.executable)):
        run([sys.executable, "-m", "pip", "--python", str(python), *quiet])
    if not os.access(local, os.X_OK) and ensure_pip(python):
        run([str(python), "-m", "pip", *quiet])
    if os.access(local, os.X_OK):
        return str(local)
    say("uv could not be installed: pip installs instead")
    return None


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("requirement", help="what to install, e.g. '.' or '.[dev]' (editable)")
    parser.add_argument("--venv", default=".venv")
    parser.add_argument("--constraints", default="constraints/local.txt")
    parser.add_argument(
        "--installer",
        choices=("auto", "uv", "pip"),
        default=os.environ.get("INSTALLER", "auto"),
        help="auto: uv where it can be had, else pip (default; also the INSTALLER variable)",
    )
    options = parser.parse_args()
    venv = Path(options.venv)
    python = venv / "bin" / "python"
    started = time.monotonic()
    if not os.access(python, os.X_OK):
        say(f"Creating the virtualenv {venv}")
        if run([sys.executable, "-m", "venv", "--without-pip", str(venv)]) != 0:
            return 1
    uv = find_uv(venv, python) if options.installer in ("auto", "uv") else None
    if uv is None and options.installer == "uv":
        return 1
    code = 1
    if uv is not None:
        # pip's settings as this python3's pip reads them (the virtualenv has no pip of its own yet).
        if has_pip(Path(sys.executable)):
            config = pip_config(Path(sys.executable))
        else:
            config = pip_config(python) if ensure_pip(python) else {}
        args, env = uv_options(config)
        say("uv options from pip's configuration: " + (" ".join(args[2:]) or "none"))
        say(f"Installing {options.requirement} with uv ({uv})")
        # pip comes along when the virtualenv lacks it: `.venv/bin/pip` works as people expect.
        code = run(
            [uv, "pip", "install", "--python", str(python), *args]
            + ["--constraint", options.constraints, "--editable", options.requirement]
            + ([] if has_pip(python) else ["pip"]),
            env={**os.environ, **env},
        )
        if code != 0 and options.installer == "auto":
            say(f"uv failed (exit {code}): installing with pip instead")
    if code != 0 and options.installer != "uv":
        say(f"Installing {options.requirement} with pip")
        if not ensure_pip(python):
            return 1
        code = run(
            [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "on"]
            + ["-c", options.constraints, "-e", options.requirement]
        )
    if code == 0:
        say(f"Installed {options.requirement} in {time.monotonic() - started:.0f} s")
    return code


if __name__ == "__main__":
    sys.exit(main())

"""What keeps the device process away from the judge's secrets on the same host.

Applied by runners.device.client when it starts the device process:

1. **Environment.** The child's environment is the parent's less every variable that could name
   or hold a secret or reach the platform (``scrubbed_environment``): RUNNER_*, CELERY_*,
   PLATFORM_*, DATABASE_*, DJANGO_*, and any name with KEY, SECRET, TOKEN, PASSWORD or CREDENTIAL.
2. **Descriptors.** Only stdin, stdout and stderr are inherited (``close_fds``); the key is never
   open in the parent anyway (``RunnerIdentity`` reads it once into memory).
3. **The parent's /proc.** The judge marks itself non-dumpable (``prctl(PR_SET_DUMPABLE, 0)``):
   a process of the same user without CAP_SYS_PTRACE can then read neither its
   ``/proc/<pid>/environ`` (which would name the key file) nor its memory or descriptors.
   Some kernels still show a root child the judge's environ (seen on a sandboxed 6.18 kernel with
   CAP_SYS_PTRACE dropped): the key file's *path* may then leak, never its content (4 and 6).
4. **The key file itself (Landlock).** Where the kernel offers Landlock (Linux 5.13+, no
   privilege needed, binding even for root), the child is confined so that it may read every file
   on the host *except* the protected paths: the ruleset grants reading beneath every sibling of
   every directory on the way to a protected path, never that path, and is built in the parent so
   the child never learns the path. Landlock also forbids the child to ptrace the parent, to
   change mounts, and to link or rename a file out of the key's directory.
5. **Capabilities.** Started by root, the child still loses CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH,
   CAP_SYS_RAWIO and CAP_SYS_MODULE from its bounding set (``DROPPED_CAPABILITIES``), so the
   non-dumpable judge's /proc files stay closed to it and no file handle bypasses Landlock.
6. **Another user.** ``RUNNER_DEVICE_USER`` (when the judge runs as root) starts the child as that
   user, so file permissions keep the key (mode 0600) from it as well.

``protections()`` says which of these applied; the result document records it
(``process_isolation.protections``).
"""

from __future__ import annotations

import ctypes
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path

_SECRET_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
_PLATFORM_PREFIXES = ("RUNNER_", "CELERY_", "PLATFORM_", "DATABASE_", "DJANGO_", "REDIS_", "BROKER_")

PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
# Capabilities the device process never gets, even started by root: reading another process's
# /proc files and memory (SYS_PTRACE), opening files by handle past path checks (DAC_READ_SEARCH),
# raw memory and I/O ports (SYS_RAWIO), loading kernel modules (SYS_MODULE).
DROPPED_CAPABILITIES = {
    "CAP_DAC_READ_SEARCH": 2,
    "CAP_SYS_MODULE": 16,
    "CAP_SYS_RAWIO": 17,
    "CAP_SYS_PTRACE": 19,
}
PR_SET_NO_NEW_PRIVS = 38
SYS_LANDLOCK_CREATE_RULESET = 444  # the same number on every architecture (new syscall table)
SYS_LANDLOCK_ADD_RULE = 445
SYS_LANDLOCK_RESTRICT_SELF = 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
ACCESS_FS_READ_FILE = 1 << 2
ACCESS_FS_REFER = 1 << 13  # ABI 2
O_PATH = getattr(os, "O_PATH", 0o10000000)


def scrubbed_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    environ = dict(os.environ if environ is None else environ)
    return {
        name: value
        for name, value in environ.items()
        if not name.startswith(_PLATFORM_PREFIXES) and not _SECRET_NAME.search(name)
    }


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def make_parent_undumpable() -> bool:
    """Marks this process non-dumpable (Linux); True when that worked."""
    try:
        return _libc().prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def landlock_abi() -> int:
    try:
        version = _libc().syscall(
            SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), LANDLOCK_CREATE_RULESET_VERSION
        )
    except (OSError, AttributeError):
        return 0
    return max(int(version), 0)


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _ancestors(path: str) -> set[str]:
    found = set()
    current = os.path.dirname(path)
    while True:
        found.add(current)
        if current == "/":
            return found
        current = os.path.dirname(current)


class Confinement:
    """A Landlock ruleset hiding ``protected`` paths, built in the parent; ``preexec`` applies it
    in the forked child just before exec (two system calls, nothing else)."""

    def __init__(self, protected: Iterable[str | os.PathLike[str]]) -> None:
        self.protected = {os.path.realpath(p) for p in protected}
        self.fd: int | None = None
        self.rules = 0
        self.reason: str | None = None
        abi = landlock_abi() if self.protected else 0
        if not self.protected:
            self.reason = "no protected path"
            return
        if abi < 1:
            self.reason = "Landlock is not available on this kernel"
            return
        self.handled = ACCESS_FS_READ_FILE | (ACCESS_FS_REFER if abi >= 2 else 0)
        libc = _libc()
        attr = _RulesetAttr(self.handled)
        fd = libc.syscall(
            SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)), 0
        )
        if fd < 0:
            self.reason = f"landlock_create_ruleset failed (errno {ctypes.get_errno()})"
            return
        self.fd = fd
        self._libc = libc
        hidden = self.protected | set().union(*(_ancestors(p) for p in self.protected))
        self._walk("/", hidden)

    def _allow(self, path: str, is_dir: bool) -> None:
        try:
            target = os.open(path, O_PATH | os.O_CLOEXEC)
        except OSError:
            return
        try:
            access = ACCESS_FS_READ_FILE | (self.handled & ACCESS_FS_REFER if is_dir else 0)
            rule = _PathBeneathAttr(access, target)
            if (
                self._libc.syscall(
                    SYS_LANDLOCK_ADD_RULE, self.fd, LANDLOCK_RULE_PATH_BENEATH, ctypes.byref(rule), 0
                )
                == 0
            ):
                self.rules += 1
        finally:
            os.close(target)

    def _walk(self, directory: str, hidden: set[str]) -> None:
        try:
            entries = list(os.scandir(directory))
        except OSError:
            return
        for entry in entries:
            path = os.path.join(directory, entry.name)
            if path in hidden:
                if path not in self.protected:
                    self._walk(path, hidden)
                continue
            real = os.path.realpath(path)
            # A link to a protected path or to a directory above one would open the way to it.
            if real in hidden or any(p.startswith(real.rstrip("/") + "/") for p in self.protected):
                continue
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            self._allow(path, is_dir)

    @property
    def active(self) -> bool:
        return self.fd is not None

    def preexec(self) -> Callable[[], None] | None:
        """What the forked child runs before exec: drop the capabilities above from its bounding set
        (only a privileged parent has them to drop), then enter the Landlock domain."""
        if not self.protected:
            return None
        libc, fd = _libc(), self.fd
        capabilities = tuple(DROPPED_CAPABILITIES.values())

        def confine() -> None:  # runs in the forked child: a few system calls, no locks
            for capability in capabilities:
                libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0)  # EPERM unprivileged: nothing to drop
            if fd is None:
                return
            if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
            if libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, fd, 0) != 0:
                raise OSError(ctypes.get_errno(), "landlock_restrict_self")

        return confine

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def device_user() -> str | None:
    """RUNNER_DEVICE_USER, honoured when this process may switch users (root)."""
    user = os.environ.get("RUNNER_DEVICE_USER") or None
    return user if user and os.geteuid() == 0 else None


def key_paths_from_env() -> list[Path]:
    """The secrets this runner host holds, by the environment that names them (RUNNER_KEY_FILE)."""
    path = os.environ.get("RUNNER_KEY_FILE")
    return [Path(path)] if path else []

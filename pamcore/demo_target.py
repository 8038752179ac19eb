"""The demo's SSH target: OpenSSH ``sshd`` on a loopback port with its own configuration,
host key and service key in the instance folder (``demo-target/``), so ``make run`` shows
an injected connection, an ephemeral account and a recording without a server of your own.

What it creates on the machine, and ``pamcore demo clean`` removes: that folder, the sshd
listening on 127.0.0.1 (:data:`DEFAULT_PORT` unless ``pamcore demo --target-port``), and the
ephemeral accounts the demo's sessions create on it, all named :data:`PREFIX`... The sshd
lets in only root (with the service key vaulted as ``web01 service``, from its own
``authorized_keys.root``) and accounts with that prefix (by password); the machine's own sshd
and its files are not touched.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from pamcore.core import Pamcore
from pamcore.errors import PamError
from pamcore.model import AuditEvent
from pamcore.openssh import answering, keygen, launch_sshd, public_line, sshd_missing

#: Every account the demo creates on this machine starts with this.
PREFIX = "pamdemo-"
DEFAULT_PORT = 4022
FOLDER = "demo-target"
#: The resource the demo points at the target (``pamcore.demo``'s web01).
RESOURCE = "web01"
#: The audit event ``linux-create-account`` writes for each account it made (pamcore_ssh).
ACCOUNT_CREATED = "linux.account_created"


class DemoTargetError(PamError):
    """The demo's sshd cannot be started (its port is taken, its files are gone)."""


@dataclass(frozen=True)
class DemoTarget:
    folder: Path
    port: int

    @property
    def config(self) -> Path:
        return self.folder / "sshd_config"

    @property
    def service_key(self) -> str:
        """The service account's private key (root on the target), for the vault."""
        return (self.folder / "service_key").read_text()

    @property
    def host_key_line(self) -> str:
        """The target's host key, pinned on the demo resource."""
        return public_line(self.folder / "host_ed25519.pub")

    @property
    def pid_file(self) -> Path:
        return self.folder / "sshd.pid"

    @property
    def log(self) -> Path:
        return self.folder / "sshd.log"


def _config_text(folder: Path, port: int) -> str:
    # StrictModes off: the key file's parents (the clone, the instance folder) may belong to
    # whoever cloned the repository; the file itself is root's, in a 0700 folder.
    return (
        f"# pamcore demo SSH target (pamcore demo start|stop|clean); not the machine's sshd\n"
        f"Port {port}\nListenAddress 127.0.0.1\nPidFile none\n"
        f"HostKey {folder}/host_ed25519\nAuthorizedKeysFile {folder}/authorized_keys.%u\n"
        f"AllowUsers root {PREFIX}*\nPermitRootLogin prohibit-password\n"
        f"PasswordAuthentication yes\nKbdInteractiveAuthentication no\nUsePAM no\n"
        f"StrictModes no\nPrintMotd no\nSubsystem sftp internal-sftp\n"
    )


def target_unavailable(core: Pamcore) -> str | None:
    """Why this machine and instance cannot have the demo target, or ``None``."""
    if missing := sshd_missing():
        return missing
    if not {"linux-create-account", "linux-remove-account"} <= set(core.hooks.actions()):
        return "needs the pamcore-ssh plugin's Linux actions"
    return None


def prepare_target(instance: Path, port: int = DEFAULT_PORT) -> DemoTarget:
    """Write the target's folder (keys, the service key authorised for root, the config);
    keys already there are kept, so running it again changes nothing but the port."""
    if missing := sshd_missing():
        raise DemoTargetError(f"the demo SSH target {missing}")
    folder = (instance / FOLDER).resolve()
    folder.mkdir(mode=0o700, exist_ok=True)
    for name in ("host_ed25519", "service_key"):
        if not (folder / name).exists():
            keygen(folder / name)
    (folder / "authorized_keys.root").write_text(public_line(folder / "service_key.pub") + "\n")
    target = DemoTarget(folder, port)
    target.config.write_text(_config_text(folder, port))
    return target


def load_target(instance: Path) -> DemoTarget | None:
    """The instance's demo target, or ``None`` when ``pamcore demo`` made none."""
    config = (instance / FOLDER).resolve() / "sshd_config"
    if not config.is_file():
        return None
    ports = [line.split()[1] for line in config.read_text().splitlines() if line[:5] == "Port "]
    return DemoTarget(config.parent, int(ports[0]))


def running_pid(target: DemoTarget) -> int | None:
    """The pid of the target's sshd when it runs: the pid file's process, if that is sshd
    with this target's config (a pid reused by another program is never signalled)."""
    try:
        pid = int(target.pid_file.read_text())
        # sshd rewrites its title ("sshd: /usr/sbin/sshd -D -e -f CONFIG [listener] ..."):
        # the config's path is somewhere in it.
        title = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if f" -f {target.config}".encode() in title.replace(b"\0", b" ") else None


def start_target(target: DemoTarget) -> int:
    """Start the target's sshd in the background unless it runs; its pid."""
    if (pid := running_pid(target)) is not None:
        return pid
    proc = launch_sshd(target.config, target.log, detached=True)
    if not answering(target.port, proc):
        proc.kill()
        proc.wait()
        raise DemoTargetError(
            f"the demo SSH target did not start on 127.0.0.1 port {target.port} "
            f"(see {target.log}; another program on that port? pamcore demo --target-port)"
        )
    target.pid_file.write_text(f"{proc.pid}\n")
    return proc.pid


def stop_target(target: DemoTarget) -> bool:
    """Stop the target's sshd (its connections' processes end with their connections);
    whether it was running."""
    pid = running_pid(target)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while running_pid(target) == pid and time.monotonic() < deadline:
            time.sleep(0.05)
    target.pid_file.unlink(missing_ok=True)
    return pid is not None


def demo_accounts(core: Pamcore) -> dict[str, int]:
    """The accounts this instance's sessions created on the demo target: name -> UID, from
    the audit log, so ``clean`` removes exactly those and nobody else's."""
    with core.reader() as db:
        rows = db.scalars(
            select(AuditEvent.details).where(
                AuditEvent.action == ACCOUNT_CREATED, AuditEvent.target == RESOURCE
            )
        ).all()
    found = {}
    for details in rows:
        name, uid = details.get("account"), details.get("uid")
        if isinstance(name, str) and name.startswith(PREFIX) and isinstance(uid, int):
            found[name] = uid
    return found


def _uid_of(name: str) -> int | None:
    done = subprocess.run(  # noqa: S603 (fixed command)
        ["getent", "passwd", name],  # noqa: S607 (getent from PATH)
        capture_output=True,
        text=True,
        check=False,
    )
    return int(done.stdout.split(":")[2]) if done.returncode == 0 else None


def remove_account(name: str, uid: int) -> bool:
    """Delete ``name`` with its home and processes if it still has ``uid``; whether it did."""
    if not name.startswith(PREFIX) or _uid_of(name) != uid:
        return False
    subprocess.run(["pkill", "--signal", "KILL", "-u", str(uid)], check=False)  # noqa: S603, S607
    for _attempt in range(20):  # userdel refuses while a process of the account still ends
        done = subprocess.run(  # noqa: S603 (fixed command)
            ["userdel", "--remove", name],  # noqa: S607 (userdel from PATH)
            capture_output=True,
            check=False,
        )
        if done.returncode != 8:  # 8: the user is logged in
            return done.returncode in (0, 6)
        time.sleep(0.1)
    return False


def clean_demo(core: Pamcore) -> list[str]:
    """Stop the target, delete the accounts the demo created on it and its folder; the
    names of the accounts deleted."""
    instance = core.config.instance_path
    target = load_target(instance)
    if target is not None:
        stop_target(target)
    removed = [
        name for name, uid in sorted(demo_accounts(core).items()) if remove_account(name, uid)
    ]
    shutil.rmtree(instance / FOLDER, ignore_errors=True)
    return removed

"""One training run at a time per workdir: `with lock.hold(workdir): ...`.

W/lock.json names the run that holds the workdir (host, PID, start time).
Process 0 of a run takes it before the run reads or writes anything else in
the workdir, and removes it when the run ends; the other processes of a
multi-process run are the same run: they learn from process 0 whether it got
the lock and stop with it if not. A second run is refused at once with a
`WorkdirError` naming the holder.

A lock left behind by a run that is gone (killed with -9, or the machine
restarted) is stale when it names this host and its process no longer runs
(no such PID, or one started at another time, i.e. a reused PID); it is taken
over with a warning. A holder on another host cannot be checked from here: the
message names the file to delete once that run is known to be over.
Tools that only read a workdir (evaluate, generate, probe, notebooks) do not
take the lock.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import socket

from absl import logging
import jax

from textvae import errors

NAME = "lock.json"


def lock_path(workdir: str) -> str:
  return os.path.join(workdir, NAME)


def _boot_id() -> str | None:
  try:
    with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
      return f.read().strip()
  except OSError:
    return None


def _proc_stat(pid: int) -> list[str] | None:
  """Fields of /proc/PID/stat after the command name (state first), or None."""
  try:
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
      return f.read().rsplit(")", 1)[1].split()
  except (OSError, IndexError):
    return None


def _start_ticks(pid: int) -> int | None:
  stat = _proc_stat(pid)
  return int(stat[19]) if stat else None  # field 22 of proc(5)


def identity() -> dict:
  """This process, as a lock file records it."""
  pid = os.getpid()
  return {"host": socket.gethostname(), "pid": pid, "start_ticks": _start_ticks(pid),
          "boot_id": _boot_id(),
          "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}


def describe(holder: dict) -> str:
  return (f"PID {holder.get('pid')} on host {holder.get('host')}, started "
          f"{holder.get('started')}")


def is_stale(holder: dict) -> bool:
  """Whether the process a lock names is known to be gone; a holder on
  another host is never known to be gone."""
  if holder.get("host") != socket.gethostname():
    return False
  if holder.get("boot_id") and _boot_id() and holder["boot_id"] != _boot_id():
    return True  # this machine restarted since
  pid = holder.get("pid")
  if not isinstance(pid, int) or pid <= 0:
    return True
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return True
  except PermissionError:
    pass  # someone else's process: it exists
  stat = _proc_stat(pid)
  if stat is None:
    return False  # no /proc: a live PID is taken as the holder
  if stat[0] in ("Z", "X"):  # killed, not yet reaped by its parent
    return True
  return holder.get("start_ticks") is not None and int(stat[19]) != holder["start_ticks"]


def _read(path: str) -> dict | None:
  try:
    with open(path, encoding="utf-8") as f:
      holder = json.load(f)
    return holder if isinstance(holder, dict) else {}
  except FileNotFoundError:
    return None
  except (OSError, ValueError):
    return {}  # unreadable: names no live process


@contextlib.contextmanager
def exclusive(path: str, waiting: str | None = None):
  """An exclusive flock on `path` (a folder, or a file created if missing)
  for the block, waiting while another process holds it (logging `waiting`).
  The kernel releases it when the holder dies, however it dies. Where the
  file cannot be made (a read-only folder, whose contents nobody changes) or
  the filesystem has no flock, the block runs unguarded."""
  try:
    fd = os.open(path, os.O_RDONLY if os.path.isdir(path) else os.O_RDWR | os.O_CREAT, 0o666)
  except OSError:
    fd = None
  if fd is None:
    yield
    return
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      if waiting:
        logging.info("%s", waiting)
      fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError:
      pass
    yield
  finally:
    os.close(fd)  # releases the flock


def acquire(workdir: str) -> dict:
  """Takes `workdir`'s lock for this process; returns what it recorded. Raises
  WorkdirError naming the holder when another live run has it."""
  path = lock_path(workdir)
  me = identity()
  tmp = f"{path}.{me['host']}.{me['pid']}.tmp"
  # Serialised on the folder: two runs taking over one stale lock cannot both
  # win (without flock, creating the lock file alone stays exclusive).
  with exclusive(workdir):
    holder = _read(path)
    if holder is not None and not is_stale(holder):
      raise refusal(workdir, holder)
    with open(tmp, "w", encoding="utf-8") as f:
      json.dump(me, f)
    try:
      if holder is None:
        os.link(tmp, path)  # fails if another host's run created it meanwhile
      else:
        logging.warning("Taking over the stale lock %s of a run that is no longer "
                        "running (%s)", path, describe(holder))
        os.replace(tmp, path)
    except FileExistsError:
      raise refusal(workdir, _read(path) or {}) from None
    finally:
      if os.path.exists(tmp):
        os.remove(tmp)
  return me


def refusal(workdir: str, holder: dict) -> errors.WorkdirError:
  path = lock_path(workdir)
  if holder.get("host") not in (None, socket.gethostname()):
    hint = (f"wait for it to finish, use another --workdir, or delete {path} if that run "
            "is no longer running")
  else:
    hint = "wait for it to finish, or use another --workdir"
  return errors.WorkdirError(f"{workdir} is in use by another training run ({describe(holder)}; "
                             f"{path}): {hint}")


def release(workdir: str, me: dict) -> None:
  """Removes the lock if it is still `me`'s."""
  path = lock_path(workdir)
  with exclusive(workdir):
    holder = _read(path)
    if holder and holder.get("pid") == me["pid"] and holder.get("host") == me["host"]:
      os.remove(path)


def _all_agree(ok: bool) -> bool:
  """Process 0's `ok`, on every process."""
  if jax.process_count() == 1:
    return ok
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  return bool(multihost_utils.broadcast_one_to_all(np.int32(ok)))


@contextlib.contextmanager
def hold(workdir: str):
  """The workdir's lock for the block: process 0 takes it, every process of
  the run raises WorkdirError when process 0 could not."""
  me, error = None, None
  if jax.process_index() == 0:
    try:
      me = acquire(workdir)
    except Exception as e:  # pylint: disable=broad-except  # re-raised below, after telling the others
      error = e
  if not _all_agree(error is None):
    if error is not None:
      raise error
    holder = _read(lock_path(workdir))
    if holder:
      raise refusal(workdir, holder)
    raise errors.WorkdirError(f"process 0 could not take {lock_path(workdir)}: see its log")
  try:
    yield
  finally:
    if me is not None:
      release(workdir, me)

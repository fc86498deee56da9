"""Checking device logins without handing anyone a denial-of-service lever.

:class:`DeviceAuthenticator` is what the embedded broker asks for each CONNECT
(DESIGN.md §8: a reconnect storm of the whole fleet completes in seconds, and wrong
credentials cannot starve right ones):

1. a source (:func:`~gateway.devices.limits.source_of`: an IPv4 address, an IPv6
   /64) past its failure budget (:class:`~gateway.devices.limits.SourceLimits`)
   is refused at once, unchecked (:attr:`Refusal.THROTTLED`);
2. the device is looked up in a worker thread (inactive devices count as unknown);
3. a token (:mod:`gateway.devices.credentials`) is checked on the spot: one SHA-256;
4. a password the hasher accepted for the device, against the same stored hash, in
   the last five minutes is accepted on the spot too
   (:class:`~gateway.devices.credentials.VerifiedPasswords`: one HMAC, compared in
   constant time): a device reconnecting during a flood queues behind nobody;
5. anything else costs one run of Django's hasher in the :class:`SlowLane`: its own
   ``workers`` threads (by default one per core but one, so the event loop keeps a
   core), fed in turns per source from three lanes by the source's
   :class:`~gateway.devices.limits.Standing` (trusted: a login succeeded from it
   lately; unknown; suspect: one failed lately), each lane bounded: a flood of wrong
   passwords, even from fresh addresses, delays a device logging in again from its
   usual address by at most the hashes already running, and past a bound a login is
   refused at once (:attr:`Refusal.BUSY`) rather than queued for ever.

The cost depends on what was presented, never on whether the username exists.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum
from typing import Any, Generic, TypeVar

from gateway.db import DatabaseSyncToAsync
from gateway.devices.acl import DeviceACL
from gateway.devices.credentials import (
    VerifiedPasswords,
    check_slowly,
    check_token,
    is_fast_check,
)
from gateway.devices.limits import FairQueue, SourceLimits, Standing, source_of

R = TypeVar("R")


class Refusal(Enum):
    """Why a login was refused."""

    BAD_CREDENTIALS = "bad credentials"
    THROTTLED = "too many failed logins from its address"
    BUSY = "too many slow credential checks waiting"


class LaneFull(Exception):
    """The slow lane holds as many checks as it may (per source or in total)."""


@dataclass(frozen=True)
class StoredDevice:
    """What a login is checked against: the stored secret and the device's ACL."""

    password: str
    acl: Callable[[], DeviceACL]


def default_slow_workers() -> int:
    return max(1, (os.cpu_count() or 1) - 1)


class _Job(Generic[R]):
    def __init__(self, func: Callable[[], R], done: asyncio.Future[R]) -> None:
        self.func = func
        self.done = done


class SlowLane:
    """Runs blocking checks on ``workers`` threads, in turns per source, bounded.

    At most ``workers`` run at once. Waiting checks queue in the lane of their
    source's :class:`~gateway.devices.limits.Standing`
    (:class:`~gateway.devices.limits.FairQueue`: taken in turns per source, at most
    ``per_source`` per source and ``total`` in all); a lane is served only when the
    lanes of better standing are empty. Past a bound :meth:`run` raises
    :class:`LaneFull` at once. A caller that gives up while waiting leaves its lane;
    one whose check already runs lets it finish unused.
    """

    def __init__(self, workers: int | None = None, *, per_source: int = 2, total: int = 32) -> None:
        self.workers = workers or default_slow_workers()
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="device-auth")
        self._lanes = {standing: FairQueue[_Job[Any]](per_source, total) for standing in Standing}
        self._running = 0

    async def run(
        self, source: str, func: Callable[[], R], *, standing: Standing = Standing.UNKNOWN
    ) -> R:
        job: _Job[R] = _Job(func, asyncio.get_running_loop().create_future())
        lane = self._lanes[standing]
        if self._running < self.workers:
            self._start(job)
        elif not lane.push(source, job):
            raise LaneFull(source)
        try:
            return await job.done
        finally:
            lane.remove(source, job)

    def _start(self, job: _Job[R]) -> None:
        self._running += 1
        running = asyncio.get_running_loop().run_in_executor(self._executor, job.func)
        running.add_done_callback(lambda result: self._finished(job, result))

    def _finished(self, job: _Job[R], result: asyncio.Future[R]) -> None:
        self._running -= 1
        if job.done.done():
            pass  # its caller gave up
        elif result.cancelled():
            job.done.cancel()
        elif (error := result.exception()) is not None:
            job.done.set_exception(error)
        else:
            job.done.set_result(result.result())
        for lane in self._lanes.values():  # in order of standing
            following = lane.pop()
            if following is not None:
                self._start(following)
                return

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _find_device(username: str) -> StoredDevice | None:
    from gateway.devices.models import Device

    device = Device.objects.filter(username=username, is_active=True).first()
    return None if device is None else StoredDevice(device.password, device.acl)


class DeviceAuthenticator:
    """``await authenticate(username, password, source)``: the device's ACL or a :class:`Refusal`.

    ``find_device`` looks a username up (default: active ``gateway.devices`` devices,
    in a worker thread); tests and benchmarks may pass their own.
    """

    def __init__(
        self,
        lane: SlowLane | None = None,
        limits: SourceLimits | None = None,
        find_device: Callable[[str], Awaitable[StoredDevice | None]] | None = None,
        verified: VerifiedPasswords | None = None,
    ) -> None:
        self.lane = lane or SlowLane()
        self.limits = limits or SourceLimits()
        self.verified = verified or VerifiedPasswords()
        self.find_device = find_device or DatabaseSyncToAsync(_find_device, thread_sensitive=False)

    async def authenticate(
        self, username: str, password: bytes | None, address: str
    ) -> DeviceACL | Refusal:
        """Check a login from client ``address``."""
        source = source_of(address)
        if not self.limits.allowed(source):
            return Refusal.THROTTLED
        device = await self.find_device(username)
        stored = None if device is None else device.password
        try:
            secret = None if password is None else password.decode()
        except UnicodeDecodeError:
            secret = None
        if secret is None:
            accepted = False  # nothing that could match: no hash to run
        elif is_fast_check(secret, stored):
            accepted = check_token(secret, stored)
        elif self.verified.accepts(username, stored, secret):
            accepted = True  # this password was checked against this stored hash lately
        else:
            check = functools.partial(check_slowly, secret, stored)
            standing = self.limits.standing(source)
            try:
                accepted = await self.lane.run(source, check, standing=standing)
            except LaneFull:
                return Refusal.BUSY
            if accepted and stored is not None:
                self.verified.verified(username, stored, secret)
        if not accepted or device is None:
            self.limits.failed(source)
            return Refusal.BAD_CREDENTIALS
        self.limits.succeeded(source)
        return device.acl()

    def close(self) -> None:
        self.lane.close()

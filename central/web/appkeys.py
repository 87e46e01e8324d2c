"""Typed keys of the aiohttp app's state (``web.AppKey``), apart from the routes that use them."""

from __future__ import annotations

from aiohttp import web

from base.clock import Clock
from central.config import CentralConfig
from central.enrollment import Enroller
from central.ingest import Ingestor
from central.keystore import Keystore
from central.limits import SharedFailureLimiter
from central.metrics import Metrics
from central.storage.interface import Storage

CONFIG = web.AppKey("config", CentralConfig)
STORE = web.AppKey("store", Storage)
KEYS = web.AppKey("keys", Keystore)
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
METRICS = web.AppKey("metrics", Metrics)
INGESTOR = web.AppKey("ingestor", Ingestor)
ENROLLER = web.AppKey("enroller", Enroller)
LOGIN_LIMITER = web.AppKey("login_limiter", SharedFailureLimiter)

"""Typed keys of the aiohttp app's state (``web.AppKey``), apart from the routes that use them."""

from __future__ import annotations

from aiohttp import web

from .clock import Clock
from .config import CentralConfig
from .enrollment import Enroller
from .ingest import Ingestor
from .keystore import Keystore
from .metrics import Metrics
from .storage.base import Store

CONFIG = web.AppKey("config", CentralConfig)
STORE = web.AppKey("store", Store)
KEYS = web.AppKey("keys", Keystore)
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
METRICS = web.AppKey("metrics", Metrics)
INGESTOR = web.AppKey("ingestor", Ingestor)
ENROLLER = web.AppKey("enroller", Enroller)

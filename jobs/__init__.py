"""The contract between ingest, the consumers and the webhook dispatcher: they meet here and
nowhere else (tests/test_layout.py holds them to it).

The face of the contract, importable as `from jobs import ...`:

- the job: `JobParams`, `JobRecord`, `Status`, `TERMINAL`, `new_job_id` (jobs/model.py) and what
  clients see of it, `JobView`, `job_view` (jobs/wire.py);
- where it lives in Redis: `Keys` (jobs/keys.py), the scripts (jobs/lua/, declared in
  jobs/script_defs.py) and `JobStore`, `Claim`, `ClaimRefused` (jobs/store.py) with the verdicts
  of its writes, `JobVerdict`, `ClaimVerdict`; photos and results in `BlobStore` (jobs/blobs.py);
- how to reach Redis: `connect`, `REDIS_DOWN` (jobs/redis_conn.py);
- the settings: `Settings`, `load_settings`, `SettingsError` (jobs/settings.py) and who reads which
  (jobs/setting_roles.py).

Names load on first use, so importing one small module of the package (the CLI's settings, say)
does not pull in the Redis client.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobs.blobs import BlobStore, open_blob_store
    from jobs.keys import Keys
    from jobs.model import TERMINAL, JobParams, JobRecord, Status, new_job_id
    from jobs.redis_conn import REDIS_DOWN, connect
    from jobs.script_defs import ClaimVerdict, JobVerdict
    from jobs.settings import Settings, SettingsError, load_settings
    from jobs.store import Claim, ClaimRefused, JobStore
    from jobs.wire import JobView, job_view

_FACE = {
    "BlobStore": "jobs.blobs",
    "open_blob_store": "jobs.blobs",
    "Keys": "jobs.keys",
    "TERMINAL": "jobs.model",
    "JobParams": "jobs.model",
    "JobRecord": "jobs.model",
    "Status": "jobs.model",
    "new_job_id": "jobs.model",
    "REDIS_DOWN": "jobs.redis_conn",
    "connect": "jobs.redis_conn",
    "ClaimVerdict": "jobs.script_defs",
    "JobVerdict": "jobs.script_defs",
    "Settings": "jobs.settings",
    "SettingsError": "jobs.settings",
    "load_settings": "jobs.settings",
    "Claim": "jobs.store",
    "ClaimRefused": "jobs.store",
    "JobStore": "jobs.store",
    "JobView": "jobs.wire",
    "job_view": "jobs.wire",
}

__all__ = [
    "REDIS_DOWN",
    "TERMINAL",
    "BlobStore",
    "Claim",
    "ClaimRefused",
    "ClaimVerdict",
    "JobParams",
    "JobRecord",
    "JobStore",
    "JobVerdict",
    "JobView",
    "Keys",
    "Settings",
    "SettingsError",
    "Status",
    "connect",
    "job_view",
    "load_settings",
    "new_job_id",
    "open_blob_store",
]


assert sorted(__all__) == sorted(_FACE)


def __getattr__(name: str) -> Any:
    module = _FACE.get(name)
    if module is None:
        raise AttributeError(f"module 'jobs' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)

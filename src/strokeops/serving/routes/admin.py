"""Operator actions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from strokeops.serving.deps import StoreDep

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.post("/reload")
async def reload_model(store: StoreDep) -> dict[str, Any]:
    """Check the registry alias now and swap in its version if it changed."""
    swapped = await run_in_threadpool(store.refresh)
    current = store.current
    return {
        "swapped": swapped,
        "model_version": current.version if current else None,
        "registry_reachable": store.registry_reachable,
        "registry_error": store.last_error,
    }

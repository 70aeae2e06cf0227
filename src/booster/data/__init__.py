"""Data stage: raw sources → disjoint pools + manifest, the user's fine-tuning mix, and
validation of user-supplied JSONL. Pure Python (no torch)."""

from booster.data.attacks import ATTACKS, write_mix
from booster.data.mix import P_DEFINITION, harmful_count, mix
from booster.data.prepare import (
    DISJOINT_POOLS,
    POOL_NAMES,
    POOL_ROLES,
    DataConfig,
    build_pools,
    load_manifest,
    load_pool,
    prepare,
)
from booster.data.sources import DATASETS, HubSource, LocalSource, open_source
from booster.data.text import normalize_prompt, seeded_order
from booster.data.userdata import load_user_jsonl

__all__ = [
    "ATTACKS", "DATASETS", "DISJOINT_POOLS", "P_DEFINITION", "POOL_NAMES", "POOL_ROLES",
    "DataConfig", "HubSource", "LocalSource", "build_pools", "harmful_count",
    "load_manifest", "load_pool", "load_user_jsonl", "mix", "normalize_prompt", "open_source",
    "prepare", "seeded_order", "write_mix",
]

"""net-01 mutant: the two registers of every 32-bit tag read in the wrong order.

The mistake: the student took the datasheet's word order the wrong way round (high word
last where the PLC sends it first, and back), so every 32-bit value is garbage.
"""

from __future__ import annotations

import asyncio

from edge_gateway.cli import serve
from edge_gateway.config import GatewayConfig
from edge_gateway.config_builders import config_from_env

SWAPPED = {"ABCD": "CDAB", "CDAB": "ABCD", "BADC": "DCBA", "DCBA": "BADC"}
WIDE = {"int32", "uint32", "float32"}


def lab_config() -> GatewayConfig:
    config = config_from_env()
    tags = [
        tag.model_copy(update={"word_order": SWAPPED[tag.word_order]}) if tag.type in WIDE else tag
        for tag in config.tags
    ]
    return config.model_copy(update={"tags": tags})


if __name__ == "__main__":
    asyncio.run(serve(lab_config()))

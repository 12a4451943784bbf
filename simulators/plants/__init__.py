"""The five process models, by kind."""

from __future__ import annotations

import random
from collections.abc import Mapping

from iiotlab.errors import VariantError
from simulators.base import TagDefinition
from simulators.plants.boiler import BoilerPlant
from simulators.plants.common import ProcessPlant
from simulators.plants.compressor import CompressorPlant
from simulators.plants.energy import EnergyPlant
from simulators.plants.packaging import PackagingPlant
from simulators.plants.tank import TankPlant

PLANT_CLASSES: dict[str, type[ProcessPlant]] = {
    "tank": TankPlant,
    "boiler": BoilerPlant,
    "packaging": PackagingPlant,
    "compressor": CompressorPlant,
    "energy": EnergyPlant,
}


def plant_class(kind: str) -> type[ProcessPlant]:
    try:
        return PLANT_CLASSES[kind]
    except KeyError:
        raise VariantError(
            f"unknown plant {kind!r}; use one of {', '.join(PLANT_CLASSES)}"
        ) from None


def create_plant(kind: str, constants: Mapping[str, float], rng: random.Random) -> ProcessPlant:
    return plant_class(kind)(dict(constants), rng)


def plant_tags(kind: str) -> tuple[TagDefinition, ...]:
    return plant_class(kind).tags

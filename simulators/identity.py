"""Who made each plant: the vendor data a datasheet lists and the PLC reports on 43 / MEI 14.

The vendors are fictitious (their sites use the reserved `.example` domain) so that no
student mistakes a lab device for a real product. The vendor and product line are fixed per
plant kind; the order code suffix and the firmware revision come from the student's seed,
like the rest of the variant.
"""

from __future__ import annotations

from dataclasses import dataclass

from iiotlab.datasheet import DeviceIdentity
from iiotlab.variants import variant_random


@dataclass(frozen=True)
class ProductLine:
    vendor_name: str
    vendor_url: str
    product_name: str
    code_prefix: str


PRODUCT_LINES: dict[str, ProductLine] = {
    "tank": ProductLine(
        "Aquaris Automation", "https://aquaris.example", "Aquaris LC-200 Level Controller", "LC200"
    ),
    "boiler": ProductLine(
        "Thermforge Controls", "https://thermforge.example", "Thermforge BX-7 Boiler Control", "BX7"
    ),
    "packaging": ProductLine(
        "Packwell Machinery", "https://packwell.example", "Packwell PL-60 Line Controller", "PL60"
    ),
    "compressor": ProductLine(
        "Boreas Pneumatics", "https://boreas.example", "Boreas SC-90 Compressor Control", "SC90"
    ),
    "energy": ProductLine(
        "Voltrix Metering", "https://voltrix.example", "Voltrix VM-3 Three-Phase Meter", "VM3"
    ),
}


def derive_identity(plant: str, seed: int, model_name: str) -> DeviceIdentity:
    """The vendor data of one student's plant (pure: same seed, same identity)."""
    line = PRODUCT_LINES[plant]
    rng = variant_random(seed, f"identity:{plant}")
    variant = f"{rng.choice('ABCDEFGH')}{rng.randrange(10, 100)}"
    revision = f"V{rng.randint(1, 4)}.{rng.randint(0, 19)}"
    return DeviceIdentity(
        vendor_name=line.vendor_name,
        product_code=f"{line.code_prefix}-{variant}",
        revision=revision,
        vendor_url=line.vendor_url,
        product_name=line.product_name,
        model_name=model_name,
    )

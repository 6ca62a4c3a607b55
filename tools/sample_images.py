#!/usr/bin/env python3
"""Real photographs for the pipelines' tests and examples, from the scikit-image wheel's sample
data (skimage/data), fetched into ortsparse's cache (tools/model_zoo.py's) and never committed.

* astronaut.png: Eileen Collins, NASA (public domain), 512x512;
* chelsea.png: a cat, by Stefan van der Walt (CC0), 451x300;
* coffee.png: a cup of coffee, by Rachel Michetti (CC0), 600x400;
* rocket.jpg: a SpaceX Falcon 9 launch, SpaceX (public domain), 427x640.

    .venv/bin/python tools/sample_images.py        # prints one path per image
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.model_zoo import wheel_members, zoo_dir  # noqa: E402

PACKAGE = "scikit-image==0.26.0"
NAMES = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg")


def sample_images() -> dict[str, Path]:
    """Each image's path in the cache by its name, downloaded the first time."""
    directory = zoo_dir() / "images"
    paths = {name: directory / name for name in NAMES}
    wheel_members(PACKAGE, {f"skimage/data/{name}": path for name, path in paths.items()})
    return paths


if __name__ == "__main__":
    for path in sample_images().values():
        print(path)
